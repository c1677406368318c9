"""MOT Challenge ground truth: `gt/gt.txt` rows `frame,id,bb_left,bb_top,bb_width,bb_height,conf,class,visibility`.

Frames and track ids are 1-based, boxes in pixels; a rotated box becomes the axis-aligned box around
it (MOT has no angle). Class ids are 1-based lines of `gt/labels.txt`. One video sits at the zip
root; several get one sequence folder each, named after the video.
"""

from __future__ import annotations

from typing import BinaryIO

from ..interpolation import bounding_box
from .model import ExportSummary, VideoExport
from .registry import exporter
from .streaming import PreparedTask, open_zip, prepare, video_stems, write_member, write_summary


def _rows(task: PreparedTask):
    size = task.track_set.width, task.track_set.height
    for track, source in task.tracks:
        line = f'%d,{track.track_id},%.2f,%.2f,%.2f,%.2f,1,{track.label_id + 1},1\n'
        for boxes in task.chunks(source):
            left, top, width, height = bounding_box(boxes.x, boxes.y, boxes.width, boxes.height, boxes.rotation, *size)
            rows = zip(boxes.frame.tolist(), left.tolist(), top.tolist(), width.tolist(), height.tolist(), strict=True)
            yield ''.join(line % row for row in rows)


def _seqinfo(task: PreparedTask, stem: str) -> str:
    ts = task.track_set
    fps = ts.fps if ts.fps else ''
    return (
        f'[Sequence]\nname={stem}\nimDir=img1\nframeRate={fps}\nseqLength={ts.frame_count}\n'
        f'imWidth={ts.width}\nimHeight={ts.height}\nimExt=.jpg\n'
    )


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
        for task, stem in zip(tasks, video_stems(tasks), strict=True):
            folder = f'{stem}/' if len(tasks) > 1 else ''
            write_member(archive, f'{folder}seqinfo.ini', [_seqinfo(task, stem)])
            write_member(archive, f'{folder}gt/labels.txt', [labels])
            write_member(archive, f'{folder}gt/gt.txt', _rows(task))
        write_summary(archive, summary)
    return summary
