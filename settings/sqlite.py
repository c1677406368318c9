"""SQLite options for the embedded default: one team's clicks and our background writers without "database is locked".

Label Studio ships SQLite with Python's defaults (rollback journal, a 5 s busy wait, deferred transactions).
Two writers then fail in ways no wait can cure: a reader blocks the writer's commit (rollback journal), and
a deferred transaction that read first cannot take the write lock once another connection wrote (SQLite
answers "database is locked" at once, whatever the timeout). So, with Django 5.2's own options:

- ``journal_mode=WAL``: readers never block the writer nor the writer the readers (persisted in the file);
- ``synchronous=NORMAL``: the durable-on-commit level WAL recommends (a power cut may lose the last commits,
  never corrupt the file);
- ``transaction_mode=IMMEDIATE``: every ``atomic()`` block takes the write lock at BEGIN, so it waits for
  the lock (the busy timeout) instead of failing half-way;
- ``timeout``: how long a writer waits for another's transaction before failing (30 s: our background
  writers commit in batches far shorter than that).

Applied to a database whose engine is SQLite only; PostgreSQL (production) is left as it is.
"""

SQLITE_ENGINE = 'django.db.backends.sqlite3'
BUSY_TIMEOUT_SECONDS = 30
INIT_COMMAND = 'PRAGMA journal_mode=WAL;PRAGMA synchronous=NORMAL'


def harden(databases):
    """Add the options above to each SQLite entry of ``databases`` (in place; explicit options win)."""
    for config in databases.values():
        if config.get('ENGINE') != SQLITE_ENGINE:
            continue
        options = config.setdefault('OPTIONS', {})
        options.setdefault('timeout', BUSY_TIMEOUT_SECONDS)
        options.setdefault('transaction_mode', 'IMMEDIATE')
        options.setdefault('init_command', INIT_COMMAND)
    return databases
