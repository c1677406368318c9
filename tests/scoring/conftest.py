"""Scoring fixtures: jobs run inline, predictions of several model versions on real Label Studio models."""

import pytest

from tests.conftest import box


@pytest.fixture(autouse=True)
def _inline_jobs(settings):
    """Jobs run in the caller (``settings.test``: the tests of the Celery path switch it), so a test sees
    their result when the call returns; the Data Manager's per-process caches start empty."""
    from ls_extensions.scoring import dm

    settings.LS_EXT_SCORING_RUNNER = 'inline'
    dm._checked.clear()
    dm._base_columns.clear()
    yield
    dm._checked.clear()
    dm._base_columns.clear()


@pytest.fixture(autouse=True)
def _postgres_only(request):
    """Tests marked ``postgres`` run in the PostgreSQL pass only."""
    if request.node.get_closest_marker('postgres'):
        from django.db import connection

        if connection.vendor != 'postgresql':
            pytest.skip('needs PostgreSQL: run with DJANGO_DB=postgresql (see scripts/pg.sh)')


def predict(task, version, scores=(), score=None, result=None):
    """A prediction of ``version`` with one box per region score (signals fire, as in Label Studio)."""
    from tasks.models import Prediction

    if result is None:
        result = [box(10 + 5 * i, 10, 20, 20, score=s) for i, s in enumerate(scores)]
    return Prediction.objects.create(task=task, project=task.project, model_version=version, score=score, result=result)


def make_tasks(project, count):
    from tasks.models import Task

    return [Task.objects.create(project=project, data={'image': f'/data/upload/1/img{i}.jpg'}) for i in range(count)]


def stored(project):
    """task id -> (value, model version, measure) as stored."""
    from ls_extensions.scoring.models import TaskUncertainty

    rows = TaskUncertainty.objects.filter(project=project).values_list('task_id', 'value', 'model_version', 'measure')
    return {task_id: (value, version, measure) for task_id, value, version, measure in rows}


def create_view(client, project, ordering=(), filters=None, hidden=None):
    """A Data Manager tab the way the UI saves one; returns its id."""
    data = {'ordering': list(ordering)}
    if filters is not None:
        data['filters'] = filters
    if hidden is not None:
        data['hiddenColumns'] = hidden
    response = client.post('/api/dm/views/', {'project': project.id, 'data': data}, content_type='application/json')
    assert response.status_code == 201, response.content
    return response.json()['id']


def page(client, view_id, page=1, page_size=30):
    response = client.get(f'/api/tasks?view={view_id}&page={page}&page_size={page_size}')
    assert response.status_code == 200, response.content
    return response.json()


def number_filter(operator, value, column='uncertainty'):
    return {
        'conjunction': 'and',
        'items': [{'filter': f'filter:tasks:{column}', 'operator': operator, 'type': 'Number', 'value': value}],
    }


@pytest.fixture
def scored_project(image_project, image_tasks):
    """Five tasks with predictions of an old (v1) and a current (v2) version; v2's lowest box scores are
    0.9, 0.3, 0.6, (no prediction), 0.1 -> uncertainties 0.1, 0.7, 0.4, none, 0.9 under min_region."""
    for task, low in zip(image_tasks, (0.2, 0.9, 0.5, 0.7, 0.95), strict=True):
        predict(task, 'v1', scores=[low, 0.99], score=low)
    for task, low in zip(image_tasks, (0.9, 0.3, 0.6, None, 0.1), strict=True):
        if low is not None:
            predict(task, 'v2', scores=[0.95, low], score=0.5)
    return image_project
