"""A newcomer's first ``make run``: no start-up noise that reads like failure (issue 15, item 5).

Real processes on settings.offline (what ``make run`` loads): a Celery worker on a database never
migrated, ``manage.py`` on a fresh data dir. The /heidi-tips answer is in tests/privacy/test_overlay.py.
"""

import os
import subprocess

import pytest

from settings import embedded
from tests.retraining.support import Worker
from tests.support.process import wait_for
from tests.support.server import BIN, REPO

SWEEPS = ('retraining sweep', 'scoring sweep', 'video conversion sweep')


def offline_env(data_dir, **extra):
    """The environment ``scripts/run.sh`` gives its processes, without the test suite's own settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(('LABEL_STUDIO_', 'DJANGO_', 'SECRET_KEY'))}
    return {**env, 'DJANGO_SETTINGS_MODULE': 'settings.offline', 'DATA_DIR': str(data_dir), **extra}


def manage(data_dir, *args, **extra):
    return subprocess.run(
        [str(BIN / 'python'), 'manage.py', *args],
        cwd=REPO,
        env=offline_env(data_dir, **extra),
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )


def test_a_worker_started_before_migrate_skips_its_sweeps_quietly(tmp_path):
    # the database file does not even exist: every sweep the worker runs at start must wait for migrate
    worker = Worker(tmp_path, {'DJANGO_SETTINGS_MODULE': 'settings.offline'})
    with worker:
        wait_for(
            lambda: all(f'{name} skipped' in worker.log_path.read_text() for name in SWEEPS),
            timeout=120,
            what='the three start-up sweeps to run',
            details=worker.log_tail,
        )
    log = worker.log_path.read_text()
    assert 'no such table' not in log and 'Traceback' not in log and 'OperationalError' not in log, log
    for name in SWEEPS:
        line = next(line for line in log.splitlines() if f'{name} skipped' in line)
        assert 'INFO' in line and 'migrations not applied yet' in line, line


def test_the_embedded_default_gets_one_persisted_secret_key_without_a_warning(tmp_path):
    first = manage(tmp_path, 'shell', '-c', 'from django.conf import settings; print(settings.SECRET_KEY)')
    second = manage(tmp_path, 'shell', '-c', 'from django.conf import settings; print(settings.SECRET_KEY)')
    for run in (first, second):
        assert 'SECRET_KEY' not in run.stderr, run.stderr  # Label Studio's "not found ... will generate"
    key = first.stdout.strip().splitlines()[-1]
    assert len(key) >= 50 and second.stdout.strip().splitlines()[-1] == key
    env_file = tmp_path / '.env'
    assert env_file.read_text().count('SECRET_KEY=') == 1
    assert env_file.stat().st_mode & 0o077 == 0  # signs sessions and JWTs: not readable by other users


def test_a_secret_key_from_the_environment_is_used_and_nothing_written(tmp_path):
    run = manage(
        tmp_path, 'shell', '-c', 'from django.conf import settings; print(settings.SECRET_KEY)', SECRET_KEY='k' * 50
    )
    assert run.stdout.strip().splitlines()[-1] == 'k' * 50
    assert not (tmp_path / '.env').exists() or 'SECRET_KEY' not in (tmp_path / '.env').read_text()


def test_production_settings_never_take_the_embedded_key(tmp_path):
    env = offline_env(tmp_path, DJANGO_SETTINGS_MODULE='settings.production')
    run = subprocess.run(
        [str(BIN / 'python'), '-c', 'import settings.production'],
        cwd=REPO,
        env={**env, 'LABEL_STUDIO_BASE_DATA_DIR': str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode != 0 and 'SECRET_KEY' in run.stderr, run.stderr
    assert not (tmp_path / '.env').exists()


@pytest.mark.parametrize('name', ['django.request', 'django.server', 'django.security.csrf'])
def test_each_log_line_is_printed_once(tmp_path, name):
    marker = f'ls-ext-log-marker-{name}'
    run = manage(tmp_path, 'shell', '-c', f'import logging; logging.getLogger({name!r}).warning({marker!r})')
    assert (run.stdout + run.stderr).count(marker) == 1, run.stderr


def test_the_data_dir_defaults_as_make_run_chooses_it():
    assert embedded.default_data_dir({}) == REPO / 'data'  # make run: DATA_DIR ?= $(CURDIR)/data
    assert str(embedded.default_data_dir({'DATA_DIR': '/srv/ls'})) == '/srv/ls'
    env = {'DATA_DIR': '/srv/ls', 'LABEL_STUDIO_BASE_DATA_DIR': '/elsewhere'}
    assert str(embedded.default_data_dir(env)) == '/elsewhere'
    empty = {}
    embedded.default_data_dir(empty)
    assert empty['LABEL_STUDIO_BASE_DATA_DIR'] == str(REPO / 'data')  # exported for Label Studio's settings
