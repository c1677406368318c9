"""Writing stored per-task rows in bulk: one statement per batch, the newer prediction wins."""

from django.db import connection


def newer_prediction_wins(table, columns, types, rows, chunk=500):
    """Insert or update rows keyed by ``task_id``; an existing row is replaced only by an equal or newer
    ``prediction_id`` (two writers racing on a task leave the newest prediction's row).

    PostgreSQL gets one statement per batch (column arrays through ``unnest``, cast to ``types``), others a
    VALUES list per chunk.
    """
    if not rows:
        return
    names = ', '.join(columns)
    conflict = (
        'ON CONFLICT (task_id) DO UPDATE SET '
        + ', '.join(f'{c} = excluded.{c}' for c in columns if c != 'task_id')
        + f' WHERE {table}.prediction_id <= excluded.prediction_id'
    )
    with connection.cursor() as cursor:
        if connection.vendor == 'postgresql':
            arrays = ', '.join(f'%s::{kind}[]' for kind in types)
            cursor.execute(
                f'INSERT INTO {table} ({names}) SELECT * FROM unnest({arrays}) {conflict}',
                [list(column) for column in zip(*rows, strict=True)],
            )
            return
        one = '(' + ', '.join(['%s'] * len(columns)) + ')'
        for start in range(0, len(rows), chunk):
            part = rows[start : start + chunk]
            cursor.execute(
                f'INSERT INTO {table} ({names}) VALUES {", ".join([one] * len(part))} {conflict}',
                [value for row in part for value in row],
            )
