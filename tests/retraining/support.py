"""Helpers for the retraining tests and benchmarks/annotation_latency.py: the settings copied for the
subprocesses, a migrated template database, the Celery worker process."""

import os
import shutil
import subprocess
import time
from pathlib import Path

from ls_extensions.ml_backend import ssrf
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
}


def migrated_database(cache_dir, env):
    """One migrated SQLite file (with the retraining app); each server starts from a copy."""
    db = cache_dir / 'label_studio.sqlite3'
    if not db.exists():
        subprocess.run(
            [str(BIN / 'python'), str(REPO / 'manage.py'), 'migrate', '--no-input'],
            env={**os.environ, **env, 'LABEL_STUDIO_BASE_DATA_DIR': str(cache_dir)},
            check=True,
            capture_output=True,
            timeout=900,
        )
    return db


class Worker:
    """``celery -A ls_extensions worker`` on the server's data dir (so: its database and broker file)."""

    def __init__(self, data_dir, env):
        self.data_dir = data_dir
        self.log_path = data_dir / 'worker.log'
        self.env = {**os.environ, **env, 'LABEL_STUDIO_BASE_DATA_DIR': str(data_dir), 'PYTHONUNBUFFERED': '1'}
        self.process = None

    def __enter__(self):
        self._log = open(self.log_path, 'ab')
        self.process = subprocess.Popen(
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
                str(self.data_dir / 'celerybeat-schedule'),
            ],
            cwd=REPO,
            env=self.env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            assert self.process.poll() is None, self.log_tail()
            if b' ready.' in self.log_path.read_bytes():
                return self
            time.sleep(0.5)
        raise TimeoutError(self.log_tail())

    def __exit__(self, *exc):
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()

    def log_tail(self, lines=60):
        return '\n'.join(self.log_path.read_text(errors='replace').splitlines()[-lines:])


def subprocess_modules(directory):
    """Copy settings_offline.py and urls.py into ``directory`` as top-level modules: the env that selects them."""
    here, directory = Path(__file__).parent, Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    shutil.copy(here / 'settings_offline.py', directory / 'ls_ext_retraining_it_settings.py')
    shutil.copy(here / 'urls.py', directory / 'ls_ext_retraining_it_urls.py')
    return {
        'DJANGO_SETTINGS_MODULE': 'ls_ext_retraining_it_settings',
        'LS_EXT_TEST_ROOT_URLCONF': 'ls_ext_retraining_it_urls',
        'PYTHONPATH': os.pathsep.join([str(directory), str(here.parents[1])]),
    }
