"""CSV with one row per task, track and frame where the UI shows the box.

Geometry is kept as stored by Label Studio (percents of the frame, top-left corner, degrees about
that corner), at full precision; pixel columns in the same convention are filled when the video's
size is known and left empty otherwise. A predictions export adds a last column, `score`.
"""

from __future__ import annotations

import csv
import io
from typing import BinaryIO

from .model import ExportSummary, VideoExport
from .registry import exporter
from .streaming import prepare

HEADER = ['task_id', 'video', 'track_id', 'label', 'frame', 'keyframe', 'x', 'y', 'width', 'height', 'rotation']
PIXEL_HEADER = ['x_px', 'y_px', 'width_px', 'height_px']
SCORE_HEADER = ['score']  # predictions only: the track's confidence (empty when it has none)


def _csv(rows) -> bytes:
    """Rows as CSV bytes, a chunk at a time (the output stream only needs `write(bytes)`)."""
    buffer = io.StringIO()
    csv.writer(buffer).writerows(rows)
    return buffer.getvalue().encode()


@exporter(
    name='CSV',
    ext='csv',
    title='CSV (per frame)',
    description='One row per track and frame: percents as in Label Studio, plus pixels when the video size is known.',
)
def write_csv(out: BinaryIO, export: VideoExport) -> ExportSummary:
    summary, tasks = prepare(export, 'CSV', needs_pixels=False)
    with_pixels = any(task.track_set.has_size for task in tasks)
    scored = export.predicted  # predictions: the track's score as the last column
    out.write(_csv([HEADER + PIXEL_HEADER * with_pixels + SCORE_HEADER * scored]))
    for task in tasks:
        ts = task.track_set
        for track, source in task.tracks:
            prefix = [ts.task_id, ts.video, track.track_id, track.label]
            for b in task.chunks(source):
                columns = [b.frame.tolist(), b.keyframe.astype(int).tolist()]
                columns += [getattr(b, name).tolist() for name in ('x', 'y', 'width', 'height', 'rotation')]
                if ts.has_size:
                    scale = [ts.width, ts.height, ts.width, ts.height]
                    columns += [
                        (getattr(b, n) * s / 100).tolist()
                        for n, s in zip(('x', 'y', 'width', 'height'), scale, strict=True)
                    ]
                elif with_pixels:
                    columns += [[''] * len(b)] * 4
                if scored:
                    columns.append(['' if track.score is None else track.score] * len(b))
                out.write(_csv(prefix + list(row) for row in zip(*columns, strict=True)))
    return summary
