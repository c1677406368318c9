"""Whether the database is migrated, for the periodic sweeps a Celery worker runs on its own.

``make run`` starts the worker beside the server, so on a fresh data dir its start-up sweep (and the
first beat sweeps) can run before ``migrate`` has created our tables: they would fail with "no such
table". A sweep asks :func:`ready` first and is skipped, with one info line, while migrations are pending.
Once the database was found migrated this process does not ask again (migrations only ever add).
"""

import logging

from django.db import DEFAULT_DB_ALIAS, connections
from django.db.utils import DatabaseError

logger = logging.getLogger(__name__)
_migrated = set()


def pending(alias=DEFAULT_DB_ALIAS):
    """The migrations not applied yet on database ``alias`` (all of them on an empty database)."""
    from django.db.migrations.executor import MigrationExecutor

    executor = MigrationExecutor(connections[alias])
    return executor.migration_plan(executor.loader.graph.leaf_nodes())


def ready(what, alias=DEFAULT_DB_ALIAS):
    """True when the database is migrated; else logs that ``what`` waits for migrations and returns False."""
    if alias in _migrated:
        return True
    try:
        missing = len(pending(alias))
    except DatabaseError as exc:  # the database itself is not there (yet)
        logger.info('%s skipped: database not ready (%s)', what, exc)
        return False
    if missing:
        logger.info('%s skipped: %d migrations not applied yet (the next sweep runs after them)', what, missing)
        return False
    _migrated.add(alias)
    return True
