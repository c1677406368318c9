"""MOT Challenge ground truth: `gt/gt.txt` rows `frame,id,bb_left,bb_top,bb_width,bb_height,conf,class,visibility`.

Frames and track ids are 1-based; boxes are pixels with MOT Challenge's 1-based (MATLAB) positions,
`bb_left = x + 1` for the UI's 0-based x: motmetrics subtracts the 1 again (`io.load_motchallenge`).
datumaro's `mot_seq` (and so CVAT's MOT import) keeps the numbers as written: `VideoExport.mot_origin = 0`
(the `mot_origin=0` export option) writes the UI's 0-based positions for those readers. A rotated box becomes the axis-aligned box around it
(MOT has no angle); boxes are not clipped (MOT ground truth has boxes past the frame edges).
`seqinfo.ini`'s `frameRate` is a whole number, since readers `int()` it (datumaro, mmtracking's
converters): the video's rate rounded to the nearest, halves up (29.97 -> 30). Class ids are 1-based
lines of `gt/labels.txt`. One video sits at the zip root; several get one sequence folder each, named
after the video. When the track sets carry `frame_images` (optional here), the frames go to
`img1/<frame>.jpg` as `seqinfo.ini` says.

Predictions (`VideoExport.predicted`) are written as a tracker's output instead: `<sequence>.txt` per video
at the zip root (the names the ground truth export gives its sequences), rows
`frame,id,bb_left,bb_top,bb_width,bb_height,conf,class,-1` with the track's score as `conf`, and
`meta/labels.txt` for the class column; no `seqinfo.ini` (readers take it from the ground truth).
"""

from __future__ import annotations

import math
from typing import BinaryIO

import numpy as np

from ..geometry import bounding_box
from ..interpolation import FrameBoxes
from .model import ExportSummary, Track, VideoExport
from .registry import exporter
from .streaming import PreparedTask, format_rows, open_zip, prepare, video_stems, write_member, write_summary

ROWS_PER_BATCH = 1 << 14  # rows formatted per NumPy call (about 1 MB of text)
DEFAULT_FRAME_RATE = 24  # the UI's <Video frameRate> default, for a track set that knows no rate
SCORE_DECIMALS = 4  # a predicted track's `conf` (our model server rounds region scores to 4 decimals)
PREDICTED_LABELS = 'meta/labels.txt'  # not beside the `<sequence>.txt` files: readers take every *.txt there


def _rows(task: PreparedTask, origin: int, predicted: bool = False):
    """gt.txt (or a tracker's `<sequence>.txt`) text, track by track and frame by frame, formatted a batch of
    rows at a time with NumPy."""
    size = task.track_set.width, task.track_set.height
    batch: list[tuple[Track, FrameBoxes, tuple]] = []
    pending = 0
    for track, source in task.tracks:
        for boxes in task.chunks(source):
            pixels = bounding_box(boxes.x, boxes.y, boxes.width, boxes.height, boxes.rotation, *size)
            batch.append((track, boxes, pixels))
            pending += len(boxes)
            if pending >= ROWS_PER_BATCH:
                yield _format(batch, origin, predicted)
                batch, pending = [], 0
    if batch:
        yield _format(batch, origin, predicted)


def _format(batch, origin: int, predicted: bool) -> bytes:
    """Ground truth: `conf` 1 (the row counts) and visibility 1. Predictions: `conf` the track's score (1
    when it has none) and visibility -1 (unknown), as MOT Challenge's result files leave unused columns."""

    def column(values):
        return np.concatenate(values) if len(values) > 1 else np.asarray(values[0])

    def per_track(value):
        return column([np.full(len(boxes), value(track)) for track, boxes, _ in batch])

    frame = column([boxes.frame for _, boxes, _ in batch])
    left, top, width, height = (column([pixels[i] for *_, pixels in batch]) for i in range(4))
    left, top = left + origin, top + origin
    if predicted:
        conf = [',', (per_track(lambda t: 1.0 if t.score is None else t.score), SCORE_DECIMALS), ',']
    else:
        conf = [',1,']
    return format_rows(
        [
            (frame, 0),
            ',',
            (per_track(lambda t: t.track_id), 0),
            ',',
            (left, 2),
            ',',
            (top, 2),
            ',',
            (width, 2),
            ',',
            (height, 2),
            *conf,
            (per_track(lambda t: t.label_id + 1), 0),
            ',-1\n' if predicted else ',1\n',
        ]
    )


def _seqinfo(task: PreparedTask, stem: str) -> str:
    ts = task.track_set
    fps = max(1, math.floor(ts.fps + 0.5)) if ts.fps else DEFAULT_FRAME_RATE  # halves up: 12.5 -> 13
    return (
        f'[Sequence]\nname={stem}\nimDir=img1\nframeRate={fps}\nseqLength={ts.frame_count}\n'
        f'imWidth={ts.width}\nimHeight={ts.height}\nimExt=.jpg\n'
    )


def _write_images(archive, task: PreparedTask, folder: str) -> None:
    """`img1/<frame>.jpg` for the exported frames, when the caller gave frame images (optional for MOT)."""
    images = task.track_set.frame_images
    if images is None:
        return
    wanted = task.frames(1, task.track_set.frame_count)
    written = 0
    for frame, jpeg in images(wanted):
        write_member(archive, f'{folder}img1/{frame:06d}.jpg', [jpeg], compress=False)
        written += 1
    if written < len(wanted):
        task.summary.warnings.append(f'{len(wanted) - written} frames had no image')


def _write_tracker_output(archive, tasks: list[PreparedTask], export: VideoExport, labels: str) -> None:
    """Predictions as a tracker's MOT Challenge output: `<sequence>.txt` per video at the zip root, named as
    the ground truth export names its sequences, which is where motmetrics' `eval_motchallenge` looks for a
    tracker's files; `meta/labels.txt` maps the class column (in a folder: those tools read every
    `*.txt` beside the sequences as one)."""
    for task, stem in zip(tasks, video_stems(tasks), strict=True):
        write_member(archive, f'{stem}.txt', _rows(task, export.mot_origin, predicted=True))
    write_member(archive, PREDICTED_LABELS, [labels])


@exporter(
    name='MOT',
    ext='zip',
    title='MOT Challenge',
    description='gt/gt.txt per video with every frame where the UI shows a box, in pixels (rotated boxes: bounds).',
    needs_pixels=True,
)
def write_mot(out: BinaryIO, export: VideoExport) -> ExportSummary:
    summary, tasks = prepare(export, 'MOT', needs_pixels=True)
    labels = ''.join(f'{name}\n' for name in export.labels)
    with open_zip(out) as archive:
        if export.predicted:
            _write_tracker_output(archive, tasks, export, labels)
            write_summary(archive, summary)
            return summary
        for task, stem in zip(tasks, video_stems(tasks), strict=True):
            folder = f'{stem}/' if len(tasks) > 1 else ''
            write_member(archive, f'{folder}seqinfo.ini', [_seqinfo(task, stem)])
            write_member(archive, f'{folder}gt/labels.txt', [labels])
            write_member(archive, f'{folder}gt/gt.txt', _rows(task, export.mot_origin))
            _write_images(archive, task, folder)
        write_summary(archive, summary)
    return summary
