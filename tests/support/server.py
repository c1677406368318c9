"""A real Label Studio server in a subprocess, on loopback, with its own data dir and egress log."""

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

from tests.support.process import ManagedProcess, answers_200

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


DATABASE_ENV = ('POSTGRE_', 'DJANGO_DB')  # scripts/pg.sh's exports: they would move a server onto PostgreSQL


def no_database_env(environ=os.environ):
    """``environ`` without the PostgreSQL selection, for processes that choose their own database (a SQLite
    data dir, a layout's own server): ``scripts/test.sh``'s PostgreSQL pass, or a shell that sourced ``pg.sh``,
    exports it, and a migrate would then go there instead of the data dir."""
    return {k: v for k, v in environ.items() if not k.startswith(DATABASE_ENV)}


def free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def migrated_database_in(folder):
    """A migrated SQLite file in ``folder``, made once; servers start from copies of it. Migrated in a scratch
    folder and moved into place only once complete, so a migrate that failed leaves nothing to start from."""
    db = Path(folder) / 'label_studio.sqlite3'
    if not db.exists():
        scratch = Path(tempfile.mkdtemp(prefix='migrating-'))
        env = {
            **no_database_env(),
            'DJANGO_SETTINGS_MODULE': 'settings.offline',
            'LABEL_STUDIO_BASE_DATA_DIR': str(scratch),
        }
        try:
            subprocess.run(
                [str(BIN / 'python'), str(REPO / 'manage.py'), 'migrate', '--no-input'],
                env=env,
                check=True,
                capture_output=True,
                timeout=900,
            )
            db.parent.mkdir(parents=True, exist_ok=True)
            shutil.move(scratch / 'label_studio.sqlite3', db)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
    return db


def migrated_database(tmp_path_factory):
    """One migrated database for the whole test session (a migrate of Label Studio's schema costs half a minute
    here, a minute on CI: once, not once per module)."""
    return migrated_database_in(tmp_path_factory.getbasetemp() / 'label-studio-template')


class LabelStudioServer(ManagedProcess):
    """``label-studio start`` (or any command line) with our settings or stock ones."""

    def __init__(self, data_dir, template_db=None, stock=False, env=None):
        self.data_dir = Path(data_dir)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.url = f'http://127.0.0.1:{self.port}'
        self.egress_log = self.data_dir / 'egress.jsonl'
        self.log_path = self.data_dir / 'server.log'
        if template_db is not None:
            shutil.copy(template_db, self.data_dir / 'label_studio.sqlite3')
        base_env = {k: v for k, v in no_database_env().items() if k != 'DJANGO_SETTINGS_MODULE'}
        base_env.update(
            LABEL_STUDIO_BASE_DATA_DIR=str(self.data_dir),
            LS_EXT_EGRESS_LOG=str(self.egress_log),
            PYTHONUNBUFFERED='1',
        )
        if stock:
            # stock Label Studio: none of our settings, none of the switches they force
            for key in list(base_env):
                if key.startswith('LABEL_STUDIO_') and key != 'LABEL_STUDIO_BASE_DATA_DIR':
                    base_env.pop(key)
            self.command = [str(BIN / 'python'), '-m', 'ls_extensions.privacy.guarded_launcher']
        else:
            base_env['DJANGO_SETTINGS_MODULE'] = 'settings.offline'
            self.command = [str(BIN / 'label-studio')]
        base_env.update(env or {})
        self.env = base_env
        self.process = None

    def start(self, timeout=240):
        args = [*self.command, 'start', '--no-browser', '--internal-host', '127.0.0.1', '-p', str(self.port)]
        self.spawn(args, self.env, self.data_dir)
        return self.wait_ready(lambda: answers_200(self.url + '/health', 5), timeout, 1, 'Label Studio server')

    def egress_events(self):
        if not self.egress_log.exists():
            return []
        return [json.loads(line) for line in self.egress_log.read_text().splitlines() if line.strip()]
