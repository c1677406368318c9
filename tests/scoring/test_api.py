"""The scoring policy API and the Data Manager actions, through Label Studio's real endpoints."""

import json

import pytest

from tests.scoring.conftest import create_view, page, predict, stored

pytestmark = pytest.mark.django_db


def policy_url(project):
    return f'/api/projects/{project.id}/uncertainty/'


def patch(client, project, body):
    return client.patch(policy_url(project), json.dumps(body), content_type='application/json')


def run_action(client, project, action, body=None, view=None):
    url = f'/api/dm/actions?id={action}&project={project.id}' + (f'&view={view}' if view else '')
    payload = body if body is not None else {'selectedItems': {'all': True, 'excluded': []}}
    return client.post(url, json.dumps(payload), content_type='application/json')


def test_report_says_which_version_and_measure_rank_the_tasks(client_owner, scored_project):
    response = client_owner.get(policy_url(scored_project))
    assert response.status_code == 200
    report = response.json()
    assert (report['active_version'], report['active_measure'], report['up_to_date']) == ('v2', 'min_region', True)
    assert [v['version'] for v in report['versions']] == ['v2', 'v1']
    assert report['tasks'] == {'ranked': 4, 'unranked': 0, 'clamped': 0, 'ignored': 0}
    assert report['job']['status'] == 'done' and report['job']['progress'] == 1.0
    assert set(report['measures']) == {'score', 'min_region', 'entropy', 'margin'}


def test_unknown_measure_is_a_400_listing_the_valid_ones(client_owner, scored_project):
    response = patch(client_owner, scored_project, {'measure': 'variance'})
    assert response.status_code == 400
    assert 'entropy, margin, min_region, score' in json.dumps(response.json())
    action = run_action(client_owner, scored_project, 'recompute_uncertainty', {'measure': 'variance'})
    assert action.status_code == 400
    assert action.json()['valid'] == ['entropy', 'margin', 'min_region', 'score']


def test_changing_the_measure_recomputes_the_project(client_owner, scored_project, image_tasks):
    response = patch(client_owner, scored_project, {'measure': 'score'})
    assert response.status_code == 200
    assert response.json()['active_measure'] == 'score'
    assert {v for v, _, measure in stored(scored_project).values()} == {0.5}  # 1 - Prediction.score of every v2


def test_pinning_an_old_version_and_following_again(client_owner, scored_project, image_tasks):
    assert patch(client_owner, scored_project, {'pinned_version': 'v1'}).json()['active_version'] == 'v1'
    assert stored(scored_project)[image_tasks[3].id][:2] == (pytest.approx(0.3), 'v1')
    predict(image_tasks[0], 'v3', scores=[0.5])  # a newer version does not move a pin
    assert client_owner.get(policy_url(scored_project)).json()['active_version'] == 'v1'
    assert patch(client_owner, scored_project, {'pinned_version': None}).json()['active_version'] == 'v3'


def test_a_backend_title_used_as_version_maps_to_its_model_version(client_owner, scored_project, image_tasks):
    from ml.models import MLBackend

    MLBackend.objects.create(
        project=scored_project, url='http://127.0.0.1:9090', title='Fish detector', model_version='v1'
    )
    scored_project.model_version = 'Fish detector'  # what Label Studio stores when a backend is added
    scored_project.save(update_fields=['model_version'])
    report = patch(client_owner, scored_project, {'pinned_version': 'Fish detector'}).json()
    assert (report['active_version'], report['project_model_version_is_backend_title']) == ('v1', True)
    assert len(stored(scored_project)) == 5


def test_recompute_endpoint_reports_progress(client_owner, scored_project):
    response = client_owner.post(policy_url(scored_project) + 'recompute/')
    assert response.status_code == 202
    job = response.json()
    assert (job['status'], job['total'], job['done'], job['scored'], job['progress']) == ('done', 4, 4, 4, 1.0)


def test_strangers_see_nothing(client_stranger, scored_project):
    assert client_stranger.get(policy_url(scored_project)).status_code == 404
    assert patch(client_stranger, scored_project, {'measure': 'score'}).status_code == 404


def test_actions_are_listed_in_the_data_manager(client_owner, scored_project):
    response = client_owner.get(f'/api/dm/actions?project={scored_project.id}')
    titles = {a['id']: a['title'] for a in response.json()}
    assert titles['recompute_uncertainty'] == 'Recompute uncertainty'
    assert titles['label_most_uncertain_first'] == 'Label most uncertain first'
    form = client_owner.get(f'/api/dm/actions/recompute_uncertainty/form/?project={scored_project.id}').json()
    assert form[0]['fields'][0]['value'] == 'min_region'


def test_recompute_action_on_selected_tasks(client_owner, scored_project, image_tasks):
    from ls_extensions.scoring.models import TaskUncertainty

    TaskUncertainty.objects.filter(task=image_tasks[1]).update(value=0.0)  # drifted, e.g. by a raw update
    body = {'selectedItems': {'all': False, 'included': [image_tasks[1].id, image_tasks[3].id]}}
    response = run_action(client_owner, scored_project, 'recompute_uncertainty', body)
    assert response.status_code == 200, response.content
    assert response.json()['detail'].startswith('Recomputed 2 tasks: 1 ranked, 0 without a value')
    assert stored(scored_project)[image_tasks[1].id][0] == pytest.approx(0.7)


def test_recompute_action_with_another_measure_recomputes_everything(client_owner, scored_project):
    response = run_action(client_owner, scored_project, 'recompute_uncertainty', {'measure': 'entropy'})
    assert response.status_code == 200
    assert 'in the background' in response.json()['detail']
    assert {measure for _, _, measure in stored(scored_project).values()} == {'entropy'}


def test_label_most_uncertain_first_action_turns_the_stream_on(client_owner, scored_project):
    view = create_view(client_owner, scored_project, ['tasks:id'])
    response = run_action(client_owner, scored_project, 'label_most_uncertain_first', view=view)
    assert response.status_code == 200
    scored_project.refresh_from_db()
    assert scored_project.sampling == 'Uncertainty sampling'
    assert client_owner.get(policy_url(scored_project)).json()['stream'] is True
    assert len(page(client_owner, view)['tasks']) == 5
