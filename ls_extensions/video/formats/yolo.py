"""YOLO: `images/<video>/<frame>.jpg` and `labels/<video>/<frame>.txt` for every (exported) frame (1-based names).

Labels are `class x_center y_center width height` normalised to 0-1. When any box is rotated (or
with the YOLO-OBB format) every label is `class x1 y1 x2 y2 x3 y3 x4 y4`, the rotated corners
normalised by the video size, since an axis-aligned label cannot hold the angle. A frame without
boxes gets an empty label file (a background image for training).
"""

from __future__ import annotations

import json
from typing import BinaryIO

import numpy as np

from ..interpolation import FrameBoxes, corners
from .model import ExportSummary, MissingVideoInfo, VideoExport
from .registry import exporter
from .streaming import PreparedTask, open_zip, prepare, video_stems, write_member, write_summary


def _label_lines(task: PreparedTask, boxes: list[tuple[int, FrameBoxes]], oriented: bool) -> tuple[np.ndarray, list]:
    """(frames, lines) of one window's boxes, sorted by frame then track."""
    b = FrameBoxes.concat(chunk for _, chunk in boxes)
    classes = np.concatenate([np.full(len(chunk), label_id) for label_id, chunk in boxes] or [np.empty(0, int)])
    if oriented:
        size = task.track_set.width, task.track_set.height
        values = (corners(b.x, b.y, b.width, b.height, b.rotation, *size) / size).reshape(len(b), 8)
    else:
        values = np.column_stack([(b.x + b.width / 2) / 100, (b.y + b.height / 2) / 100, b.width / 100, b.height / 100])
    order = np.argsort(b.frame, kind='stable')
    template = '%d' + ' %.6f' * values.shape[1] + '\n'
    lines = [template % (c, *v) for c, v in zip(classes[order].tolist(), values[order].tolist(), strict=True)]
    return b.frame[order], lines


def _write_task(archive, task: PreparedTask, stem: str, oriented: bool) -> None:
    images = task.track_set.frame_images
    written = 0
    for lo, hi, boxes in task.windows():
        wanted = task.frames(lo, hi)
        if images is not None:
            for frame, jpeg in images(wanted):
                write_member(archive, f'images/{stem}/{frame:06d}.jpg', [jpeg], compress=False)
                written += 1
        frames, lines = _label_lines(task, [(track.label_id, b) for track, b in boxes], oriented)
        starts, stops = np.searchsorted(frames, wanted), np.searchsorted(frames, wanted, 'right')
        for frame, start, stop in zip(wanted, starts.tolist(), stops.tolist(), strict=True):
            write_member(archive, f'labels/{stem}/{frame:06d}.txt', [''.join(lines[start:stop])])
    exported = len(task.frames(1, task.track_set.frame_count))
    if images is None:
        task.summary.warnings.append('no frame images available: labels only')
    elif written < exported:
        task.summary.warnings.append(f'{exported - written} frames had no image')


def _is_rotated(tasks: list[PreparedTask]) -> bool:
    return any(source.rotated for task in tasks for _, source in task.tracks)


def _data_yaml(labels: list[str]) -> str:
    names = ''.join(f'  {index}: {json.dumps(name)}\n' for index, name in enumerate(labels))
    return f'path: .\ntrain: images\nval: images\nnc: {len(labels)}\nnames:\n{names}'


def _write(out: BinaryIO, export: VideoExport, format_name: str, oriented: bool | None) -> ExportSummary:
    summary, tasks = prepare(export, format_name, needs_pixels=bool(oriented))
    oriented = _is_rotated(tasks) if oriented is None else oriented
    for task in tasks:
        if oriented and not task.track_set.has_size:
            raise MissingVideoInfo(task.track_set.task_id, task.track_set.video)
    with open_zip(out) as archive:
        for task, stem in zip(tasks, video_stems(tasks), strict=True):
            _write_task(archive, task, stem, oriented)
        write_member(archive, 'classes.txt', [''.join(f'{name}\n' for name in export.labels)])
        write_member(archive, 'data.yaml', [_data_yaml(export.labels)])
        write_summary(archive, summary)
    return summary


@exporter(
    name='YOLO',
    ext='zip',
    title='YOLO (frames + labels)',
    description='Every frame as a JPEG with a YOLO label file; switches to YOLO-OBB labels when any box is rotated.',
    needs_images=True,
)
def write_yolo(out: BinaryIO, export: VideoExport) -> ExportSummary:
    return _write(out, export, 'YOLO', oriented=None)


@exporter(
    name='YOLO-OBB',
    ext='zip',
    title='YOLO oriented boxes',
    description='Every frame as a JPEG with YOLO-OBB labels (four rotated corners, normalised).',
    needs_pixels=True,
    needs_images=True,
)
def write_yolo_obb(out: BinaryIO, export: VideoExport) -> ExportSummary:
    return _write(out, export, 'YOLO-OBB', oriented=True)
