"""First Data Manager page on PostgreSQL: our "Uncertainty" and "Diverse order" columns vs Label Studio's "Prediction score" vs task id.

    eval "$(scripts/pg.sh start)"
    .venv/bin/python benchmarks/dm_sort.py                      # 10k, 100k and 1M tasks
    .venv/bin/python benchmarks/dm_sort.py --sizes 10000,100000

For each size, one project in a dedicated database (``ls_ext_bench_scoring``, kept between runs; ``--rebuild``
starts over) gets that many tasks with two model versions of predictions each (v1 older, v2 newer; the project's
``model_version`` is v2 so the built-in column averages the same predictions), COPYed into Label Studio's own
tables. The real recompute job then scores them (timed). Then ``GET /api/tasks?view=...&page=1&page_size=30``
goes through Django in-process (no HTTP server), ``--repeat`` times per ordering, interleaved; printed are the
median request time, the time of the SQL query that picks the page's 30 ids, how many queries a request runs
and how long its project-wide totals/count queries take (part of Label Studio's floor).
"""

import argparse
import json
import os
import random
import statistics
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DATABASE = 'ls_ext_bench_scoring'
GROUP = 5  # tasks per near-duplicate cluster, for "Diverse order"
ORDERINGS = {
    'uncertainty (ours)': ['-tasks:uncertainty'],
    'diverse order (ours)': ['tasks:diverse_order'],
    'prediction score (LS)': ['tasks:predictions_score'],
    'id (LS floor)': ['tasks:id'],
}
STOCK = ' [stock floor]'  # the same request without our cuts of Label Studio's per-request work
STOCK_ROWS = ('uncertainty (ours)', 'id (LS floor)')
UI_HIDDEN = {  # what the UI's default tab hides: with it, every page request also asks for the column list
    'explore': ['tasks:inner_id', 'tasks:annotations_results', 'tasks:annotations_ids', 'tasks:predictions_score',
                'tasks:predictions_model_versions', 'tasks:predictions_results', 'tasks:file_upload',
                'tasks:storage_filename', 'tasks:created_at', 'tasks:updated_at', 'tasks:updated_by',
                'tasks:avg_lead_time', 'tasks:draft_exists'],
    'labeling': [],
}  # fmt: skip


def setup_django():
    for key in ('DJANGO_DB', 'POSTGRE_HOST', 'POSTGRE_PORT'):
        if key not in os.environ:
            sys.exit('Start PostgreSQL first:  eval "$(scripts/pg.sh start)"')
    os.environ['POSTGRE_NAME'] = DATABASE
    os.environ.setdefault('LABEL_STUDIO_BASE_DATA_DIR', tempfile.mkdtemp(prefix='dm-sort-'))
    os.environ['DJANGO_SETTINGS_MODULE'] = 'settings.offline'
    sys.path.insert(0, str(REPO))
    # our "tests" package (make_user, logged_in_client), bound before django.setup() puts Label Studio's own
    # "tests" package on sys.path ahead of it
    import tests.conftest  # noqa: F401

    _create_database()
    import django

    django.setup()
    from django.conf import settings
    from django.core.management import call_command

    settings.LS_EXT_SCORING_RUNNER = 'inline'  # the recompute runs here, timed
    call_command('migrate', verbosity=0, interactive=False)


def _create_database():
    import psycopg

    env = os.environ
    dsn = f'host={env["POSTGRE_HOST"]} port={env["POSTGRE_PORT"]} user={env.get("POSTGRE_USER", "postgres")}'
    with psycopg.connect(dsn + ' dbname=postgres', autocommit=True) as conn:
        if not conn.execute('SELECT 1 FROM pg_database WHERE datname = %s', [DATABASE]).fetchone():
            conn.execute(f'CREATE DATABASE {DATABASE}')


LABEL_CONFIG = """<View>
  <Image name="image" value="$image"/>
  <RectangleLabels name="label" toName="image"><Label value="fish"/><Label value="crab"/></RectangleLabels>
</View>"""


