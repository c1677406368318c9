"""Stored scores follow Label Studio's predictions and the active model version, through every write path."""

import json
import math

import pytest

from tests.conftest import box
from tests.scoring.conftest import make_tasks, predict, stored

pytestmark = pytest.mark.django_db


def policy(project):
    from ls_extensions.scoring.models import ScoringPolicy

    return ScoringPolicy.objects.get(project=project)


def test_scores_come_from_the_newest_version_only(scored_project, image_tasks):
    t = [task.id for task in image_tasks]
    assert stored(scored_project) == {
        t[0]: (pytest.approx(0.1), 'v2', 'min_region'),
        t[1]: (pytest.approx(0.7), 'v2', 'min_region'),
        t[2]: (pytest.approx(0.4), 'v2', 'min_region'),
        t[4]: (pytest.approx(0.9), 'v2', 'min_region'),
    }
    assert (policy(scored_project).active_version, policy(scored_project).active_measure) == ('v2', 'min_region')


def test_update_and_delete_keep_the_newest_prediction_of_the_version(scored_project, image_tasks):
    from tasks.models import Prediction

    first = image_tasks[0]
    current = Prediction.objects.get(task=first, model_version='v2')
    current.result = [box(1, 1, 5, 5, score=0.25)]
    current.save()
    assert stored(scored_project)[first.id][0] == pytest.approx(0.75)

    newer = predict(first, 'v2', scores=[0.5])
    assert stored(scored_project)[first.id][0] == pytest.approx(0.5)
    current.result = [box(1, 1, 5, 5, score=0.01)]  # an older prediction changing does not win
    current.save()
    assert stored(scored_project)[first.id][0] == pytest.approx(0.5)

    newer.delete()
    assert stored(scored_project)[first.id][0] == pytest.approx(0.99)
    current.delete()
    assert first.id not in stored(scored_project)


def test_a_new_version_replaces_every_stale_score(scored_project, image_tasks):
    predict(image_tasks[3], 'v3', scores=[0.8])
    assert stored(scored_project) == {image_tasks[3].id: (pytest.approx(0.2), 'v3', 'min_region')}
    assert policy(scored_project).active_version == 'v3'
    # an old version's prediction arriving late neither switches back nor gets ranked
    predict(image_tasks[0], 'v1', scores=[0.5])
    assert policy(scored_project).active_version == 'v3'
    assert set(stored(scored_project)) == {image_tasks[3].id}


def test_the_active_version_follows_a_successfully_set_up_ml_backend(scored_project, image_tasks):
    from ml.models import MLBackend

    backend = MLBackend.objects.create(
        project=scored_project, url='http://127.0.0.1:9090', title='Fish detector', model_version='', state='DI'
    )
    assert policy(scored_project).active_version == 'v2'  # not set up yet: nothing changes
    backend.model_version, backend.state = 'fish-7', 'CO'
    backend.save()
    assert policy(scored_project).active_version == 'fish-7'
    assert stored(scored_project) == {}  # v2 is stale now; no fish-7 prediction yet
    predict(image_tasks[1], 'fish-7', scores=[0.6, 0.7])
    assert stored(scored_project) == {image_tasks[1].id: (pytest.approx(0.4), 'fish-7', 'min_region')}


def test_bulk_imported_predictions_are_scored_on_the_next_data_manager_load(client_owner, scored_project, image_tasks):
    from tasks.models import Task

    tasks = [
        {'data': {'image': f'/data/upload/1/new{i}.jpg'}, 'predictions': [
            {'model_version': 'v2', 'score': 0.5, 'result': [box(1, 1, 5, 5, score=low)]}]}
        for i, low in enumerate((0.35, 0.05))
    ]  # fmt: skip
    response = client_owner.post(
        f'/api/projects/{scored_project.id}/import', json.dumps(tasks), content_type='application/json'
    )
    assert response.status_code == 201, response.content
    new = list(Task.objects.filter(project=scored_project).exclude(id__in=[t.id for t in image_tasks]).order_by('id'))
    assert {t.id for t in new}.isdisjoint(stored(scored_project))  # bulk_create sent no signal

    assert client_owner.get(f'/api/dm/columns/?project={scored_project.id}').status_code == 200
    assert stored(scored_project)[new[0].id][0] == pytest.approx(0.65)
    assert stored(scored_project)[new[1].id][0] == pytest.approx(0.95)


