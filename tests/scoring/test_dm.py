"""The "Uncertainty" and "Model version" columns through Label Studio's real Data Manager API."""

import random

import pytest

from tests.scoring.conftest import create_view, make_tasks, number_filter, page, predict

pytestmark = pytest.mark.django_db

SHOWN = {'explore': ['tasks:data.image'], 'labeling': ['tasks:data.image']}  # hidden: only the image


def ids(body):
    return [task['id'] for task in body['tasks']]


def test_columns_are_offered_before_the_data_root(client_owner, scored_project):
    response = client_owner.get(f'/api/dm/columns/?project={scored_project.id}')
    assert response.status_code == 200
    columns = response.json()['columns']
    by_id = {c['id']: c for c in columns}
    assert by_id['uncertainty']['title'] == 'Uncertainty' and by_id['uncertainty']['type'] == 'Number'
    assert by_id['uncertainty_model_version']['title'] == 'Model version'
    assert "'v2'" in by_id['uncertainty']['help']
    assert columns[-1]['id'] == 'data'


def test_sorts_both_ways_with_values_and_versions(client_owner, scored_project, image_tasks):
    t = [task.id for task in image_tasks]
    most_first = page(client_owner, create_view(client_owner, scored_project, ['-tasks:uncertainty'], hidden=SHOWN))
    assert ids(most_first) == [t[4], t[1], t[2], t[0], t[3]]
    shown = [(task['uncertainty'], task['uncertainty_model_version']) for task in most_first['tasks']]
    assert shown == [
        (pytest.approx(0.9), 'v2'),
        (pytest.approx(0.7), 'v2'),
        (pytest.approx(0.4), 'v2'),
        (pytest.approx(0.1), 'v2'),
        (None, None),
    ]
    assert most_first['total'] == 5 and most_first['total_predictions'] == 9

    least_first = page(client_owner, create_view(client_owner, scored_project, ['tasks:uncertainty'], hidden=SHOWN))
    assert ids(least_first) == [t[0], t[2], t[1], t[4], t[3]]


@pytest.mark.parametrize('measure', ['min_region', 'entropy', 'margin', 'score'])
def test_predictions_with_only_a_task_score_get_a_value_under_every_measure(client_owner, image_project, measure):
    """Label Studio's documented form (no score on the regions) is shown and sorted, not left empty."""
    tasks = make_tasks(image_project, 3)
    choice = [{'from_name': 'label', 'to_name': 'image', 'type': 'rectanglelabels', 'value': {'x': 1}}]
    for task, score in zip(tasks, (0.95, 0.6, 0.8), strict=True):  # above 0.5: every measure agrees
        predict(task, 'v1', score=score, result=choice)
    url = f'/api/projects/{image_project.id}/uncertainty/'
    response = client_owner.patch(url, {'measure': measure}, content_type='application/json')
    assert response.status_code == 200 and response.json()['tasks']['unranked'] == 0, response.content
    body = page(client_owner, create_view(client_owner, image_project, ['-tasks:uncertainty'], hidden=SHOWN))
    assert ids(body) == [tasks[1].id, tasks[2].id, tasks[0].id]  # the least confident first
    assert all(task['uncertainty'] is not None for task in body['tasks'])


@pytest.mark.parametrize(
    ('operator', 'value', 'expected'),
    [
        ('greater', 0.6, [4, 1]),
        ('greater_or_equal', '0.4', [4, 1, 2]),
        ('less', 0.5, [2, 0]),
        ('in', {'min': 0.3, 'max': 0.75}, [1, 2]),
        ('not_in', {'min': 0.3, 'max': 0.75}, [4, 0]),
        ('empty', True, [3]),
    ],
)
def test_filters_by_range(client_owner, scored_project, image_tasks, operator, value, expected):
    view = create_view(client_owner, scored_project, ['-tasks:uncertainty'], number_filter(operator, value), SHOWN)
    body = page(client_owner, view)
    assert ids(body) == [image_tasks[i].id for i in expected]
    assert body['total'] == len(expected)


def test_filters_by_model_version(client_owner, scored_project, image_tasks):
    filters = {
        'conjunction': 'and',
        'items': [
            {
                'filter': 'filter:tasks:uncertainty_model_version',
                'operator': 'contains',
                'type': 'String',
                'value': 'v2',
            }
        ],
    }
    body = page(client_owner, create_view(client_owner, scored_project, ['tasks:id'], filters, SHOWN))
    assert ids(body) == [image_tasks[i].id for i in (0, 1, 2, 4)]


