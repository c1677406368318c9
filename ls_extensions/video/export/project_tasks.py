"""The project's tasks to export, from the database, in the shape of Label Studio's export JSON.

Batch by batch, in id order: the whole project is never in memory at once.
"""

from __future__ import annotations

from collections.abc import Iterator

from .options import PREDICTIONS, ExportOptions, needs_task_json
from .predictions import predictions_of_version

BATCH = 500  # tasks per database round trip
ID_CHUNK = 900  # task ids per `IN (...)`: SQLite allows 32766 variables per statement (999 before 3.32)


def iter_project_tasks(project, options: ExportOptions) -> Iterator[dict]:
    """Task dicts in id order, in the shape of Label Studio's export JSON, batch by batch.

    For the JSON format they are Label Studio's own export serialization (`ExportDataSerializer`); for
    the others only what the tracks need (`id`, `data`, and the source's results: non-cancelled
    annotations' `id` and `result`, or the `id`, `result`, `score`, `model_version` of the predictions of
    `options.model_version`, which must be resolved already: `predictions.with_model_version`).
    """
    from tasks.models import Task

    ids = _task_ids(project, options)
    for start in range(0, len(ids), BATCH):
        batch = ids[start : start + BATCH]
        if needs_task_json(options.exporter):
            yield from _serialized_tasks(batch, options)
            continue
        data = dict(Task.objects.filter(id__in=batch).values_list('id', 'data'))
        rows = _result_rows(batch, options)
        row = next(rows, None)
        for task_id in batch:
            holders = []
            while row is not None and row['task_id'] == task_id:
                holders.append({key: value for key, value in row.items() if key != 'task_id'})
                row = next(rows, None)
            yield {'id': task_id, 'data': data.get(task_id), options.source: holders}


def _result_rows(batch: list[int], options: ExportOptions) -> Iterator[dict]:
    """The batch's annotations or predictions (of the version) in task order, a few at a time: they hold
    every keyframe, so never the whole batch at once."""
    from tasks.models import Annotation, Prediction

    if options.source == PREDICTIONS:
        queryset = predictions_of_version(Prediction.objects.filter(task_id__in=batch), options.model_version or '')
        fields = ('task_id', 'id', 'result', 'score', 'model_version')
    else:
        queryset = Annotation.objects.filter(task_id__in=batch, was_cancelled=False)
        fields = ('task_id', 'id', 'result')
    return queryset.order_by('task_id', 'id').values(*fields).iterator(chunk_size=20)


def _task_ids(project, options: ExportOptions) -> list[int]:
    """The ids of the tasks to export, ascending; asked-for ids are looked up `ID_CHUNK` at a time."""
    from tasks.models import Task

    tasks = Task.objects.filter(project=project)
    if options.only_annotated:
        tasks = tasks.filter(annotations__isnull=False).distinct()
    if options.task_ids is None:
        return list(tasks.order_by('id').values_list('id', flat=True))
    wanted = sorted(set(options.task_ids))
    ids: list[int] = []
    for start in range(0, len(wanted), ID_CHUNK):
        chunk = wanted[start : start + ID_CHUNK]
        ids += tasks.filter(id__in=chunk).order_by('id').values_list('id', flat=True)
    return ids


def _serialized_tasks(ids: list[int], options: ExportOptions) -> list[dict]:
    """Label Studio's export JSON of the tasks; with the predictions source, their predictions of the version
    in full (Label Studio lists prediction ids only unless asked to expand them)."""
    from data_export.serializers import ExportDataSerializer
    from django.db.models import Prefetch
    from tasks.models import Annotation, Prediction, Task

    expand = ['drafts']
    predictions = Prefetch('predictions')
    if options.source == PREDICTIONS:
        expand.append('predictions')
        version = options.model_version or ''
        predictions = Prefetch(
            'predictions', queryset=predictions_of_version(Prediction.objects.order_by('id'), version)
        )
    queryset = (
        Task.objects.filter(id__in=ids)
        .order_by('id')
        .prefetch_related(Prefetch('annotations', queryset=Annotation.objects.order_by('id')), predictions)
    )
    return list(ExportDataSerializer(queryset, many=True, expand=expand).data)
