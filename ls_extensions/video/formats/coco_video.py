"""COCO-video (TAO-like) JSON: `videos`, `images` per frame, `tracks`, `annotations`, `categories`.

Every (exported, see `frame_stride`) frame of every video is an image with `file_name` `<video>/<frame>.jpg`
(the 1-based frame, as in the YOLO and MOT layouts), TAO's `frame_index` (the frame's 0-based index in
the video) and mmtracking's `frame_id` (CocoVID: the 0-based position among the video's images, as
mmtracking's converters number them; the same as `frame_index` without a stride; 0 starts a video).
An annotation's `bbox` is `[x, y, w, h]` in pixels around the (possibly rotated) box, not clipped;
`segmentation` is the box itself as a polygon, its four corners as the UI draws them (so the angle
survives; datumaro warns on every annotation without `segmentation`), `area` that polygon's area, and
`instance_id` (mmtracking's name) equals `track_id` (TAO's). Ids are 1-based and assigned in output
order; an image id is the video's offset plus its frame, so annotations need no lookup table. Written
as it goes; `info`, last, carries the export summary. A predictions export adds the track's `score` to
its track and to each of its annotations, where COCO result files (pycocotools' `loadRes`) carry it.
"""

from __future__ import annotations

import json
from typing import BinaryIO

import numpy as np

from ..geometry import bounding_box, corners
from .model import ExportSummary, VideoExport
from .registry import exporter
from .streaming import JsonArray, PreparedTask, dump_json, prepare, text_writer, video_stems

# Templates rather than json.dumps per item: several times faster, and stems are already JSON-safe.
IMAGE = (
    '{"id": %d, "frame_index": %d, "frame_id": %d, "file_name": "%s/%06d.jpg", "video_id": %d, '
    '"width": %d, "height": %d}'
)
ANNOTATION = (
    '{"id": %d, "image_id": %d, "video_id": %d, "track_id": %d, "instance_id": %d, "category_id": %d, '
    '"iscrowd": 0, "bbox": [%.2f, %.2f, %.2f, %.2f], "area": %.2f, '
    '"segmentation": [[%.2f, %.2f, %.2f, %.2f, %.2f, %.2f, %.2f, %.2f]]}'
)


def _videos(tasks: list[PreparedTask], stems: list[str]):
    for video_id, (task, stem) in enumerate(zip(tasks, stems, strict=True), 1):
        ts = task.track_set
        yield json.dumps(
            {
                'id': video_id,
                'name': stem,
                'file_name': ts.video,
                'task_id': ts.task_id,
                'width': ts.width,
                'height': ts.height,
                'fps': ts.fps,
                'length': ts.frame_count,
            }
        )


def _images(tasks: list[PreparedTask], stems: list[str], offsets: list[int]):
    for video_id, (task, stem, offset) in enumerate(zip(tasks, stems, offsets, strict=True), 1):
        ts = task.track_set
        fixed = (video_id, ts.width, ts.height)
        for lo in range(1, ts.frame_count + 1, task.chunk_frames):
            frames = task.frames(lo, min(lo + task.chunk_frames - 1, ts.frame_count))
            stride = task.frame_stride
            yield ', '.join(IMAGE % (offset + f, f - 1, (f - 1) // stride, stem, f, *fixed) for f in frames)


def _tracks(tasks: list[PreparedTask]):
    track_id = 0
    for video_id, task in enumerate(tasks, 1):
        for track, _ in task.tracks:
            track_id += 1
            entry = {'id': track_id, 'category_id': track.label_id + 1, 'video_id': video_id}
            scored = {} if track.score is None else {'score': track.score}
            yield json.dumps({**entry, 'ls_track_id': track.track_id, **scored})


def _annotations(tasks: list[PreparedTask], offsets: list[int]):
    annotation_id = track_id = 0
    for video_id, (task, offset) in enumerate(zip(tasks, offsets, strict=True), 1):
        size = task.track_set.width, task.track_set.height
        for track, source in task.tracks:
            track_id += 1
            fixed = (video_id, track_id, track_id, track.label_id + 1)
            scored = '' if track.score is None else f', "score": {json.dumps(track.score)}'
            template = ANNOTATION[:-1] + scored.replace('%', '%%') + '}'
            for b in task.chunks(source):
                boxes = [v.tolist() for v in bounding_box(b.x, b.y, b.width, b.height, b.rotation, *size)]
                polygons = corners(b.x, b.y, b.width, b.height, b.rotation, *size).reshape(len(b), 8).tolist()
                areas = np.abs(b.width * size[0] / 100 * b.height * size[1] / 100).tolist()
                ids = range(annotation_id + 1, annotation_id + len(b) + 1)
                annotation_id += len(b)
                rows = zip(ids, b.frame.tolist(), *boxes, areas, polygons, strict=True)
                yield ', '.join(
                    template % (i, offset + frame, *fixed, left, top, width, height, area, *polygon)
                    for i, frame, left, top, width, height, area, polygon in rows
                )


@exporter(
    name='COCO-video',
    ext='json',
    title='COCO video (TAO)',
    description='COCO-style JSON with videos, one image per frame, tracks and per-frame pixel boxes.',
    needs_pixels=True,
)
def write_coco_video(out: BinaryIO, export: VideoExport) -> ExportSummary:
    summary, tasks = prepare(export, 'COCO-video', needs_pixels=True)
    stems = video_stems(tasks)
    offsets, total = [], 0
    for task in tasks:
        offsets.append(total)
        total += task.track_set.frame_count
    document = {
        'categories': [{'id': index, 'name': name} for index, name in enumerate(export.labels, 1)],
        'videos': JsonArray(_videos(tasks, stems)),
        'images': JsonArray(_images(tasks, stems, offsets)),
        'tracks': JsonArray(_tracks(tasks)),
        'annotations': JsonArray(_annotations(tasks, offsets)),
        'info': lambda: {'description': 'Label Studio video tracks, every frame shown in the UI', **summary.to_dict()},
    }
    dump_json(document, text_writer(out))
    return summary