def test_a_new_version_empties_the_column_until_its_predictions_come(client_owner, scored_project, image_tasks):
    predict(image_tasks[2], 'v3', scores=[0.45])
    body = page(client_owner, create_view(client_owner, scored_project, ['-tasks:uncertainty'], hidden=SHOWN))
    assert body['tasks'][0]['id'] == image_tasks[2].id
    assert (body['tasks'][0]['uncertainty'], body['tasks'][0]['uncertainty_model_version']) == (
        pytest.approx(0.55),
        'v3',
    )
    assert [task['uncertainty'] for task in body['tasks'][1:]] == [None] * 4


def test_label_studio_built_in_score_column_still_works(client_owner, scored_project, image_tasks):
    body = page(client_owner, create_view(client_owner, scored_project, ['-tasks:predictions_score']))
    assert len(body['tasks']) == 5


@pytest.mark.parametrize('descending', [True, False])
def test_pages_across_the_scored_and_unscored_boundary_match_a_full_sort(client_owner, image_project, descending):
    rng = random.Random(7)
    tasks = make_tasks(image_project, 23)
    values = {}
    for task in tasks:
        if rng.random() < 0.6:
            low = round(rng.choice([0.2, 0.5, rng.random()]), 3)  # repeated values: ties go by id
            predict(task, 'v1', scores=[low])
            values[task.id] = 1 - low
    key = (lambda i: (-values[i], i)) if descending else (lambda i: (values[i], i))
    expected = sorted(values, key=key) + sorted(set(t.id for t in tasks) - set(values))
    view = create_view(client_owner, image_project, ['-tasks:uncertainty' if descending else 'tasks:uncertainty'])
    got = []
    for number in range(1, 6):
        got += ids(page(client_owner, view, page=number, page_size=5))
    assert got == expected


@pytest.mark.parametrize('descending', [True, False])
def test_a_whole_ordered_list_is_the_same_as_label_studios_sort(scored_project, image_tasks, descending):
    """Unsliced (Label Studio's sequential stream walks the whole list): same order as the database's sort."""
    from django.db.models import F
    from tasks.models import Task

    from ls_extensions.scoring import dm

    field = F('uncertainty').desc(nulls_last=True) if descending else F('uncertainty').asc(nulls_last=True)
    ours = dm.annotate_uncertainty(Task.objects.filter(project=scored_project)).order_by(field)
    plain = Task.objects.filter(project=scored_project).annotate(uncertainty=dm.stored('value')).order_by(field, 'id')
    assert list(ours.values_list('id', flat=True)) == list(plain.values_list('id', flat=True))
    assert [t.uncertainty for t in ours] == [t.uncertainty for t in plain]
    assert list(ours.values_list('id')[:3]) == list(plain.values_list('id')[:3])
    assert list(ours.values('id', 'uncertainty')[2:6]) == list(plain.values('id', 'uncertainty')[2:6])
    assert ours.first().id == (image_tasks[4] if descending else image_tasks[0]).id


@pytest.mark.parametrize('sparse', [False, True])
@pytest.mark.parametrize(('chunk', 'batches'), [(100, 4), (1, 1)])
def test_filtered_pages_are_right_however_the_index_walk_ends(
    client_owner, image_project, monkeypatch, chunk, batches, sparse
):
    """Label Studio's filters reject index candidates: the walk grows its batches, or hands over to a join."""
    from ls_extensions.scoring import ranking

    monkeypatch.setattr(ranking, 'WALK_CHUNK', chunk)
    monkeypatch.setattr(ranking, 'WALK_BATCHES', batches)
    tasks = make_tasks(image_project, 16)
    values = {}
    for i, task in enumerate(tasks[:12]):
        predict(task, 'v1', scores=[(i * 5 % 12) / 12])
        values[task.id] = 1 - (i * 5 % 12) / 12
    least = sorted(values, key=lambda i: (values[i], i))[:2]
    kept = least + [t.id for t in tasks[12:14]] if sparse else [t.id for t in tasks if t.id % 3]
    expected = sorted((i for i in kept if i in values), key=lambda i: (-values[i], i))
    expected += sorted(i for i in kept if i not in values)
    rejected = [t.id for t in tasks if t.id not in kept]
    filters = {
        'conjunction': 'and',
        'items': [
            {'filter': 'filter:tasks:id', 'operator': 'not_equal', 'type': 'Number', 'value': v} for v in rejected
        ],
    }
    view = create_view(client_owner, image_project, ['-tasks:uncertainty'], filters)
    got = []
    for number in range(1, (len(expected) + 2) // 3 + 1):
        got += ids(page(client_owner, view, page=number, page_size=3))
    assert got == expected
