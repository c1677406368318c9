"""CVAT for video 1.1 XML: `<track>`s of `<box>`es on 0-based frames, one `annotations.xml` per video.

CVAT rotates a box about its centre, Label Studio about its top-left corner: boxes are moved so that
CVAT draws the same rectangle. Every box the UI shows is written (readers that take the boxes as they
are, e.g. datumaro, get every frame), and where a visible span ends before the video does, a copy of
its last box with `outside="1"` goes on the next frame.

CVAT itself keeps only the `keyframe="1"` boxes of a track and interpolates between them (linearly,
rotation the short way round; `CvatInterpolation`), which is not the UI's rule for unsorted or repeated
keyframes, keyframes past the end or turning boxes. So keyframes are chosen (`keyframes.greedy_keyframes`)
such that CVAT's interpolation of the values as written gives back every box within `TOLERANCE_PX` at
every corner: span starts, span ends followed by `outside`, and wherever interpolating further would be off.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import BinaryIO
from xml.sax.saxutils import escape, quoteattr

import numpy as np

from ..geometry import corners, to_cvat_box
from ..interpolation import FrameBoxes
from ..keyframes import greedy_keyframes
from .model import ExportSummary, VideoExport
from .registry import exporter
from .streaming import PreparedTask, open_zip, prepare, px, video_stems, write_member, write_summary

BOX = (
    '    <box frame="%d" keyframe="%d" outside="%d" occluded="0" '
    'xtl="%s" ytl="%s" xbr="%s" ybr="%s" z_order="0" rotation="%s"></box>\n'
)
TOLERANCE_PX = 0.5  # the most a corner of CVAT's box may be off the UI's
PENDING_CHUNKS = 4  # an undecided straight stretch longer than this many chunks gets a keyframe (flat memory)


def _cvat_corners(points: np.ndarray, rotation: np.ndarray) -> np.ndarray:
    """(n, 4, 2) corners of CVAT boxes (xtl, ytl, xbr, ybr), turned clockwise about their centres."""
    cx, cy = (points[:, 0] + points[:, 2]) / 2, (points[:, 1] + points[:, 3]) / 2
    half_w, half_h = (points[:, 2] - points[:, 0]) / 2, (points[:, 3] - points[:, 1]) / 2
    radians = np.deg2rad(rotation)
    cos, sin = np.cos(radians)[:, None], np.sin(radians)[:, None]
    dx = np.stack([-half_w, half_w, half_w, -half_w], axis=-1)
    dy = np.stack([-half_h, -half_h, half_h, half_h], axis=-1)
    return np.stack([cx[:, None] + dx * cos - dy * sin, cy[:, None] + dx * sin + dy * cos], axis=-1)


def cvat_turn(right: np.ndarray, left: np.ndarray, rule: str) -> np.ndarray:
    """CVAT's angle step between keyframes: the server's `find_angle_diff` (annotation.py) or the UI's
    `findAngleDiff` (cvat-core); they differ only at exactly 180 degrees (server: 1, UI: 180)."""
    if rule == 'server':
        diff = np.mod(right - left + 180, 360) - 180
        return np.where(np.abs(diff) >= 180, np.where(diff > 0, 360 + np.abs(diff), 1.0), diff)
    diff = np.fmod(right - left + 180, 360) - 180
    return np.where(np.abs(diff) >= 180, 360 + diff, diff)


@dataclass
class CvatInterpolation:
    """CVAT's interpolation of the boxes as written (`values`: xtl, ytl, xbr, ybr, rotation) against the
    UI's corners (`targets`), on 1-based `frames`: linear points, rotation the short way round, then
    `(r + 360) % 360`; both the server's and the UI's angle step must fit."""

    frames: np.ndarray
    values: np.ndarray
    targets: np.ndarray

    def error(self, a, b, at):
        left = self.values[a]
        if b is None:
            shown = [(left[:, :4], left[:, 4])]
        else:
            right = self.values[b]
            offset = ((self.frames[at] - self.frames[a]) / (self.frames[b] - self.frames[a]))[:, None]
            points = left[:, :4] + (right[:, :4] - left[:, :4]) * offset
            turns = {rule: cvat_turn(right[:, 4], left[:, 4], rule) for rule in ('ui', 'server')}
            same = np.array_equal(turns['ui'], turns['server'])
            shown = [(points, np.mod(left[:, 4] + turn * offset[:, 0] + 360, 360)) for turn in turns.values()]
            shown = shown[:1] if same else shown
        return np.max(
            [np.hypot(*np.moveaxis(_cvat_corners(p, r) - self.targets[at], -1, 0)).max(axis=-1) for p, r in shown],
            axis=0,
        )


@dataclass
class _Run:
    """Consecutive boxes of one track, with the text to write and the values CVAT will read back from it."""

    frames: np.ndarray
    text: list[tuple[str, ...]]
    values: np.ndarray
    targets: np.ndarray
    continues: np.ndarray

    @classmethod
    def of(cls, boxes: FrameBoxes, width: int, height: int) -> _Run:
        geometry = np.stack(to_cvat_box(boxes.x, boxes.y, boxes.width, boxes.height, boxes.rotation, width, height), -1)
        text = [tuple(px(v) for v in row) for row in geometry.tolist()]
        values = np.array([[float(v) for v in row] for row in text], np.float64).reshape(-1, 5)
        targets = corners(boxes.x, boxes.y, boxes.width, boxes.height, boxes.rotation, width, height)
        return cls(boxes.frame, text, values, targets.reshape(-1, 4, 2), boxes.continues)

    def __len__(self) -> int:
        return len(self.frames)

    def __getitem__(self, part: slice) -> _Run:
        return _Run(self.frames[part], self.text[part], self.values[part], self.targets[part], self.continues[part])

    def __add__(self, other: _Run) -> _Run:
        join = np.concatenate
        return _Run(
            join([self.frames, other.frames]),
            self.text + other.text,
            join([self.values, other.values]),
            join([self.targets, other.targets]),
            join([self.continues, other.continues]),
        )

    def keyframes(self, tail: str) -> np.ndarray:
        return greedy_keyframes(
            len(self), CvatInterpolation(self.frames, self.values, self.targets), TOLERANCE_PX, tail
        )

    def lines(self, keys: np.ndarray, stop: int | None = None) -> list[str]:
        stop = len(self) if stop is None else stop
        key = np.zeros(len(self), bool)
        key[keys] = True
        return [
            BOX % (frame - 1, k, 0, *text)
            for frame, k, text in zip(self.frames[:stop].tolist(), key[:stop].tolist(), self.text[:stop], strict=True)
        ]


def _boxes(task: PreparedTask, source):
    """The track's `<box>` lines, chunk by chunk; a stretch whose keyframes are not decided yet waits."""
    size = task.track_set.width, task.track_set.height
    last = task.track_set.frame_count
    pending_cap = PENDING_CHUNKS * task.chunk_frames
    pending = None
    for chunk in task.chunks(source):
        run = _Run.of(chunk, *size)
        run = run if pending is None else pending + run
        lines, start = [], 0
        for end in np.flatnonzero(~run.continues).tolist():
            span = run[start : end + 1]
            hidden_after = int(span.frames[-1]) < last
            lines += span.lines(span.keyframes('keyframe' if hidden_after else 'hold'))
            if hidden_after:
                lines.append(BOX % (span.frames[-1], 1, 1, *span.text[-1]))
            start = end + 1
        rest, pending = run[start:], None
        if len(rest):
            keys = rest.keyframes('keyframe' if len(rest) > pending_cap else 'open')
            lines += rest.lines(keys, stop=int(keys[-1]))
            pending = rest[int(keys[-1]) :]
        yield ''.join(lines)
    if pending is not None:
        yield ''.join(pending.lines(pending.keyframes('hold')))


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


def _document(task: PreparedTask, labels: list[str]):
    yield f'<?xml version="1.0" encoding="utf-8"?>\n<annotations>\n  <version>1.1</version>\n{_meta(task, labels)}'
    for track, source in task.tracks:
        yield f'  <track id="{track.track_id}" label={quoteattr(track.label)} source="manual">\n'
        yield from _boxes(task, source)
        yield '  </track>\n'
    yield '</annotations>\n'


@exporter(
    name='CVAT',
    ext='zip',
    title='CVAT for video 1.1',
    description='CVAT tracks with a box on every frame where the UI shows one, rotation converted to CVAT centre; '
    'keyframes chosen so that CVAT interpolates back every box within 0.5 px.',
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
