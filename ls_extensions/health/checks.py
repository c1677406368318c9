"""Readiness checks of a web process: database, migrations, broker, cache. Each returns a small dict.

A failed check's ``error`` holds the exception text (it may name the database host, a user, a
broker URL): it is logged here and shown only to staff (``views.may_see_details``), never to anonymous callers.
"""

import logging
import time

from django.conf import settings

logger = logging.getLogger(__name__)

_migrations_applied = False  # once true it stays true for the life of the process


def _timed(name, check):
    started = time.monotonic()
    try:
        detail = check() or {}
        result = {'ok': True, **detail}
    except Exception as exc:  # a check reports, it never raises
        error = f'{type(exc).__name__}: {exc}'[:300]
        logger.warning('health check %s failed: %s', name, error)
        result = {'ok': False, 'error': error}
    result['ms'] = round((time.monotonic() - started) * 1000, 1)
    return result


def database():
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute('SELECT 1')
        cursor.fetchone()
    return {'vendor': connection.vendor}


def migrations():
    """No unapplied migration (the plan is read once per process until it comes out empty)."""
    global _migrations_applied
    if not _migrations_applied:
        from django.db import connection
        from django.db.migrations.executor import MigrationExecutor

        executor = MigrationExecutor(connection)
        plan = executor.migration_plan(executor.loader.graph.leaf_nodes())
        if plan:
            raise RuntimeError(f'{len(plan)} migrations not applied (run manage.py migrate_once)')
        _migrations_applied = True
    return {}


def broker(timeout=1.0):
    """A fresh connection to the Celery broker (what a task enqueue needs)."""
    from kombu import Connection

    with Connection(
        settings.CELERY_BROKER_URL, connect_timeout=timeout, transport_options={'socket_timeout': timeout}
    ) as conn:
        conn.ensure_connection(max_retries=1, interval_start=0, interval_step=0, timeout=timeout)
        transport = conn.transport_cls
        if conn.transport.driver_type == 'redis':
            conn.default_channel.client.ping()
    return {'transport': transport}


def cache():
    from django.core.cache import caches
    from django.core.cache.backends.redis import RedisCache

    default_cache = caches['default']

    if not isinstance(default_cache, RedisCache):
        return {'backend': type(default_cache).__name__}
    client = default_cache._cache.get_client(write=True)  # not the tolerant wrappers: the real state
    client.ping()
    return {'backend': 'redis'}


CHECKS = {'database': database, 'migrations': migrations, 'broker': broker, 'cache': cache}


def run_all():
    """{'ok': bool, 'checks': {name: {'ok': bool, 'ms': float, ...}}}; migrations are skipped without a database."""
    results = {}
    for name, check in CHECKS.items():
        if name == 'migrations' and not results['database']['ok']:
            results[name] = {'ok': False, 'error': 'database unreachable', 'ms': 0.0}
            continue
        results[name] = _timed(name, check)
    return {'ok': all(r['ok'] for r in results.values()), 'checks': results}
