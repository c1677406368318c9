"""Helpers for the retraining tests and benchmarks/annotation_latency.py: the environment of the server and
worker subprocesses (``settings.offline``), a migrated template database, the Celery worker process."""

import os

from ls_extensions.ml_backend import ssrf
from tests.support.process import ManagedProcess
from tests.support.server import BIN, REPO

TOKEN = 'retraining-test-token-0123456789'
ENV = {
    'LABEL_STUDIO_USERNAME': 'retrain@example.org',
    'LABEL_STUDIO_PASSWORD': 'secret-pass-123',
    'LABEL_STUDIO_USER_TOKEN': TOKEN,
    'LABEL_STUDIO_ENABLE_LEGACY_API_TOKEN': 'true',
    **ssrf.env(),
    'ML_TIMEOUT_SETUP': '30',
    'LS_EXT_RETRAINING_POLL_SECONDS': '1',
    'DJANGO_SETTINGS_MODULE': 'settings.offline',
}


class Worker(ManagedProcess):
    """``celery -A ls_extensions worker -B`` on the server's data dir (so: its database and broker file)."""

    def __init__(self, data_dir, env):
        self.data_dir = data_dir
        self.log_path = data_dir / 'worker.log'
        self.env = {**os.environ, **env, 'LABEL_STUDIO_BASE_DATA_DIR': str(data_dir), 'PYTHONUNBUFFERED': '1'}

    def start(self, timeout=120):
        schedule = str(self.data_dir / 'celerybeat-schedule')
        self.spawn(
            [
                str(BIN / 'celery'),
                '-A',
                'ls_extensions',
                'worker',
                '--pool',
                'solo',
                '-l',
                'info',
                '-B',
                '-s',
                schedule,
            ],
            self.env,
            REPO,
        )
        return self.wait_ready(lambda: b' ready.' in self.log_path.read_bytes(), timeout, what='Celery worker')


def broker_messages(data_dir, task):
    """[(visible, headers)] of the messages of ``task`` in the embedded broker (kombu's SQLAlchemy transport on
    ``celery-broker.sqlite3`` in the data dir), oldest first.

    A worker fetching a message marks its row invisible, and the row stays so (acknowledged or not: the transport
    never deletes it), so "no visible row" means nothing is left in the broker for another worker to take.
    """
    import contextlib
    import json
    import sqlite3

    path = data_dir / 'celery-broker.sqlite3'
    with contextlib.closing(sqlite3.connect(f'file:{path}?mode=ro', uri=True, timeout=30)) as db:
        rows = db.execute('SELECT visible, payload FROM kombu_message ORDER BY id').fetchall()
    messages = []
    for visible, payload in rows:
        headers = json.loads(payload).get('headers') or {}
        if headers.get('task') == task:
            messages.append((bool(visible), headers))
    return messages


def held_step(data_dir, task, run_id, at_least_seconds):
    """The ETA of the ``task(run_id)`` message a worker has fetched and holds (acks_late: not acknowledged until it
    runs) when it is due in ``at_least_seconds`` or more and nothing of it is left in the broker; else None."""
    from datetime import UTC, datetime

    mine = [(visible, h) for visible, h in broker_messages(data_dir, task) if h.get('argsrepr') == f'({run_id},)']
    if not mine or any(visible for visible, _ in mine):
        return None
    eta = mine[-1][1].get('eta')
    if not eta:
        return None
    eta = datetime.fromisoformat(eta)
    left = (eta - datetime.now(UTC)).total_seconds()
    return eta if left >= at_least_seconds else None
