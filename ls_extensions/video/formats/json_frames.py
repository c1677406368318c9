"""Label Studio task JSON whose `videorectangle` sequences list every frame the UI shows the box on.

Each entry keeps `keyframe` (true where a stored keyframe's own values are used) and sets `enabled`
to whether the box is still shown on the next frame, so the expanded sequence, imported again,
draws exactly the same frames. Rewritten results are marked `value.interpolated` and
`meta.interpolated`; everything else in the task is left as it was.
"""

from __future__ import annotations

import json
from typing import BinaryIO

from .model import ExportSummary, VideoExport
from .registry import exporter
from .streaming import JsonArray, PreparedTask, dump_json, prepare, text_writer


def _entries(task: PreparedTask, source) -> JsonArray:
    fps = task.track_set.fps

    def parts():
        for b in task.chunks(source):
            names = ('frame', 'enabled', 'x', 'y', 'width', 'height', 'rotation', 'keyframe')
            columns = [b.frame, b.continues, b.x, b.y, b.width, b.height, b.rotation, b.keyframe]
            rows = (dict(zip(names, row, strict=True)) for row in zip(*(c.tolist() for c in columns), strict=True))
            if fps:
                rows = ({**row, 'time': row['frame'] / fps} for row in rows)
            yield ', '.join(json.dumps(row) for row in rows)

    return JsonArray(parts())


def _rewritten(result: dict, task: PreparedTask, source) -> dict:
    ts = task.track_set
    meta = {'interpolated': True, 'frames_count': ts.frame_count, 'frames_count_source': ts.frame_count_source}
    if task.frame_stride != 1:
        meta['frame_stride'] = task.frame_stride  # `enabled`: the box is on the next exported frame
    value = {**result.get('value', {}), 'sequence': _entries(task, source), 'interpolated': True}
    return {**result, 'value': value, 'meta': {**(result.get('meta') or {}), **meta}}


def _minimal_task(task: PreparedTask, kind: str) -> dict:
    """A bare task when the caller has no task JSON: one annotation (or prediction) per id."""
    annotations: dict = {}
    for track, source in task.tracks:
        result = {
            'id': track.result_id or f'track-{track.track_id}',
            'type': 'videorectangle',
            'value': {'labels': [track.label], 'framesCount': task.track_set.frame_count},
        }
        annotations.setdefault(track.annotation_id, []).append(_rewritten(result, task, source))
    return {
        'id': task.track_set.task_id,
        'data': {'video': task.track_set.video},
        kind: [{'id': key, 'result': results} for key, results in annotations.items()],
    }


def _task_json(task: PreparedTask, kind: str) -> dict:
    """The task with matching results swapped for expanded ones (copies; the caller's dict is untouched).

    Only in `kind` (`annotations`, or `predictions` for a predictions export): a prediction's result copied
    into an annotation keeps its id, and prediction and annotation ids can be equal, so the other list is
    left exactly as stored.
    """
    original = task.track_set.task
    if original is None:
        return _minimal_task(task, kind)
    by_key = {(track.annotation_id, track.result_id): source for track, source in task.tracks}
    by_result = {track.result_id: source for track, source in task.tracks if track.annotation_id is None}
    used: set[int] = set()

    def swap(annotation: dict) -> dict:
        results = []
        for result in annotation.get('result') or []:
            key = (annotation.get('id'), result.get('id'))
            source = by_key.get(key, by_result.get(result.get('id')))
            if result.get('type') == 'videorectangle' and source is not None:
                used.add(id(source))
                result = _rewritten(result, task, source)
            results.append(result)
        return {**annotation, 'result': results}

    rewritten = dict(original)
    if isinstance(original.get(kind), list):
        rewritten[kind] = [swap(item) if isinstance(item, dict) else item for item in original[kind]]
    task.summary.warnings.extend(
        f'track {track.track_id}: result {track.result_id!r} not found in the task JSON, not exported'
        for track, source in task.tracks
        if id(source) not in used
    )
    return rewritten


@exporter(
    name='JSON',
    ext='json',
    title='Label Studio JSON (every frame)',
    description='Label Studio tasks whose video rectangle sequences hold every frame where the UI shows the box.',
)
def write_json(out: BinaryIO, export: VideoExport) -> ExportSummary:
    summary, tasks = prepare(export, 'JSON', needs_pixels=False)
    write = text_writer(out)
    write('[')
    for index, task in enumerate(tasks):
        write(',\n' if index else '\n')
        dump_json(_task_json(task, export.source), write)
    write('\n]\n')
    return summary
