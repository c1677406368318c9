"""YOLO: `images/<video>/<frame>.jpg` and `labels/<video>/<frame>.txt` for every (exported) frame (1-based names).

YOLO labels are `class x_center y_center width height`, YOLO-OBB labels `class x1 y1 x2 y2 x3 y3 x4 y4`
(the rotated corners), normalised by the video size. YOLO is always axis-aligned, so that every YOLO
reader takes it (datumaro skips a file with 9-value rows): a rotated box becomes the bounds of its
corners; YOLO-OBB keeps the angle. A frame without boxes gets an empty label file (a background image).

No value leaves [0, 1]: Ultralytics drops a whole image whose labels do (`verify_image_label`), and
datumaro silently skips the file. A box partly outside the frame is clipped: its corners are clamped into
the frame (what Ultralytics' own `Instances.clip` does to polygons; an OBB row can only hold 4 corners,
not the up to 8 of the box cut by the frame), and the YOLO box is the bounds of those corners, i.e. the
box's bounds cut to the frame. A box with no area inside the frame is dropped. Both are counted per task
in the summary (`boxes_clipped`, `boxes_dropped`).
"""

from __future__ import annotations

import json
from typing import BinaryIO

import numpy as np

from ..geometry import corners
from ..interpolation import FrameBoxes
from .model import ExportSummary, MissingVideoInfo, VideoExport
from .registry import exporter
from .streaming import PreparedTask, open_zip, prepare, video_stems, write_member, write_summary


def _overlaps_frame(points: np.ndarray, width: float, height: float) -> np.ndarray:
    """Whether each rotated box (n x 4 corners) shares some area with the frame [0, width] x [0, height].

    Separating axes of two convex shapes: the frame's edge normals (x, y) and the box's (its two edge
    directions). The box misses the frame, or only touches its border, iff on one axis the two
    projections overlap by nothing.
    """
    frame = np.array([[0, 0], [width, 0], [width, height], [0, height]], float)
    axes = [np.array([1.0, 0.0]), np.array([0.0, 1.0]), points[:, 1] - points[:, 0], points[:, 3] - points[:, 0]]
    overlaps = np.ones(len(points), bool)
    for axis in axes:
        box = np.einsum('nkd,nd->nk', points, np.broadcast_to(axis, (len(points), 2)))
        edge = frame @ np.broadcast_to(axis, (len(points), 2)).T  # (4, n)
        overlaps &= np.minimum(box.max(1), edge.max(0)) - np.maximum(box.min(1), edge.min(0)) > 0
    return overlaps


def _label_lines(task: PreparedTask, boxes: list[tuple[int, FrameBoxes]], oriented: bool) -> tuple[np.ndarray, list]:
    """(frames, lines) of one window's boxes, sorted by frame then track; clipped and dropped ones counted."""
    b = FrameBoxes.concat(chunk for _, chunk in boxes)
    classes = np.concatenate([np.full(len(chunk), label_id) for label_id, chunk in boxes] or [np.empty(0, int)])
    # percents stand in for pixels when the size is unknown: only possible without rotation (`_write` checks)
    size = (task.track_set.width, task.track_set.height) if task.track_set.has_size else (100, 100)
    points = corners(b.x, b.y, b.width, b.height, b.rotation, *size)
    keep = _overlaps_frame(points, *size)
    clamped = np.clip(points, 0, size) + 0.0  # + 0.0: no "-0.000000", which datumaro's number check refuses
    task.summary.boxes_dropped += int((~keep).sum())
    task.summary.boxes_clipped += int((keep & (clamped != points).any(axis=(1, 2))).sum())
    normalised = clamped[keep] / size
    if oriented:
        values = normalised.reshape(len(normalised), 8)
    else:
        low, high = normalised.min(axis=1), normalised.max(axis=1)
        values = np.column_stack([(low + high) / 2, high - low])  # x_center y_center width height
    frames, classes = b.frame[keep], classes[keep]
    order = np.argsort(frames, kind='stable')
    template = '%d' + ' %.6f' * values.shape[1] + '\n'
    lines = [template % (c, *v) for c, v in zip(classes[order].tolist(), values[order].tolist(), strict=True)]
    return frames[order], lines


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


def _write(out: BinaryIO, export: VideoExport, format_name: str, oriented: bool) -> ExportSummary:
    summary, tasks = prepare(export, format_name, needs_pixels=oriented)
    for task in tasks:  # the bounds of a rotated box depend on the frame's aspect ratio
        if not task.track_set.has_size and _is_rotated([task]):
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
    description='Every frame as a JPEG with a YOLO label file (rotated boxes: bounds), boxes clipped to the frame.',
    needs_images=True,
)
def write_yolo(out: BinaryIO, export: VideoExport) -> ExportSummary:
    return _write(out, export, 'YOLO', oriented=False)


@exporter(
    name='YOLO-OBB',
    ext='zip',
    title='YOLO oriented boxes',
    description='Every frame as a JPEG with YOLO-OBB labels (four rotated corners, normalised, clamped to the frame).',
    needs_pixels=True,
    needs_images=True,
)
def write_yolo_obb(out: BinaryIO, export: VideoExport) -> ExportSummary:
    return _write(out, export, 'YOLO-OBB', oriented=True)
