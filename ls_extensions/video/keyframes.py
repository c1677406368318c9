"""Fewest keyframes from which a tool's own interpolation gives back every per-frame box (within a tolerance).

A tool that re-interpolates between keyframes (CVAT between `keyframe="1"` boxes, Label Studio between
`sequence` items) shows exactly the per-frame boxes only where they follow its rule; elsewhere more
keyframes are needed. `greedy_keyframes` walks a run of consecutive boxes and, from each keyframe, takes
the farthest box whose interpolation still reproduces every box in between; the caller's `Interpolation`
says how far off a box would be. The search gallops (2, 4, 8, ... boxes ahead, then bisects), so a long
straight run costs a few vectorised checks, and a run where every box is needed costs one check per box.

Pure NumPy; the tool's rule lives with its format (e.g. `formats/cvat_video.py`).
"""

from __future__ import annotations

from typing import Literal, Protocol

import numpy as np

Tail = Literal['hold', 'keyframe', 'open']


class Interpolation(Protocol):
    def error(self, a: np.ndarray, b: np.ndarray | None, at: np.ndarray) -> np.ndarray:
        """How far (pixels) the box at each index `at` is from the tool's interpolation between keyframes
        `a` and `b` (same length as `at`); `b` None: keyframe `a` held (after a track's last keyframe)."""


def greedy_keyframes(count: int, rule: Interpolation, tolerance: float = 0.5, tail: Tail = 'keyframe') -> np.ndarray:
    """Indices (ascending, from 0) of the boxes to mark as keyframes in a run of `count` boxes.

    `tail` says what the tool does after the run's last keyframe: 'hold' (it keeps that box to the end,
    so no keyframe is needed where holding is right), 'keyframe' (the last box must be one, e.g. before
    an `outside` marker) or 'open' (more boxes follow later: the run's last stretch is left undecided and
    not returned, the caller resumes from the last index returned).
    """
    if count <= 0:
        return np.empty(0, np.int64)
    index = np.arange(count)
    # next_fits[i]: interpolating from i to i + 2 reproduces i + 1, so the common case needs no search
    next_fits = rule.error(index[:-2], index[2:], index[1:-1]) <= tolerance if count > 2 else np.zeros(0, bool)

    def fits(a: int, b: int | None) -> bool:
        stop = count if b is None else b
        if stop - a <= 1:
            return True
        at = index[a + 1 : stop]
        return bool(
            np.all(rule.error(np.full(len(at), a), None if b is None else np.full(len(at), b), at) <= tolerance)
        )

    chosen = [0]
    a = 0
    while a < count - 1:
        if (
            tail == 'hold'
            and rule.error(index[a : a + 1], None, index[a + 1 : a + 2])[0] <= tolerance
            and fits(a, None)
        ):
            break  # the cheap look at the next box first: a jittery run would otherwise check its whole rest per box
        if a + 2 >= count or not next_fits[a]:
            b = a + 1
        else:
            good, bad, step = a + 2, None, 4
            while good < count - 1:
                probe = min(a + step, count - 1)
                if fits(a, probe):
                    good = probe
                    step *= 2
                else:
                    bad = probe
                    break
            while bad is not None and bad - good > 1:
                middle = (good + bad) // 2
                good, bad = (middle, bad) if fits(a, middle) else (good, middle)
            b = good
        if tail == 'open' and b == count - 1:
            break  # the run may go on: what follows decides where the next keyframe is
        chosen.append(b)
        a = b
    return np.array(chosen, np.int64)
