"""Per-frame boxes of a Label Studio video rectangle track, exactly as the labeling UI draws them.

The rule is the UI's (docs/video-interpolation.md, from `VideoRectangleRegion.getShape`,
`VideoRegion.isInLifespan` and `utils/props.ts` of Label Studio 1.23): the stored keyframes are walked
in stored order, never sorted, so unsorted or repeated keyframes give what the UI shows, not what a
sorted copy would. Label Studio's own `extract_key_frames` differs (sorts, no rotation wrap-around).

Pure NumPy, no Django: the expansion is vectorised per track, its cost follows the boxes written. Box
geometry (corners, bounds, CVAT boxes) is in `geometry.py`; the tests' frame-by-frame oracle is
`tests/video/reference_interpolation.py`.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, fields
from numbers import Integral, Real

import numpy as np

from .geometry import wrap_degrees

KEYFRAME_DTYPE = np.dtype(
    [
        ('frame', np.int64),
        ('enabled', np.bool_),
        ('x', np.float64),
        ('y', np.float64),
        ('width', np.float64),
        ('height', np.float64),
        ('rotation', np.float64),
    ]
)
GEOMETRY = ('x', 'y', 'width', 'height', 'rotation')
MAX_FRAME = 2**53  # frames are JavaScript numbers: beyond +-this they are no longer exact integers
DEFAULT_CHUNK_FRAMES = 1 << 13  # boxes per chunk: a few MB of output text at most
_FAR = np.int64(2**62)  # stands for "to the end of any video" in segment bounds


class MalformedSequence(ValueError):
    """A stored `value.sequence` that cannot be drawn; the message names the keyframe and the reason."""


# ---------------------------------------------------------------- normalisation


def _js_truthy(value) -> bool:
    """`enabled` is tested with JavaScript truthiness in the UI (missing -> undefined -> false)."""
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, Real):
        return value == value and value != 0
    if isinstance(value, str):
        return value != ''
    return value is not None


def _number(item: dict, key: str, index: int, default: float | None = None) -> float:
    value = item.get(key)
    if value is None:
        if default is None:
            raise MalformedSequence(f'keyframe #{index}: "{key}" is missing')
        return default
    plain = type(value) is float or type(value) is int  # JSON's own types: skip the slow ABC checks
    if not plain and (isinstance(value, (bool, np.bool_)) or not isinstance(value, Real)):
        raise MalformedSequence(f'keyframe #{index}: "{key}" must be a number, got {value!r}')
    try:
        number = float(value)
    except OverflowError:
        number = math.inf
    if not math.isfinite(number):
        raise MalformedSequence(f'keyframe #{index}: "{key}" must be finite, got {value!r}')
    return number


def _frame(item: dict, index: int) -> int:
    _number(item, 'frame', index)
    raw = item['frame']
    whole = isinstance(raw, Integral) or float(raw).is_integer()
    if not whole or not -MAX_FRAME <= raw <= MAX_FRAME:
        raise MalformedSequence(f'keyframe #{index}: "frame" must be a whole number, got {raw!r}')
    return int(raw)


_NUMBERS = {int, float}


def _plain_keyframes(sequence) -> np.ndarray | None:
    """The usual stored sequence, a field at a time: dicts of JSON numbers with boolean (or no) `enabled`.

    Gives exactly what the keyframe-by-keyframe path gives, several times faster; None for anything
    else (missing or odd values, mixed int/float frames, out of range), which that path then handles.
    """
    try:
        frames = [item['frame'] for item in sequence]
        geometry = [[item[name] for item in sequence] for name in ('x', 'y', 'width', 'height')]
        rotation = [item.get('rotation', 0.0) for item in sequence]
        enabled = [item.get('enabled', False) for item in sequence]
    except (KeyError, TypeError, AttributeError):
        return None
    if not all(set(map(type, values)) <= _NUMBERS for values in (*geometry, rotation)):
        return None
    if not set(map(type, enabled)) <= {bool} or (frame_types := set(map(type, frames))) not in ({int}, {float}):
        return None
    try:
        frame = np.array(frames, np.int64 if frame_types == {int} else np.float64)
        values = np.array([*geometry, rotation], np.float64)
    except OverflowError:
        return None
    if not (np.isfinite(values).all() and (np.abs(frame) <= MAX_FRAME).all()):
        return None
    if frame.dtype.kind == 'f' and not (frame == np.floor(frame)).all():
        return None
    keyframes = np.empty(len(frames), KEYFRAME_DTYPE)
    keyframes['frame'], keyframes['enabled'] = frame, enabled
    for name, column in zip(GEOMETRY[:4] + ('rotation',), values, strict=True):
        keyframes[name] = column
    return keyframes


def normalize_sequence(sequence) -> np.ndarray:
    """Validate a stored sequence into a `KEYFRAME_DTYPE` array, keeping the stored order.

    Missing `enabled` is false and missing `rotation` is 0, as in the UI; a missing or non-finite
    frame or geometry raises `MalformedSequence`, since the UI would draw nothing sensible. Any whole
    frame is kept, as in the UI: a keyframe at frame 0 or below (tracker output converted 0-based) is
    never drawn itself but takes part in the walk, so it interpolates into frames 1...
    """
    if isinstance(sequence, np.ndarray) and sequence.dtype == KEYFRAME_DTYPE:
        if not len(sequence):
            raise MalformedSequence('the sequence has no keyframes')
        return sequence
    if not isinstance(sequence, (list, tuple)):
        raise MalformedSequence(f'the sequence must be a list of keyframes, got {type(sequence).__name__}')
    if not sequence:
        raise MalformedSequence('the sequence has no keyframes')
    plain = _plain_keyframes(sequence)
    if plain is not None:
        return plain
    rows = []
    for index, item in enumerate(sequence):
        if not isinstance(item, dict):
            raise MalformedSequence(f'keyframe #{index}: expected an object, got {type(item).__name__}')
        rows.append(
            (
                _frame(item, index),
                _js_truthy(item.get('enabled')),
                _number(item, 'x', index),
                _number(item, 'y', index),
                _number(item, 'width', index),
                _number(item, 'height', index),
                _number(item, 'rotation', index, default=0.0),
            )
        )
    return np.array(rows, dtype=KEYFRAME_DTYPE)


# ---------------------------------------------------------------- angles


def normalize_angle(angle):
    """The UI's `normalizeAngle` bit for bit: `while (a > 0) a -= 360; return ((a - 180) % 360) + 180`.

    The loop is replaced by `a - 360 * (k - 1) - 360`: every subtraction but the last is exact in
    IEEE doubles (below 2**56), so only the last one rounds, the same one as in the loop.
    """
    a = np.array(angle, dtype=np.float64, ndmin=1)
    positive = a > 0
    if positive.any():
        p = a[positive]
        k = np.ceil(p / 360)
        before_last = p - 360 * (k - 1)
        k = np.where(before_last > 360, k + 1, np.where(before_last <= 0, k - 1, k))
        a[positive] = (p - 360 * (k - 1)) - 360
    result = np.fmod(a - 180, 360) + 180
    return result if np.ndim(angle) else float(result[0])


# ---------------------------------------------------------------- expansion


@dataclass(frozen=True)
class FrameBoxes:
    """Boxes of one track on the frames where the UI draws it, ascending 1-based frames.

    `keyframe`: the values are a stored keyframe's own; `continues`: the box is also drawn on the
    next frame (a span ends where it is false), which CVAT's `outside` and re-importable JSON need.
    """

    frame: np.ndarray
    x: np.ndarray
    y: np.ndarray
    width: np.ndarray
    height: np.ndarray
    rotation: np.ndarray
    keyframe: np.ndarray
    continues: np.ndarray

    def __len__(self) -> int:
        return len(self.frame)

    @classmethod
    def concat(cls, chunks) -> FrameBoxes:
        chunks = list(chunks)
        if not chunks:
            return cls(np.empty(0, np.int64), *(np.empty(0) for _ in GEOMETRY), *(np.empty(0, bool),) * 2)
        return cls(*(np.concatenate([getattr(c, f.name) for c in chunks]) for f in fields(cls)))

    @property
    def rotated(self) -> bool:
        return bool(np.any(wrap_degrees(self.rotation) != 0))

    def expand(self, start: int, stop: int) -> FrameBoxes:
        """The boxes on frames start..stop, so precomputed boxes serve wherever a plan does."""
        lo, hi = np.searchsorted(self.frame, [start, stop + 1])
        return FrameBoxes(*(getattr(self, f.name)[lo:hi] for f in fields(self)))

    def next_visible(self, frame: int) -> int | None:
        index = np.searchsorted(self.frame, frame)
        return int(self.frame[index]) if index < len(self.frame) else None


class ExpansionPlan:
    """The UI rule of one sequence reduced to frame segments with constant behaviour.

    For each distinct keyframe frame u there is a point segment [u, u] and an open segment up to
    the next distinct frame. Walking the stored array for frame f stops at the first keyframe with
    frame > f, i.e. where the prefix maximum of frames exceeds f; so on a segment the walk always
    ends at the same place: the same `prev`/`next`, or an exact match (only possible on the point
    segment u == prefix max). Visibility uses the last stored keyframe with frame <= f, found with
    the suffix minimum. Expanding a frame window then costs one gather per box.
    """

    def __init__(self, sequence):
        kf = normalize_sequence(sequence)
        self.keyframes = kf
        # plain contiguous columns: gathers from them are several times faster than from structured fields
        self.columns = {name: np.ascontiguousarray(kf[name]) for name in ('frame', *GEOMETRY)}
        frames, count = kf['frame'], len(kf)
        prefix_max = np.maximum.accumulate(frames)
        suffix_min = np.minimum.accumulate(frames[::-1])[::-1]
        distinct, first_index = np.unique(frames, return_index=True)
        walked = np.searchsorted(prefix_max, distinct, 'right')  # keyframes passed before one > f
        last_le = np.searchsorted(suffix_min, distinct, 'right') - 1  # last stored keyframe <= f
        has_prev = walked > 0
        exact = has_prev & (prefix_max[np.maximum(walked - 1, 0)] == distinct)
        held = walked == count
        prev = np.where(held, count - 1, walked - 1)
        nxt = np.where(held, -1, walked)
        open_lo = distinct + 1
        open_hi = np.append(distinct[1:] - 1, _FAR)
        point_visible = has_prev & ((frames[last_le] == distinct) | kf['enabled'][last_le])
        open_visible = has_prev & kf['enabled'][last_le] & (open_lo <= open_hi)

        def interleave(point, open_):
            both = np.empty(2 * len(point), dtype=np.result_type(point, open_))
            both[0::2], both[1::2] = point, open_
            return both

        self.lo = interleave(distinct, open_lo)
        self.hi = interleave(distinct, open_hi)
        self.visible = interleave(point_visible, open_visible)
        self.keyframe = interleave(exact, np.zeros_like(exact))
        self.source = interleave(np.where(exact, first_index, prev), prev)
        self.target = interleave(np.where(exact, -1, nxt), nxt)
        nonempty = self.lo <= self.hi
        following = np.arange(1, len(self.lo) + 1)
        following[:-1] += ~nonempty[1:]  # an empty open segment is skipped: the next point follows
        self.next_shown = np.append(self.visible[following[:-1]], True)
        src, tgt = self.source, np.maximum(self.target, 0)
        self.turning = bool(np.any(self.columns['rotation'] != 0))  # all zero: interpolation keeps 0
        if self.turning:
            self.turn = normalize_angle(kf['rotation'][tgt] - kf['rotation'][src])  # short way, per segment

    @property
    def rotated(self) -> bool:
        return bool(np.any(wrap_degrees(self.keyframes['rotation']) != 0))

    def next_visible(self, frame: int) -> int | None:
        """The first frame >= `frame` that shows the box, to skip invisible stretches."""
        candidates = np.flatnonzero(self.visible & (self.hi >= frame))
        return int(max(self.lo[candidates[0]], frame)) if len(candidates) else None

    def expand(self, start: int, stop: int) -> FrameBoxes:
        """Boxes drawn on frames start..stop (inclusive, 1-based)."""
        lo = np.maximum(self.lo, start)
        counts = np.where(self.visible, np.clip(np.minimum(self.hi, stop) - lo + 1, 0, None), 0)
        segment = np.repeat(np.arange(len(counts)), counts)
        offsets = np.arange(len(segment)) - np.repeat(np.cumsum(counts) - counts, counts)
        frame = lo[segment] + offsets
        kf = self.columns
        source, target = self.source[segment], self.target[segment]
        values = {name: kf[name][source] for name in GEOMETRY}
        moving = np.flatnonzero(target >= 0)
        if len(moving):
            a, b = source[moving], target[moving]
            r = (frame[moving] - kf['frame'][a]) / (kf['frame'][b] - kf['frame'][a])
            for name in ('x', 'y', 'width', 'height'):
                values[name][moving] = kf[name][a] + (kf[name][b] - kf[name][a]) * r
            if self.turning:
                values['rotation'][moving] = normalize_angle(kf['rotation'][a] + self.turn[segment[moving]] * r)
        continues = (frame < self.hi[segment]) | self.next_shown[segment]
        return FrameBoxes(frame, **values, keyframe=self.keyframe[segment], continues=continues)


def _bounds(frames_count: int, start: int, stop: int | None) -> tuple[int, int]:
    last = frames_count if stop is None else min(stop, frames_count)
    return max(int(start), 1), int(last)


def expand_sequence(sequence, frames_count: int, start: int = 1, stop: int | None = None) -> FrameBoxes:
    """Boxes the UI draws on frames start..min(stop, frames_count) of a stored (or normalised) sequence."""
    return ExpansionPlan(sequence).expand(*_bounds(frames_count, start, stop))


def iter_expanded(sequence, frames_count: int, chunk_frames: int = DEFAULT_CHUNK_FRAMES) -> Iterator[FrameBoxes]:
    """Non-empty chunks of at most `chunk_frames` boxes, so memory stays flat on very long videos.

    Accepts a sequence, an `ExpansionPlan` or precomputed `FrameBoxes`; invisible stretches are skipped.
    """
    source = sequence if isinstance(sequence, (ExpansionPlan, FrameBoxes)) else ExpansionPlan(sequence)
    frame = source.next_visible(1)
    while frame is not None and frame <= frames_count:
        last = min(frame + chunk_frames - 1, frames_count)
        yield source.expand(frame, last)
        frame = source.next_visible(last + 1)
