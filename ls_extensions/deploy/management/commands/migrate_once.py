"""``manage.py migrate_once``: ``migrate`` + ``collectstatic`` under one cluster-wide lock, before web workers start.

Several hosts (or containers) may start at the same moment: on PostgreSQL a session advisory lock
serializes them, so the first migrates and the others wait, then find nothing to do. On SQLite (one
machine) a file lock beside the database does the same. The lock is held on a connection of its own,
so nothing ``migrate`` does to its connection can release it early.
"""

import contextlib
import fcntl
import os
import time
from pathlib import Path

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError
from django.db import DEFAULT_DB_ALIAS, connections

LOCK_KEY = 0x6C73_6578_745F_6D67  # 'lsext_mg': one 64-bit advisory lock id for this purpose


def pending_migrations(alias=DEFAULT_DB_ALIAS):
    from django.db.migrations.executor import MigrationExecutor

    connection = connections[alias]
    connection.prepare_database()
    executor = MigrationExecutor(connection)
    return executor.migration_plan(executor.loader.graph.leaf_nodes())


@contextlib.contextmanager
def postgres_lock(alias, timeout, log):
    conn = connections.create_connection(alias)  # not the one migrate uses
    try:
        with conn.cursor() as cursor:
            deadline = time.monotonic() + timeout
            waited = False
            while True:
                cursor.execute('SELECT pg_try_advisory_lock(%s)', [LOCK_KEY])
                if cursor.fetchone()[0]:
                    break
                if not waited:
                    log('migrate_once: another host is migrating; waiting for its lock')
                    waited = True
                if time.monotonic() > deadline:
                    raise CommandError(f'migrate_once: lock not free after {timeout:.0f}s')
                time.sleep(0.5)
            try:
                yield
            finally:
                cursor.execute('SELECT pg_advisory_unlock(%s)', [LOCK_KEY])
    finally:
        conn.close()


@contextlib.contextmanager
def file_lock(path, timeout, log):
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, 'a') as fh:
        deadline = time.monotonic() + timeout
        waited = False
        while True:
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if not waited:
                    log(f'migrate_once: waiting for {path}')
                    waited = True
                if time.monotonic() > deadline:
                    raise CommandError(f'migrate_once: {path} not free after {timeout:.0f}s') from None
                time.sleep(0.5)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def migration_lock(alias=DEFAULT_DB_ALIAS, timeout=1800, log=print):
    connection = connections[alias]
    if connection.vendor == 'postgresql':
        return postgres_lock(alias, timeout, log)
    name = str(connection.settings_dict.get('NAME') or '')
    lock_path = (
        f'{name}.migrate.lock' if name and name != ':memory:' else os.path.join(settings.BASE_DATA_DIR, '.migrate.lock')
    )
    return file_lock(lock_path, timeout, log)


class Command(BaseCommand):
    help = 'Apply migrations and collect static files once, serialized across hosts by a database lock.'
    requires_system_checks = []
    requires_migrations_checks = False

    def add_arguments(self, parser):
        parser.add_argument('--database', default=DEFAULT_DB_ALIAS)
        parser.add_argument('--lock-timeout', type=float, default=1800, help='seconds to wait for another host')
        parser.add_argument('--skip-collectstatic', action='store_true')

    def handle(self, *args, **options):
        alias = options['database']
        verbosity = options['verbosity']
        log = self.stdout.write
        started = time.monotonic()
        with migration_lock(alias, options['lock_timeout'], log):
            locked_at = time.monotonic()
            plan = pending_migrations(alias)
            if plan:
                log(f'migrate_once: applying {len(plan)} migrations')
                call_command('migrate', database=alias, interactive=False, verbosity=max(0, verbosity - 1))
            else:
                log('migrate_once: migrations up to date (nothing to apply)')
            if not options['skip_collectstatic']:
                call_command('collectstatic', interactive=False, verbosity=max(0, verbosity - 1))
                log(f'migrate_once: static files in {settings.STATIC_ROOT}')
        log(
            f'migrate_once: done in {time.monotonic() - started:.1f}s '
            f'(waited {locked_at - started:.1f}s for the lock, applied {len(plan)})'
        )
