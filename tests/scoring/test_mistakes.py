"""Possible annotation mistakes on real Label Studio models: stored rows, the Data Manager column, filter and
action, the API, and their freshness when the annotation or the served version changes."""

import json

import pytest

from ls_extensions.scoring.models import TaskMistake
from tests.conftest import box, logged_in_client, make_user
from tests.scoring.conftest import create_view, make_tasks, page, predict

pytestmark = pytest.mark.django_db

TRUTH = [box(10, 10, 20, 20, 'fish'), box(60, 50, 15, 25, 'crab')]
SHOWN = {'explore': ['tasks:data.image'], 'labeling': ['tasks:data.image']}
ANNOTATIONS = {  # task index -> what the annotator drew (the model predicts TRUTH everywhere)
    0: TRUTH,  # right
    1: [TRUTH[0]],  # the crab missed
    2: [box(18, 18, 20, 20, 'fish'), TRUTH[1]],  # the fish box off
    3: [box(10, 10, 20, 20, 'crab'), TRUTH[1]],  # the fish called a crab
    4: [*TRUTH, box(40, 80, 10, 10, 'fish')],  # a box around nothing
}


def model_boxes(score=0.9):
    return [{**region, 'score': score} for region in TRUTH]


def annotate(task, user, result):
    from tasks.models import Annotation

    return Annotation.objects.create(task=task, project=task.project, completed_by=user, result=result)


@pytest.fixture
def reviewed(image_project, user):
    """Six tasks: five labeled as ``ANNOTATIONS`` says, one unlabeled; all predicted by v1."""
    tasks = make_tasks(image_project, 6)
    for i, result in ANNOTATIONS.items():
        annotate(tasks[i], user, result)
    for task in tasks:
        predict(task, 'v1', result=model_boxes())
    return tasks


def rows(project):
    return {r.task_id: r for r in TaskMistake.objects.filter(project=project)}


def test_labeled_tasks_get_their_kinds_stored(image_project, reviewed):
    stored = rows(image_project)
    t = [task.id for task in reviewed]
    assert set(stored) == set(t[:5])  # the unlabeled task has no row
    assert stored[t[0]].value == 0.0 and stored[t[0]].kinds == ''
    kinds = {t[i]: stored[t[i]].kinds for i in range(1, 5)}
    assert kinds == {t[1]: '1 missing', t[2]: '1 off', t[3]: '1 wrong label', t[4]: '1 spurious'}
    assert all(stored[t[i]].value > 0.5 and stored[t[i]].model_version == 'v1' for i in range(1, 5))


def test_the_column_sorts_and_filters_in_the_data_manager(client_owner, image_project, reviewed):
    columns = {c['id']: c for c in client_owner.get(f'/api/dm/columns/?project={image_project.id}').json()['columns']}
    assert columns['mistake']['title'] == 'Possible mistake' and columns['mistake']['type'] == 'Number'
    assert columns['mistake_kinds']['title'] == 'Mistake kinds'
    stored = rows(image_project)
    likeliest = sorted(stored, key=lambda task_id: (-stored[task_id].value, task_id))
    mistake_first = {
        'conjunction': 'and',
        'items': [{'filter': 'filter:tasks:mistake', 'operator': 'greater', 'type': 'Number', 'value': 0.5}],
    }
    body = page(client_owner, create_view(client_owner, image_project, ['-tasks:mistake'], mistake_first, SHOWN))
    assert [task['id'] for task in body['tasks']] == likeliest[:4]
    assert [task['mistake_kinds'] for task in body['tasks']] == [stored[i].kinds for i in likeliest[:4]]
    assert body['total'] == 4
    kinds = {'conjunction': 'and', 'items': [
        {'filter': 'filter:tasks:mistake_kinds', 'operator': 'contains', 'type': 'String', 'value': 'missing'}
    ]}  # fmt: skip
    body = page(client_owner, create_view(client_owner, image_project, [], kinds, SHOWN))
    assert [task['id'] for task in body['tasks']] == [reviewed[1].id]


def test_the_action_opens_a_tab_ordered_by_the_likeliest_mistake(client_owner, image_project, reviewed):
    from data_manager.models import View

    url = f'/api/dm/actions?id=review_likely_mistakes_first&project={image_project.id}'
    everything = json.dumps({'selectedItems': {'all': True, 'excluded': []}})
    first = client_owner.post(url, everything, content_type='application/json')
    assert first.status_code == 200, first.content
    assert '4 labeled tasks' in first.json()['detail']
    again = client_owner.post(url, everything, content_type='application/json')
    assert again.json()['tab'] == first.json()['tab']  # the same tab, reset: not a new one per click
    assert View.objects.filter(project=image_project).count() == 1
    tab = client_owner.get(f'/api/dm/views/{first.json()["tab"]}/').json()
    assert tab['data']['title'] == 'Likely mistakes' and tab['data']['ordering'] == ['-tasks:mistake']
    body = page(client_owner, tab['id'])
    stored = rows(image_project)
    assert [task['id'] for task in body['tasks']] == sorted(
        (i for i in stored if stored[i].value > 0), key=lambda i: (-stored[i].value, i)
    )


