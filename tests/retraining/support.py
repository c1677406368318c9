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