def owner():
    """The benchmark's user (kept in the benchmark database between runs), made like the tests make theirs."""
    from users.models import User

    from tests.conftest import make_user

    return User.objects.filter(email='bench@example.org').first() or make_user('bench@example.org')


def box(rng, score):
    value = {'x': round(rng.uniform(0, 90), 1), 'y': round(rng.uniform(0, 90), 1), 'width': 8, 'height': 6,
             'rectanglelabels': ['fish']}  # fmt: skip
    return {'type': 'rectanglelabels', 'from_name': 'label', 'to_name': 'image', 'value': value, 'score': score}


def copy_rows(sql, rows):
    from django.db import connection

    with connection.cursor() as cursor, cursor.connection.cursor() as raw, raw.copy(sql) as copy:
        for row in rows:
            copy.write_row(row)


def build(size, user):
    """A project with ``size`` tasks and a v1 and a v2 prediction per task, straight into LS's tables."""
    from django.db import connection, transaction
    from django.utils import timezone
    from projects.models import Project

    rng = random.Random(size)
    now = timezone.now()
    with transaction.atomic():
        project = Project.objects.create(
            title=f'dm-sort-{size}', created_by=user, organization=user.active_organization,
            label_config=LABEL_CONFIG, model_version='v2',
        )  # fmt: skip
        copy_rows(
            'COPY task (data, meta, project_id, created_at, updated_at, is_labeled, overlap, inner_id, '
            'total_annotations, cancelled_annotations, total_predictions, comment_count, unresolved_comment_count, '
            'allow_skip) FROM STDIN',
            (
                (json.dumps({'image': f'/data/upload/{size}/{i}.jpg'}), '{}', project.id, now, now,
                 False, 1, i + 1, 0, 0, 2, 0, 0, True)
                for i in range(size)
            ),
        )  # fmt: skip
        with connection.cursor() as cursor:
            cursor.execute('SELECT id FROM task WHERE project_id = %s ORDER BY id', [project.id])
            ids = [row[0] for row in cursor.fetchall()]

        def predictions():
            for version, created in (('v1', now - timedelta(days=1)), ('v2', now)):
                for task_id in ids:
                    scores = [round(rng.random(), 4) for _ in range(1 if version == 'v1' else 2)]
                    result = json.dumps([box(rng, s) for s in scores])
                    yield result, sum(scores) / len(scores), version, created, created, task_id, 0.0, project.id

        copy_rows(
            'COPY prediction (result, score, model_version, created_at, updated_at, task_id, mislabeling, '
            'project_id) FROM STDIN',
            predictions(),
        )
    return project


def vacuum(*tables):
    from django.db import connection

    with connection.cursor() as cursor:
        for table in tables:
            cursor.execute(f'VACUUM ANALYZE {table}')


def project_for(size, user, rebuild):
    from projects.models import Project

    from ls_extensions.scoring import jobs
    from ls_extensions.scoring.models import RecomputeJob, TaskUncertainty

    project = Project.objects.filter(title=f'dm-sort-{size}').order_by('-id').first()
    ready = project and TaskUncertainty.objects.filter(project=project).count() == size
    if ready and not rebuild:
        print(f'{size:>9} tasks: reusing project {project.id}')
        return project
    if project:
        project.delete()
    started = time.perf_counter()
    project = build(size, user)
    built = time.perf_counter() - started
    vacuum('task', 'prediction')
    started = time.perf_counter()
    jobs.keep_fresh(project.id)  # first use: learns v1 and v2, recomputes v2 with the real job
    scored = time.perf_counter() - started
    job = RecomputeJob.objects.filter(project=project, kind='recompute').latest('id')
    vacuum('ls_ext_scoring_taskuncertainty')
    print(
        f'{size:>9} tasks: built in {built:.1f} s, {job.total} v2 predictions scored by the recompute job in '
        f'{scored:.1f} s ({job.status}, {job.scored} ranked)'
    )
    return project


