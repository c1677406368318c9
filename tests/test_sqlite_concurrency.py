"""SQLite, the embedded default, holds up under one team's clicks while our background writers write (issue 15,
item 2): no request fails with "database is locked", nothing is stored twice.

The contention is forced, not hoped for: another connection holds SQLite's write lock for longer than
Label Studio's stock busy wait (Python's 5 s) while the requests and the worker's jobs are issued.
"""

import sqlite3
import threading
import time

import pytest
from django.db import connection

from settings import sqlite as sqlite_settings
from tests.conftest import logged_in_client
from tests.label_configs import IMAGE_BOXES
from tests.retraining.conftest import StubBackend
from tests.retraining.support import ENV, TOKEN, Worker
from tests.support.api import TokenApi
from tests.support.process import wait_for
from tests.support.server import LabelStudioServer, migrated_database

HOLD_SECONDS = 8  # > Python's default 5 s busy wait that Label Studio ships, < our 30 s
TASKS = 6
ALL = {'selectedItems': {'all': True, 'excluded': []}}


class WriteLockHolder(threading.Thread):
    """``BEGIN IMMEDIATE`` on the server's database file, held ``seconds``: every writer must wait it out."""

    def __init__(self, db_path, seconds):
        super().__init__(daemon=True)
        self.db_path, self.seconds = db_path, seconds
        self.locked, self.error = threading.Event(), None

    def run(self):
        db = sqlite3.connect(self.db_path, timeout=60, isolation_level=None)
        try:
            db.execute('BEGIN IMMEDIATE')
            db.execute('UPDATE django_migrations SET applied = applied WHERE id = 1')  # a write, held uncommitted
            self.locked.set()
            time.sleep(self.seconds)  # the contention itself, not a wait for something to happen
            db.execute('COMMIT')
        except Exception as exc:  # noqa: BLE001 - reported by the test
            self.error = exc
            self.locked.set()
        finally:
            db.close()


def rows(db_path, sql, *args):
    db = sqlite3.connect(db_path, timeout=60)
    try:
        return db.execute(sql, args).fetchall()
    finally:
        db.close()


@pytest.fixture(scope='module')
def ls_and_worker(tmp_path_factory):
    template = migrated_database(tmp_path_factory)
    env = {**ENV, 'LS_EXT_RETRAINING_SWEEP_SECONDS': '3', 'LS_EXT_SCORING_SWEEP_SECONDS': '3'}
    with LabelStudioServer(tmp_path_factory.mktemp('ls-sqlite'), template, env=env) as ls:
        with Worker(ls.data_dir, {**env, 'LABEL_STUDIO_HOST': ls.url}) as worker:
            yield ls, worker