def test_an_edited_or_deleted_annotation_is_compared_again(image_project, reviewed):
    from tasks.models import Annotation

    task = reviewed[1]
    annotation = Annotation.objects.get(task=task)
    annotation.result = TRUTH  # the reviewer adds the missed crab
    annotation.save()
    assert rows(image_project)[task.id].value == 0.0
    annotation.delete()
    assert task.id not in rows(image_project)


def test_a_new_served_version_replaces_the_rows(image_project, reviewed):
    for task in reviewed:  # v2 finds no crab anywhere
        predict(task, 'v2', result=[{**TRUTH[0], 'score': 0.9}])
    stored = rows(image_project)
    assert {row.model_version for row in stored.values()} == {'v2'}
    assert stored[reviewed[1].id].value == 0.0  # v2 agrees with the annotation that has no crab
    assert 'spurious' in stored[reviewed[0].id].kinds  # and doubts the crab of the others


def test_the_api_lists_scores_and_kinds_likeliest_first(client_owner, image_project, reviewed):
    url = f'/api/projects/{image_project.id}/mistakes/'
    body = client_owner.get(url).json()
    assert body['count'] == 5 and body['model_version'] == 'v1'
    values = [row['value'] for row in body['results']]
    assert values == sorted(values, reverse=True) and values[-1] == 0.0
    first = body['results'][0]
    assert {'task', 'value', 'kinds', 'missing', 'spurious', 'off', 'wrong_label', 'prediction_id',
            'annotation_id', 'worst_frames'} <= set(first)  # fmt: skip
    missing = client_owner.get(url, {'kind': 'missing'}).json()
    assert [row['task'] for row in missing['results']] == [reviewed[1].id] and missing['results'][0]['missing'] == 1
    assert client_owner.get(url, {'min_value': 0.01, 'page_size': 2}).json()['count'] == 4
    assert len(client_owner.get(url, {'page_size': 2, 'page': 3}).json()['results']) == 1
    bad = client_owner.get(url, {'kind': 'typo', 'min_value': 2})
    assert bad.status_code == 400 and {'kind', 'min_value'} <= set(bad.json()['validation_errors'])


def test_other_organizations_see_nothing(image_project, reviewed):
    stranger = logged_in_client(make_user('stranger@example.org'))
    assert stranger.get(f'/api/projects/{image_project.id}/mistakes/').status_code == 404
    url = f'/api/dm/actions?id=review_likely_mistakes_first&project={image_project.id}'
    refused = stranger.post(url, json.dumps({'selectedItems': {'all': True}}), content_type='application/json')
    assert refused.status_code == 403


def test_label_studios_retrieve_predictions_action_scores_labeled_tasks(client_owner, image_project, user):
    """The Data Manager's own "Retrieve Predictions" predicts labeled tasks too: they get their row."""
    from ml.models import MLBackend

    from tests.retraining.conftest import StubBackend

    tasks = make_tasks(image_project, 3)
    annotate(tasks[0], user, [box(5, 5, 10, 10, 'fish')])  # the stub predicts a box at (1, 1), 5 x 5
    with StubBackend() as stub:
        MLBackend.objects.create(project=image_project, url=stub.url, title='stub')
        url = f'/api/dm/actions?id=retrieve_tasks_predictions&project={image_project.id}'
        answer = client_owner.post(url, json.dumps({'selectedItems': {'all': True}}), content_type='application/json')
        assert answer.status_code == 200, answer.content
        assert tasks[0].id in stub.predicted
    body = client_owner.get(f'/api/projects/{image_project.id}/mistakes/').json()
    assert body['model_version'] == 'stub.v0'
    assert [(row['task'], row['kinds']) for row in body['results']] == [(tasks[0].id, '1 missing, 1 spurious')]


def test_a_video_task_is_compared_frame_by_frame_and_names_its_worst_frames(client_owner, video_project, user):
    from tasks.models import Task

    from tests.scoring.test_disagreement import track

    task = Task.objects.create(project=video_project, data={'video': '/data/upload/1/fish.mp4'})
    annotate(task, user, [track('fish', [(1, 10, True), (20, 10, True), (40, 20, False)])])  # ends at 40
    predict(task, 'v1', result=[track('fish', [(1, 10, True), (50, 10, False)], score=0.9)])  # sees it to 50
    (row,) = client_owner.get(f'/api/projects/{video_project.id}/mistakes/').json()['results']
    assert row['kinds'] == 'missing on 10 frames, off on 6 frames' and row['missing'] == 10
    assert len(row['worst_frames']) == 5 and set(row['worst_frames']) <= set(range(35, 51))
