"""CVAT for video 1.1 XML: `<track>`s of `<box>`es on 0-based frames, one `annotations.xml` per video.

CVAT rotates a box about its centre, Label Studio about its top-left corner: boxes are moved so
that CVAT draws the same rectangle. Where a visible span ends before the video does, a copy of the
last box with `outside="1"` goes on the next frame. `keyframe="1"` marks Label Studio keyframes and
span starts; on tracks with any rotation every box is a keyframe, as CVAT's own interpolation
(between centre-rotated boxes) would not give back the per-frame boxes.
"""

from __future__ import annotations

from typing import BinaryIO
from xml.sax.saxutils import escape, quoteattr

from ..interpolation import to_cvat_box
from .model import ExportSummary, VideoExport
from .registry import exporter
from .streaming import PreparedTask, open_zip, prepare, px, video_stems, write_member, write_summary

BOX = (
    '    <box frame="%d" keyframe="%d" outside="%d" occluded="0" '
    'xtl="%s" ytl="%s" xbr="%s" ybr="%s" z_order="0" rotation="%s"></box>\n'
)


def _meta(task: PreparedTask, labels: list[str]) -> str:
    ts = task.track_set
    label_xml = ''.join(
        f'        <label><name>{escape(name)}</name><type>rectangle</type><attributes></attributes></label>\n'
        for name in labels
    )
    return (
        '  <meta>\n    <task>\n'
        f'      <id>{ts.task_id}</id>\n      <name>{escape(ts.video)}</name>\n      <size>{ts.frame_count}</size>\n'
        '      <mode>interpolation</mode>\n      <overlap>0</overlap>\n'
        f'      <start_frame>0</start_frame>\n      <stop_frame>{ts.frame_count - 1}</stop_frame>\n'
        f'      <labels>\n{label_xml}      </labels>\n'
        f'      <original_size><width>{ts.width}</width><height>{ts.height}</height></original_size>\n'
        f'      <source>{escape(ts.video)}</source>\n'
        '    </task>\n  </meta>\n'
    )


def _boxes(task: PreparedTask, source, all_keyframes: bool):
    size = task.track_set.width, task.track_set.height
    last = task.track_set.frame_count
    starts_span = True
    for b in task.chunks(source):
        xtl, ytl, xbr, ybr, rotation = to_cvat_box(b.x, b.y, b.width, b.height, b.rotation, *size)
        lines = []
        for frame, key, goes_on, *geometry in zip(
            b.frame.tolist(),
            b.keyframe.tolist(),
            b.continues.tolist(),
            xtl.tolist(),
            ytl.tolist(),
            xbr.tolist(),
            ybr.tolist(),
            rotation.tolist(),
            strict=True,
        ):
            values = tuple(px(v) for v in geometry)
            lines.append(BOX % (frame - 1, all_keyframes or key or starts_span, 0, *values))
            if not goes_on and frame < last:
                lines.append(BOX % (frame, 1, 1, *values))
            starts_span = not goes_on
        yield ''.join(lines)


def _document(task: PreparedTask, labels: list[str]):
    yield f'<?xml version="1.0" encoding="utf-8"?>\n<annotations>\n  <version>1.1</version>\n{_meta(task, labels)}'
    for track, source in task.tracks:
        yield f'  <track id="{track.track_id}" label={quoteattr(track.label)} source="manual">\n'
        yield from _boxes(task, source, source.rotated)
        yield '  </track>\n'
    yield '</annotations>\n'


@exporter(
    name='CVAT',
    ext='zip',
    title='CVAT for video 1.1',
    description='CVAT tracks with a box on every frame where the UI shows one, rotation converted to CVAT centre.',
    needs_pixels=True,
)
def write_cvat(out: BinaryIO, export: VideoExport) -> ExportSummary:
    summary, tasks = prepare(export, 'CVAT', needs_pixels=True)
    with open_zip(out) as archive:
        for task, stem in zip(tasks, video_stems(tasks), strict=True):
            folder = f'{stem}/' if len(tasks) > 1 else ''
            write_member(archive, f'{folder}annotations.xml', _document(task, export.labels))
        write_summary(archive, summary)
    return summary
