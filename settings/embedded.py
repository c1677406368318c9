"""Defaults of the one-machine install (settings.offline) that must exist before Label Studio's settings import.

``make run`` keeps its data in ``<repo>/data`` (``scripts/run.sh``); every other entry point that loads
``settings.offline`` (``manage.py``, ``label-studio start``, a Celery worker) defaults to the same directory,
so a README command run without ``LABEL_STUDIO_BASE_DATA_DIR`` reads the server's database instead of
creating an empty one under ``~/.local/share/label-studio``. Production settings never import this module.
"""

import fcntl
import logging
import os
import secrets
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
DATA_DIR_ENV = 'LABEL_STUDIO_BASE_DATA_DIR'


def default_data_dir(environ=os.environ):
    """The data dir, chosen as ``make run`` chooses it; exported as ``LABEL_STUDIO_BASE_DATA_DIR``, returned.

    ``LABEL_STUDIO_BASE_DATA_DIR`` if set, else ``DATA_DIR`` (the Makefile's and run.sh's variable), else
    ``<repo>/data``.
    """
    if not environ.get(DATA_DIR_ENV):
        environ[DATA_DIR_ENV] = environ.get('DATA_DIR') or str(REPO_ROOT / 'data')
    return Path(environ[DATA_DIR_ENV])


def has_secret_key(env_file):
    try:
        lines = env_file.read_text().splitlines()
    except FileNotFoundError:
        return False
    return any(line.startswith('SECRET_KEY=') and line.strip() != 'SECRET_KEY=' for line in lines)


def ensure_secret_key(data_dir, environ=os.environ):
    """A random SECRET_KEY persisted in ``<data_dir>/.env`` (0600), where Label Studio reads it.

    Label Studio generates one itself, but with a warning a user cannot act on (on ``make run``'s first
    start), and the web server and the worker that ``make run`` starts together can each append a
    different one. Under a file lock the first process writes it and the others find it: no warning,
    one key. Never used by ``settings.production``, which requires ``SECRET_KEY`` from the environment.
    """
    if environ.get('SECRET_KEY'):  # Label Studio reads no other name for it
        return
    Path(data_dir).mkdir(parents=True, exist_ok=True)
    env_file = Path(data_dir) / '.env'
    with open(Path(data_dir) / '.env.lock', 'a') as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if has_secret_key(env_file):
            return
        fd = os.open(env_file, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        with os.fdopen(fd, 'a') as f:
            f.write(f'\nSECRET_KEY={secrets.token_urlsafe(50)}\n')


def quiet_env_file_reader():
    """django-environ logs each ``.env`` read and key lookup at debug/info, and Label Studio's settings
    run before its logging config under a DEBUG root: two lines on every command. Its warnings stay."""
    logging.getLogger('environ').setLevel(logging.WARNING)


def prepare(environ=os.environ):
    """What settings.offline runs before Label Studio's settings import."""
    ensure_secret_key(default_data_dir(environ), environ)
    quiet_env_file_reader()