def group_tasks(project, size):
    """Every task in a cluster of ``GROUP`` (COPYed, as the clusters job would store them) and the policy
    ``diverse``, so that "Diverse order" is a column of the project."""
    from ls_extensions.scoring.models import ScoringPolicy, TaskCluster

    if TaskCluster.objects.filter(project=project).count() != size:
        TaskCluster.objects.filter(project=project).delete()
        ids = list(project.tasks.order_by('id').values_list('id', flat=True))  # not read during the COPY
        table = TaskCluster._meta.db_table
        copy_rows(
            f'COPY {table} (task_id, project_id, cluster) FROM STDIN',
            ((task_id, project.id, (i // GROUP) % 65536) for i, task_id in enumerate(ids)),
        )
        vacuum(table)
    ScoringPolicy.objects.filter(project=project).update(diverse=True)


def create_views(client, project, ui_tab):
    views = {}
    for name, ordering in ORDERINGS.items():
        data = {'ordering': ordering, **({'hiddenColumns': UI_HIDDEN} if ui_tab else {})}
        response = client.post('/api/dm/views/', {'project': project.id, 'data': data}, content_type='application/json')
        assert response.status_code == 201, response.content
        views[name] = response.json()['id']
    return views


def is_page_ids(sql):
    return sql.startswith('SELECT "task"."id"') and 'LIMIT 30' in sql and '"task"."id" IN (' not in sql


def is_totals(sql):
    return ('COUNT(' in sql or 'SUM(' in sql) and 'FROM "task"' in sql and 'LIMIT' not in sql


class Timer:
    """Every SQL statement of a request with its own wall time (Django's capture rounds to milliseconds),
    marked when it ran inside ``ranking.ranked_page`` (the statements that pick our page's ids)."""

    ranking = 0  # depth of ranked_page calls (its own querysets go through it too)

    def __init__(self):
        self.queries = []

    def __call__(self, execute, sql, params, many, context):
        started = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            self.queries.append((sql, time.perf_counter() - started, params, Timer.ranking > 0))


def mark_ranked_pages():
    """Flag the statements our ranked page runs (benchmark-only wrapper)."""
    from ls_extensions.scoring import ranking

    original = ranking.ranked_page

    def marked(queryset):
        Timer.ranking += 1
        try:
            return original(queryset)
        finally:
            Timer.ranking -= 1

    ranking.ranked_page = marked


def one_request(client, view):
    from django.db import connection

    timer = Timer()
    with connection.execute_wrapper(timer):
        started = time.perf_counter()
        response = client.get(f'/api/tasks?view={view}&page=1&page_size=30')
        elapsed = time.perf_counter() - started
    assert response.status_code == 200 and len(response.json()['tasks']) == 30, response.content[:300]
    ours = [(sql, t, params) for sql, t, params, ranked in timer.queries if ranked]
    picking = ours or [(sql, t, params) for sql, t, params, _ in timer.queries if is_page_ids(sql)]
    page_ids = sum(t for _, t, _ in picking)
    totals = sum(t for sql, t, _, _ in timer.queries if is_totals(sql))
    page_sql = [(sql, params) for sql, _, params in picking]
    return elapsed, page_ids, totals, len(timer.queries), page_sql, response.json()


def plan_summary(queries):
    """The scan and sort nodes of each statement that picked the page, statements separated by ' | '."""
    from django.db import connection

    plans = []
    for sql, params in queries[:3]:
        with connection.cursor() as cursor:
            cursor.execute('EXPLAIN (ANALYZE, COSTS OFF) ' + sql, params)
            lines = [row[0] for row in cursor.fetchall()]
        nodes = [line.strip().lstrip('-> ').split(' (actual')[0] for line in lines if 'Scan' in line or 'Sort' in line]
        plans.append(' > '.join(dict.fromkeys(n for n in nodes if not n.startswith(('Sort Method', 'Sort Key')))))
    return ' | '.join(plans)[:200]


def stock_floor(on):
    """Switch off our two cuts of Label Studio's per-request work (comment-author prefetch, column-list reuse)."""
    from ls_extensions.scoring import dm
    from ls_extensions.scoring.task_serializer import TaskListSerializer

    TaskListSerializer.prefetch = not on
    dm.BASE_COLUMNS_TTL = -1.0 if on else 10.0


def measure(size, project, client, repeat, ui_tab):
    views = create_views(client, project, ui_tab)
    runs = [(name, view, False) for name, view in views.items()]
    runs += [(name + STOCK, views[name], True) for name in STOCK_ROWS]
    samples = {name: [] for name, _, _ in runs}
    for _ in range(repeat + 1):  # the first round warms up
        for name, view, stock in runs:
            stock_floor(stock)
            samples[name].append(one_request(client, view))
    stock_floor(False)
    samples = {name: runs[1:] for name, runs in samples.items()}
    rows = {}
    for name, runs in samples.items():
        first = runs[0]
        rows[name] = {
            'request_ms': statistics.median(r[0] for r in runs) * 1000,
            'page_ids_ms': statistics.median(r[1] for r in runs) * 1000,
            'totals_ms': statistics.median(r[2] for r in runs) * 1000,
            'queries': first[3],
            'plan': plan_summary(first[4]) if first[4] else '?',
            'page_queries': len(first[4]),
            'first_ids': [t['id'] for t in first[5]['tasks'][:3]],
        }
    return rows


def report(results):
    print()
    header = (
        f'{"tasks":>9}  {"ordered by":<22} {"request":>10} {"page-ids SQL":>13} {"totals+count":>13} {"queries":>8}'
    )
    print(header + '  page-ids plan (EXPLAIN ANALYZE)')
    print('-' * (len(header) + 40))
    for size, rows in results.items():
        for name, row in rows.items():
            print(
                f'{size:>9}  {name:<34} {row["request_ms"]:>8.1f}ms {row["page_ids_ms"]:>11.2f}ms '
                f'{row["totals_ms"]:>11.1f}ms {row["queries"]:>8}  {row["plan"]}'
            )
    print()
    for size, rows in results.items():
        ours, diverse, builtin, floor = (rows[name] for name in ORDERINGS)
        stock_ours, stock_floor_row = (rows[name + STOCK] for name in STOCK_ROWS)
        print(
            f'{size:>9} tasks: ours / id = {ours["request_ms"] / floor["request_ms"]:.2f} '
            f'(stock floor: {stock_ours["request_ms"] / stock_floor_row["request_ms"]:.2f})  '
            f'built-in / ours = {builtin["request_ms"] / ours["request_ms"]:.1f}x  '
            f'page-ids ours {ours["page_ids_ms"]:.2f} ms vs built-in {builtin["page_ids_ms"]:.1f} ms  '
            f'floor {stock_floor_row["request_ms"]:.0f} -> {floor["request_ms"]:.0f} ms  '
            f'diverse order / id = {diverse["request_ms"] / floor["request_ms"]:.2f}'
        )


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--sizes', default='10000,100000,1000000', help='comma-separated task counts')
    parser.add_argument('--repeat', type=int, default=11, help='requests per ordering (median reported)')
    parser.add_argument('--rebuild', action='store_true', help='rebuild the projects even if they exist')
    parser.add_argument('--ui-tab', action='store_true', help="views with the UI default tab's hidden columns")
    args = parser.parse_args()
    setup_django()
    mark_ranked_pages()
    user = owner()
    from tests.conftest import logged_in_client

    client = logged_in_client(user)
    results = {}
    for size in [int(s) for s in args.sizes.split(',')]:
        project = project_for(size, user, args.rebuild)
        group_tasks(project, size)
        results[size] = measure(size, project, client, args.repeat, args.ui_tab)
        report({size: results[size]})
    if len(results) > 1:
        report(results)


if __name__ == '__main__':
    main()
