"""On PostgreSQL, what the Data Manager runs for our column: an index scan for the page, counts untouched."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from tests.scoring.conftest import create_view, number_filter, page

pytestmark = [pytest.mark.postgres, pytest.mark.django_db]

TASKS = 20_000


@pytest.fixture
def big_project(image_project):
    """20k tasks, two model versions of predictions each, scored through the real recompute job."""
    from tasks.models import Prediction, Task

    from ls_extensions.scoring import jobs

    Task.objects.bulk_create(
        [Task(project=image_project, data={'image': f'/i/{i}.jpg'}, inner_id=i) for i in range(TASKS)], 5000
    )
    ids = list(Task.objects.filter(project=image_project).values_list('id', flat=True))
    for version in ('v1', 'v2'):
        Prediction.objects.bulk_create(
            [
                Prediction(
                    task_id=t, project=image_project, model_version=version, score=0.5,
                    result=[{'type': 'rectanglelabels', 'value': {}, 'score': (t * 37 % 1000) / 1000}],
                )
                for t in ids
            ],
            5000,
        )  # fmt: skip
    jobs.keep_fresh(image_project.id)  # learns v1 and v2, then recomputes for v2
    with connection.cursor() as cursor:
        cursor.execute('ANALYZE')
    return image_project


def plan(sql):
    with connection.cursor() as cursor:
        cursor.execute('EXPLAIN ' + sql)
        return '\n'.join(row[0] for row in cursor.fetchall())


def captured(client, view):
    with CaptureQueriesContext(connection) as ctx:
        body = page(client, view)
    return body, [q['sql'] for q in ctx.captured_queries]


@pytest.mark.parametrize(('ordering', 'index'), [('-tasks:uncertainty', 'desc'), ('tasks:uncertainty', 'asc')])
def test_the_page_is_an_index_scan_and_counts_do_not_join(client_owner, big_project, ordering, index):
    from ls_extensions.scoring.models import TaskUncertainty

    assert TaskUncertainty.objects.filter(project=big_project, model_version='v2').count() == TASKS
    body, queries = captured(client_owner, create_view(client_owner, big_project, [ordering]))
    assert body['total'] == TASKS and len(body['tasks']) == 30
    walk = next(q for q in queries if q.startswith('SELECT "ls_ext_scoring_taskuncertainty"."task_id"'))
    walk_plan = plan(walk)
    assert f'Index Only Scan using ls_ext_unc_project_{index}' in walk_plan and 'Sort' not in walk_plan, walk_plan
    assert walk.endswith('LIMIT 45')
    picked = [q for q in queries if q.startswith('SELECT "task"."id", (SELECT') and '"task"."id" IN (' in q]
    assert len(picked) == 1 and 'Sort' not in plan(picked[0]) and 'Seq Scan' not in plan(picked[0])
    counts = [q for q in queries if ('COUNT(' in q or 'SUM(' in q) and 'FROM "task"' in q]
    assert len(counts) == 2 and all('ls_ext_scoring_taskuncertainty' not in q for q in counts), counts


def test_a_range_filter_is_an_index_range(client_owner, big_project):
    view = create_view(client_owner, big_project, ['-tasks:uncertainty'], number_filter('greater', 0.99))
    body, queries = captured(client_owner, view)
    assert body['total'] == 200  # scores 0.000 .. 0.009 -> uncertainty above 0.99
    count_query = next(q for q in queries if q.startswith('SELECT COUNT(*)') and 'FROM "task"' in q)
    assert 'ls_ext_unc_project' in plan(count_query)