def test_clicks_and_background_writers_under_a_held_write_lock(ls_and_worker):
    ls, worker = ls_and_worker
    db_path = ls.data_dir / 'label_studio.sqlite3'
    assert rows(db_path, 'PRAGMA journal_mode') == [('wal',)]
    api = TokenApi(ls.url, TOKEN, expect=(200, 201, 202))
    with StubBackend() as stub:
        # project A: the model connected, retraining on after 2 annotations; project B gets connected under the lock
        a = api('POST', '/api/projects', json={'title': 'project A', 'label_config': IMAGE_BOXES})['id']
        b = api('POST', '/api/projects', json={'title': 'project B', 'label_config': IMAGE_BOXES})['id']
        for project in (a, b):
            api('POST', f'/api/projects/{project}/import', json=[{'image': f'/data/x{i}.png'} for i in range(TASKS)])
        task_ids = [t['id'] for t in api('GET', f'/api/tasks?project={a}&page_size=100')['tasks']]
        backend = api('POST', '/api/ml', json={'url': stub.url, 'project': a, 'title': 'stub'})
        policy = {'enabled': True, 'threshold': 2, 'batch_size': 2, 'ml_backend': backend['id']}
        api('PATCH', f'/api/projects/{a}/retraining/', json=policy)

        def settled():
            runs = api('GET', f'/api/projects/{a}/retraining/runs/')
            return runs and all(r['status'] in ('succeeded', 'failed') for r in runs)

        wait_for(settled, 120, what='the first (predict-only) run', details=worker.log_tail)

        holder = WriteLockHolder(db_path, HOLD_SECONDS)
        holder.start()
        assert holder.locked.wait(30) and holder.error is None, holder.error
        clicks = {
            'connect model (B)': lambda: api('POST', '/api/ml', json={'url': stub.url, 'project': b, 'title': 'stub'}),
            'retrieve predictions (A)': lambda: api(
                'POST', f'/api/dm/actions?id=retrieve_tasks_predictions&project={a}', json=ALL
            ),
            'recompute uncertainty (A)': lambda: api('POST', f'/api/projects/{a}/uncertainty/recompute/'),
            'project PATCH (B)': lambda: api('PATCH', f'/api/projects/{b}', json={'title': 'B renamed'}),
            **{
                f'submit annotation {task}': (
                    lambda task=task: api('POST', f'/api/tasks/{task}/annotations', json={'result': []})
                )
                for task in task_ids[:4]
            },
        }
        failures, started = {}, time.monotonic()

        def click(name, call):
            try:
                call()
            except Exception as exc:  # noqa: BLE001 - collected and asserted below
                failures[name] = exc

        threads = [threading.Thread(target=click, args=item) for item in clicks.items()]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(120)
        holder.join(60)
        assert holder.error is None, holder.error
        assert not failures, failures
        assert time.monotonic() - started >= HOLD_SECONDS - 1  # they did wait out the held lock

        # the background writers (a recompute, the training run the submits triggered) finish without errors
        def background_done():
            jobs = rows(db_path, 'SELECT status, error FROM ls_ext_scoring_recomputejob WHERE project_id = ?', a)
            runs = rows(
                db_path, 'SELECT status, error, trigger FROM ls_ext_retraining_trainingrun WHERE project_id = ?', a
            )
            done = jobs and all(s in ('done', 'failed') for s, _ in jobs) and len(runs) >= 2
            return done and all(s in ('succeeded', 'failed') for s, _, _ in runs) and (jobs, runs)

        jobs, runs = wait_for(background_done, 180, 1, 'recompute and training run', worker.log_tail)
        assert all(s == 'done' for s, _ in jobs), jobs
        assert all(s == 'succeeded' for s, _, _ in runs), runs
        assert stub.train_calls >= 1

    # no duplicates: one backend per project, one annotation per submit
    assert rows(db_path, 'SELECT project_id, COUNT(*) FROM ml_mlbackend GROUP BY project_id ORDER BY 1') == [
        (a, 1),
        (b, 1),
    ]
    annotated = rows(db_path, 'SELECT task_id, COUNT(*) FROM task_completion WHERE project_id = ? GROUP BY 1', a)
    assert sorted(annotated) == sorted((task, 1) for task in task_ids[:4])
    for log in (ls.log_tail(400), worker.log_tail(400)):
        assert 'database is locked' not in log and 'OperationalError' not in log, log


def test_the_settings_apply_to_sqlite_only():
    databases = {
        'default': {'ENGINE': 'django.db.backends.sqlite3', 'NAME': 'x', 'OPTIONS': {'timeout': 5}},
        'pg': {'ENGINE': 'django.db.backends.postgresql', 'NAME': 'y'},
    }
    sqlite_settings.harden(databases)
    assert databases['default']['OPTIONS'] == {
        'timeout': 5,  # an explicit option wins
        'transaction_mode': 'IMMEDIATE',
        'init_command': 'PRAGMA journal_mode=WAL;PRAGMA synchronous=NORMAL',
    }
    assert 'OPTIONS' not in databases['pg']


@pytest.mark.django_db
def test_a_failed_model_connect_leaves_no_backend_behind(user, image_project):
    """The first "Validate and Save" failed in ``project.save`` after inserting the row; clicked again, the
    project had two identical backends. The fault is produced in the database itself: a trigger that
    refuses the project's UPDATE, as a busy SQLite database did."""
    from ml.models import MLBackend

    client = logged_in_client(user)
    client.raise_request_exception = False
    with connection.cursor() as cursor:
        cursor.execute(
            'CREATE TRIGGER refuse_project_update BEFORE UPDATE OF model_version ON project '
            "BEGIN SELECT RAISE(ABORT, 'database is locked'); END"
        )
    with StubBackend() as stub:
        body = {'url': stub.url, 'project': image_project.id, 'title': 'stub'}
        failed = client.post('/api/ml/', data=body, content_type='application/json')
        assert failed.status_code >= 500
        assert not MLBackend.objects.filter(project=image_project).exists()
        with connection.cursor() as cursor:
            cursor.execute('DROP TRIGGER refuse_project_update')
        again = client.post('/api/ml/', data=body, content_type='application/json')
        assert again.status_code == 201, again.content
    assert MLBackend.objects.filter(project=image_project).count() == 1
