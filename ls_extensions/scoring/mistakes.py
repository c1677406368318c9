"""Stored possible mistakes: each labeled task's annotations compared with the active version's newest
prediction (``disagreement.py``), one ``TaskMistake`` row per task.

Called by ``services`` wherever it writes uncertainty rows (recompute and catch-up batches, a saved or
deleted prediction, a rescore) and when an annotation changes, always under the policy's shared lock and
for its active version: the rows follow the rule of ``services`` (never a stale version's), and
``jobs._switch`` deletes them with the uncertainty rows.
"""

from django.utils import timezone

from ls_extensions.scoring import disagreement, upsert
from ls_extensions.scoring.models import TaskMistake

COLUMNS = tuple(
    'task_id project_id prediction_id annotation_id model_version value missing spurious off wrong_label '
    'kinds worst_frames updated_at'.split()
)
TYPES = (
    'integer', 'integer', 'bigint', 'bigint', 'text', 'float8', 'integer', 'integer', 'integer', 'integer',
    'text', 'text', 'timestamptz',
)  # fmt: skip


def _annotations(task_ids):
    """task id -> [(annotation id, result)] of the tasks' submitted (not skipped) annotations."""
    from tasks.models import Annotation

    found = {}
    rows = Annotation.objects.filter(task_id__in=task_ids, was_cancelled=False).values_list('id', 'task_id', 'result')
    for annotation_id, task_id, result in rows.order_by('id'):
        found.setdefault(task_id, []).append((annotation_id, result))
    return found


def rows_for(project_id, version, newest):
    """Rows for the labeled tasks among ``newest`` (task id -> its newest prediction dict of ``version``)."""
    annotations = _annotations(list(newest))
    now = timezone.now()
    rows = []
    for task_id, labeled in annotations.items():
        prediction = newest[task_id]
        compared = [(disagreement.compare_any(prediction['result'], result), aid) for aid, result in labeled]
        found, annotation_id = max(compared, key=lambda c: (c[0].value, -c[1]))
        counts = found.counts
        row = {
            'task_id': task_id,
            'project_id': project_id,
            'prediction_id': prediction['id'],
            'annotation_id': annotation_id,
            'model_version': version,
            'value': round(found.value, 6),
            **counts,
            'kinds': found.kinds[:200],
            'worst_frames': ', '.join(map(str, found.worst_frames)),
            'updated_at': now,
        }
        rows.append(tuple(row[column] for column in COLUMNS))
    return rows


def write(project_id, version, newest):
    """Compare and store the labeled tasks among ``newest`` (caller holds the shared policy lock)."""
    upsert.newer_prediction_wins(TaskMistake._meta.db_table, COLUMNS, TYPES, rows_for(project_id, version, newest))


def refresh(project_id, version, task_ids, newest):
    """Recompute the given tasks from scratch: a task without a labeled annotation or a prediction loses its row."""
    TaskMistake.objects.filter(task_id__in=task_ids).delete()
    write(project_id, version, newest)
