"""Which frames of an annotated video are worth training on: neighbours are near-duplicates.

At 25 fps a box moves a few pixels per frame, so training on every frame repeats the same picture
dozens of times and floods the set with one video. A frame is kept when the scene changed since the
last kept frame: a track appeared or left, or some box moved or resized so that its IoU with its box
on the last kept frame fell below ``motion_iou``; never closer than ``stride`` frames to the last kept
one, and at least every ``max_gap`` frames (slow drift and empty stretches, which are labelled
negatives, still get sampled). Defaults from ``benchmarks/video_training.py`` (README, "Training on
videos"). Pure NumPy, no Django.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from .geometry import iou_xyxy

DEFAULT_STRIDE = 5
DEFAULT_MOTION_IOU = 0.7
DEFAULT_MAX_GAP = 50


@dataclass(frozen=True)
class FrameSampling:
    """The sampling rule: at least `stride` frames apart, a new frame once some box's IoU with its last
    kept box is below `motion_iou` or the tracks changed, at least every `max_gap` frames."""

    stride: int = DEFAULT_STRIDE
    motion_iou: float = DEFAULT_MOTION_IOU
    max_gap: int = DEFAULT_MAX_GAP

    def __post_init__(self):
        if not 1 <= self.stride <= self.max_gap:
            raise ValueError(f'the frame stride must be within 1..max_gap ({self.max_gap}), not {self.stride}')
        if not 0.0 <= self.motion_iou <= 1.0:
            raise ValueError(f'the motion IoU must be within 0..1, not {self.motion_iou}')


def _changed(kept: Mapping, now: Mapping, motion_iou: float) -> bool:
    if kept.keys() != now.keys():
        return True
    if not now:
        return False
    ids = list(now)
    before = np.array([kept[i] for i in ids], float)
    after = np.array([now[i] for i in ids], float)
    return bool(np.any(iou_xyxy(before, after) < motion_iou))


def choose_frames(frames_count: int, boxes: Mapping[int, Mapping], rule: FrameSampling = FrameSampling()) -> list[int]:
    """The 1-based frames to train on. `boxes[frame]` maps a track id to its xyxy box on that frame
    (frames without boxes may be absent); frame 1 is always kept."""
    if frames_count < 1:
        return []
    empty: dict = {}
    chosen, last = [1], 1
    kept = boxes.get(1, empty)
    for frame in range(1 + rule.stride, frames_count + 1):
        if frame - last < rule.stride:
            continue
        now = boxes.get(frame, empty)
        if frame - last >= rule.max_gap or _changed(kept, now, rule.motion_iou):
            chosen.append(frame)
            last, kept = frame, now
    return chosen