def test_predictions_import_api_is_caught_up_and_learns_new_versions(client_owner, scored_project, image_tasks):
    payload = [
        {'task': image_tasks[3].id, 'model_version': 'v4', 'score': 0.1, 'result': [box(1, 1, 5, 5, score=0.45)]}
    ]
    response = client_owner.post(
        f'/api/projects/{scored_project.id}/import/predictions', json.dumps(payload), content_type='application/json'
    )
    assert response.status_code == 201, response.content
    client_owner.get(f'/api/dm/columns/?project={scored_project.id}')
    assert policy(scored_project).active_version == 'v4'
    assert stored(scored_project) == {image_tasks[3].id: (pytest.approx(0.55), 'v4', 'min_region')}


def test_bad_scores_are_clamped_or_ignored_and_counted(image_project):
    from ls_extensions.scoring.models import TaskUncertainty

    tasks = make_tasks(image_project, 3)
    predict(tasks[0], 'v1', result=[box(1, 1, 5, 5, score=1.7), box(9, 9, 5, 5, score='NaN')])
    predict(tasks[1], 'v1', result=[box(1, 1, 5, 5, score='high'), box(9, 9, 5, 5, score=-3)])
    predict(tasks[2], 'v1', result=[box(1, 1, 5, 5), box(9, 9, 5, 5, score=None)])
    rows = {r.task_id: r for r in TaskUncertainty.objects.filter(project=image_project)}
    assert (rows[tasks[0].id].value, rows[tasks[0].id].clamped, rows[tasks[0].id].ignored) == (0.0, 1, 1)
    assert (rows[tasks[1].id].value, rows[tasks[1].id].clamped, rows[tasks[1].id].ignored) == (1.0, 1, 1)
    assert (rows[tasks[2].id].value, rows[tasks[2].id].ignored) == (None, 2)
    assert all(r.value is None or math.isfinite(r.value) for r in rows.values())


def test_a_nan_task_score_is_not_ranked(client_owner, image_project):
    tasks = make_tasks(image_project, 2)
    predict(tasks[0], 'v1', scores=[0.5], score=float('nan'))
    predict(tasks[1], 'v1', scores=[0.5], score=1.5)
    response = client_owner.patch(
        f'/api/projects/{image_project.id}/uncertainty/', {'measure': 'score'}, content_type='application/json'
    )
    assert response.status_code == 200, response.content
    assert stored(image_project) == {tasks[0].id: (None, 'v1', 'score'), tasks[1].id: (0.0, 'v1', 'score')}
    assert response.json()['tasks'] == {'ranked': 1, 'unranked': 1, 'clamped': 1, 'ignored': 1}


def test_deleting_a_task_deletes_its_score(scored_project, image_tasks):
    image_tasks[1].delete()
    assert image_tasks[1].id not in stored(scored_project)
    assert len(stored(scored_project)) == 3


def test_a_write_for_an_overtaken_generation_is_refused(scored_project, image_tasks):
    """The guard that keeps a slow job or signal from writing a stale version after a switch."""
    from tasks.models import Prediction

    from ls_extensions.scoring import services

    old = policy(scored_project).generation
    stale = dict(
        Prediction.objects.filter(task=image_tasks[0], model_version='v2').values(*services.PREDICTION_FIELDS)[0]
    )
    predict(image_tasks[3], 'v3', scores=[0.8])  # switch: new generation, v2 rows gone
    assert policy(scored_project).generation > old
    assert services.write_scores(scored_project.id, [stale], generation=old) is False
    assert services.write_scores(scored_project.id, [stale]) is True  # current generation: v2 is not active
    assert set(stored(scored_project)) == {image_tasks[3].id}
