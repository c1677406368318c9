"""Frame-by-frame transcription of the labeling UI's keyframe rule: the oracle the tests hold the engine to.

Slow and obviously faithful, for tests only (`ls_extensions/video/interpolation.py` is the vectorised
rule the export uses): `VideoRectangleRegion.getShape` and `VideoRegion.isInLifespan` of Label Studio
1.23, walked for every frame in turn (docs/video-interpolation.md).
"""

from __future__ import annotations

import math

from ls_extensions.video.interpolation import GEOMETRY, KEYFRAME_DTYPE, normalize_sequence


def _reference_norm(angle: float) -> float:
    while angle > 0:
        angle -= 360
    return math.fmod(angle - 180, 360) + 180


def _reference_shape(keyframes: list[dict], frame: int) -> tuple[dict, bool] | None:
    prev = nxt = None
    for item in keyframes:
        if item['frame'] == frame:
            return {name: item[name] for name in GEOMETRY}, True
        if item['frame'] > frame:
            nxt = item
            break
        prev = item
    if prev is None:
        return None
    if nxt is None:
        return {name: prev[name] for name in GEOMETRY}, False
    r = (frame - prev['frame']) / (nxt['frame'] - prev['frame'])
    shape = {name: prev[name] + (nxt[name] - prev[name]) * r for name in GEOMETRY[:4]}
    shape['rotation'] = _reference_norm(prev['rotation'] + _reference_norm(nxt['rotation'] - prev['rotation']) * r)
    return shape, False


def _reference_in_lifespan(keyframes: list[dict], frame: int) -> bool:
    before = [item for item in keyframes if item['frame'] <= frame]
    closest = before[-1] if before else next((item for item in keyframes if item['frame'] >= frame), None)
    return closest is not None and (closest['frame'] == frame or closest['enabled'])


def reference_expand(sequence, frames_count: int) -> list[dict]:
    """Frame-by-frame transcription of the UI code, for tests only: slow and obviously faithful."""
    names = KEYFRAME_DTYPE.names
    keyframes = [dict(zip(names, row, strict=True)) for row in normalize_sequence(sequence).tolist()]

    def drawn(frame):
        shape = _reference_shape(keyframes, frame)
        return shape if shape is not None and _reference_in_lifespan(keyframes, frame) else None

    boxes = []
    for frame in range(1, frames_count + 1):
        shape = drawn(frame)
        if shape is not None:
            values, keyframe = shape
            boxes.append({'frame': frame, **values, 'keyframe': keyframe, 'continues': drawn(frame + 1) is not None})
    return boxes
