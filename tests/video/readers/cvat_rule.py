"""CVAT's own reading of a CVAT-for-video 1.1 XML: which box a track has on each frame after import.

CVAT cannot be installed here (a Django server with its own database), so its rule is transcribed,
for rectangles, from its source (cvat-ai/cvat):

- Import, `cvat/apps/dataset_manager/formats/cvat.py:load_anno` (commit a01a8a8ff5aa): a `<box>` of a
  `<track>` becomes a tracked shape only if `keyframe == "1"` (the attribute is required); it keeps
  `frame`, `outside == "1"`, `occluded == "1"`, `rotation` (default 0) and points `xtl ytl xbr ybr`.
  Every other box of the track is dropped.
- `cvat/apps/dataset_manager/bindings.py:TaskData._import_track` maps each shape's frame through
  `rel_frame_id`, which refuses a frame outside the task (start_frame..stop_frame): the whole import fails.
- What a track shows, `cvat/apps/dataset_manager/annotation.py:TrackManager.get_interpolated_shapes`
  (commit 4c4f6b5dffcf), over frames 0..end_frame - 1 (end_frame = the task's size):
  the shapes are sorted by frame (a stable sort) and two on one frame fail an assertion; each keyframe is
  shown as it is; between a keyframe that is not outside and the next one, frames are interpolated
  (`simple_interpolation`): points `p0 + (p1 - p0) * offset`, rotation
  `(r0 + find_angle_diff(r1, r0) * offset + 360) % 360`, occluded/outside copied from the left keyframe;
  after the last keyframe, if it is not outside, it is held (`propagate`) to the end. Outside keyframes
  and frames after them up to the next keyframe show nothing.
- `find_angle_diff` differs between the server and the annotation UI, which interpolates again in the
  browser (`cvat-core/src/annotations-objects.ts:findAngleDiff`): `d = ((r1 - r0 + 180) % 360) - 180`
  (Python's `%` on the server, JavaScript's (`fmod`) in the UI), then if `|d| >= 180`: the server returns
  `360 - |d| * -1 if d > 0 else 1` (so exactly 180 degrees apart turns by 1 degree), the UI
  `360 - |d| * sign(d) * -1`. `rule='server'` or `'ui'` picks one.

A CVAT box turns about its centre, clockwise on screen (y down), by `rotation` degrees.
"""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from dataclasses import dataclass


class CvatImportError(ValueError):
    """What makes CVAT refuse the whole file (a frame outside the task, two keyframes on one frame)."""


@dataclass(frozen=True)
class CvatBox:
    frame: int  # 0-based, as in CVAT
    xtl: float
    ytl: float
    xbr: float
    ybr: float
    rotation: float
    occluded: bool
    keyframe: bool

    def corners(self) -> list[tuple[float, float]]:
        """Top-left, top-right, bottom-right, bottom-left before rotation, turned about the centre."""
        cx, cy = (self.xtl + self.xbr) / 2, (self.ytl + self.ybr) / 2
        angle = math.radians(self.rotation)
        cos, sin = math.cos(angle), math.sin(angle)
        points = ((self.xtl, self.ytl), (self.xbr, self.ytl), (self.xbr, self.ybr), (self.xtl, self.ybr))
        return [(cx + (x - cx) * cos - (y - cy) * sin, cy + (x - cx) * sin + (y - cy) * cos) for x, y in points]


@dataclass
class _Shape:
    frame: int
    points: list[float]
    rotation: float
    outside: bool
    occluded: bool
    keyframe: bool = True


def find_angle_diff(right: float, left: float, rule: str) -> float:
    """CVAT's `find_angle_diff` (server, Python) or `findAngleDiff` (UI, JavaScript), see the module doc."""
    diff = right - left
    if rule == 'server':
        diff = ((diff + 180) % 360) - 180
        if abs(diff) >= 180:
            diff = 360 - abs(diff) * -1 if diff > 0 else 1
        return diff
    if rule == 'ui':
        diff = math.fmod(diff + 180, 360) - 180
        if abs(diff) >= 180:
            diff = 360 - abs(diff) * math.copysign(1, diff) * -1
        return diff
    raise ValueError(f'rule must be "server" or "ui", got {rule!r}')


def _interpolate(shape0: _Shape, shape1: _Shape, rule: str) -> list[_Shape]:
    """`simple_interpolation`: the frames strictly between two keyframes."""
    distance = shape1.frame - shape0.frame
    turn = find_angle_diff(shape1.rotation, shape0.rotation, rule)
    shapes = []
    for frame in range(shape0.frame + 1, shape1.frame):
        offset = (frame - shape0.frame) / distance
        rotation = (shape0.rotation + turn * offset + 360) % 360
        points = [p0 + (p1 - p0) * offset for p0, p1 in zip(shape0.points, shape1.points, strict=True)]
        shapes.append(_Shape(frame, points, rotation, shape0.outside, shape0.occluded, keyframe=False))
    return shapes


def interpolated_shapes(keyframes: list[_Shape], end_frame: int, rule: str) -> list[_Shape]:
    """`TrackManager.get_interpolated_shapes(track, 0, end_frame)` for a rectangle track."""
    shapes, prev = [], None
    for shape in sorted(keyframes, key=lambda s: s.frame):
        if prev is not None and end_frame <= shape.frame:  # a keyframe past the end: interpolate up to it
            shapes.extend(s for s in _interpolate(prev, shape, rule) if s.frame < end_frame)
            prev = None
            break
        if prev is not None:
            if not shape.frame > prev.frame:
                raise CvatImportError(f'two keyframes on frame {shape.frame}')
            if not prev.outside:
                shapes.extend(_interpolate(prev, shape, rule))
        shapes.append(shape)
        prev = shape
    if prev is not None and not prev.outside:
        shapes.extend(
            _Shape(frame, list(prev.points), prev.rotation, prev.outside, prev.occluded, keyframe=False)
            for frame in range(prev.frame + 1, end_frame)
        )
    first = min(s.frame for s in keyframes)
    return [s for s in shapes if first <= s.frame < end_frame and (s.keyframe or not s.outside)]


def read_tracks(xml: bytes, rule: str = 'server') -> dict[int, dict[int, CvatBox]]:
    """Track id -> 0-based frame -> the box CVAT shows there (frames without a visible box are absent)."""
    root = ET.fromstring(xml)
    size = int(root.findtext('meta/task/size'))
    start, stop = int(root.findtext('meta/task/start_frame')), int(root.findtext('meta/task/stop_frame'))
    tracks = {}
    for track in root.iter('track'):
        keyframes = []
        for box in track.iter('box'):
            if box.attrib['keyframe'] != '1':  # load_anno: only keyframes are kept
                continue
            frame = int(box.attrib['frame'])
            if not start <= frame <= stop:  # bindings.py: rel_frame_id
                raise CvatImportError(f'track {track.get("id")}: frame {frame} is out of the task range')
            points = [float(box.attrib[name]) for name in ('xtl', 'ytl', 'xbr', 'ybr')]
            keyframes.append(
                _Shape(
                    frame,
                    points,
                    float(box.attrib.get('rotation', 0)),
                    box.attrib.get('outside', '0') == '1',
                    box.attrib.get('occluded', '0') == '1',
                )
            )
        shown = {}
        if keyframes:
            for shape in interpolated_shapes(keyframes, size, rule):
                if not shape.outside:
                    shown[shape.frame] = CvatBox(
                        shape.frame, *shape.points, shape.rotation, shape.occluded, shape.keyframe
                    )
        tracks[int(track.attrib['id'])] = shown
    return tracks
