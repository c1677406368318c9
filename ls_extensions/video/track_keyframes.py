"""One tracked object as a Label Studio `videorectangle` region with few, editable keyframes.

The UI draws a box between two keyframes by linear interpolation on frame numbers and holds an enabled
last keyframe to the end (docs/video-interpolation.md; our engine of that rule is `interpolation.py`).
`keyframes.greedy_keyframes` keeps the fewest keyframes such that, on every frame where the tracker has
a box, the UI's box has IoU >= `min_iou` with it (error 1 - IoU, tolerance 1 - `min_iou`), checked on the
percent values exactly as written. Where the tracker has no box for more than `max_gap` frames, the
span before the gap ends on a keyframe with `enabled: false`, which the UI draws on its own frame only,
so nothing is drawn until the next span's first keyframe; the track's last keyframe is disabled too,
unless the track lasts to within `max_gap` frames of the video's end (then an enabled keyframe is held).

Boxes are clipped to the frame; one with no area left (entirely outside the frame) or not finite is
dropped, as if the tracker had not seen the object there. Pure NumPy, no Django.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .keyframes import greedy_keyframes
from .tracking import clip_boxes

DEFAULT_MIN_IOU = 0.9
DEFAULT_MAX_GAP = 8  # frames without a box that are still bridged by interpolation
DEFAULT_SMOOTH = 7  # detections a track's boxes are smoothed over before reduction (smooth_track)


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of (n, 4) `x, y, width, height` boxes row by row (0 where both are empty)."""
    left, top = np.maximum(a[:, 0], b[:, 0]), np.maximum(a[:, 1], b[:, 1])
    right = np.minimum(a[:, 0] + a[:, 2], b[:, 0] + b[:, 2])
    bottom = np.minimum(a[:, 1] + a[:, 3], b[:, 1] + b[:, 3])
    inter = np.clip(right - left, 0, None) * np.clip(bottom - top, 0, None)
    union = a[:, 2] * a[:, 3] + b[:, 2] * b[:, 3] - inter
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)


@dataclass
class UiInterpolation:
    """The UI's box between keyframes `a` and `b` (`prev + (next - prev) * r` on frame numbers, as in
    `interpolation.py`), or `a` held, against the tracker's box: error = 1 - IoU."""

    frames: np.ndarray
    boxes: np.ndarray  # (n, 4) x, y, width, height (percent)

    def error(self, a, b, at):
        if b is None:
            shown = self.boxes[a]
        else:
            r = ((self.frames[at] - self.frames[a]) / (self.frames[b] - self.frames[a]))[:, None]
            shown = self.boxes[a] + (self.boxes[b] - self.boxes[a]) * r
        return 1.0 - box_iou(shown, self.boxes[at])


def percent_boxes(xyxy, width: float, height: float) -> tuple[np.ndarray, np.ndarray]:
    """Pixel `xyxy` boxes as Label Studio percents `x, y, width, height`, clipped; and which are kept."""
    clipped, keep = clip_boxes(xyxy, width, height)
    scale = np.array([100 / width, 100 / height, 100 / width, 100 / height])
    xywh = np.column_stack([clipped[:, :2], clipped[:, 2:] - clipped[:, :2]]) * scale
    return xywh, keep


def _spans(frames: np.ndarray, max_gap: int) -> list[slice]:
    ends = np.flatnonzero(np.diff(frames) > max_gap + 1).tolist()
    starts = [0, *(end + 1 for end in ends)]
    return [slice(s, e) for s, e in zip(starts, [*(end + 1 for end in ends), len(frames)], strict=True)]


def smooth_track(frames, xyxy, window: int = DEFAULT_SMOOTH) -> np.ndarray:
    """The track's pixel boxes with a detector's frame-to-frame jitter taken out (scipy's Savitzky-Golay filter:
    quadratic over `window` consecutive detections), along each run of evenly spaced detection frames.

    Motion at constant speed or acceleration passes unchanged, the jitter around it does not, so fewer
    keyframes hold the track within tolerance (benchmarks/video_training.py). Runs shorter than `window`,
    and `window` below 3, are left as they are; a gap is never smoothed across.
    """
    frames = np.asarray(frames, np.int64).reshape(-1)
    boxes = np.asarray(xyxy, np.float64).reshape(-1, 4)
    window = window + 1 - window % 2  # odd: centred on its frame
    if window < 3 or len(frames) < window:
        return boxes
    from scipy.signal import savgol_filter

    steps = np.diff(frames)
    breaks = np.flatnonzero(steps != steps.min()).tolist()
    smoothed = boxes.copy()
    for start, stop in zip([0, *(b + 1 for b in breaks)], [*(b + 1 for b in breaks), len(frames)], strict=True):
        if stop - start >= window and np.isfinite(boxes[start:stop]).all():
            smoothed[start:stop] = savgol_filter(boxes[start:stop], window, 2, axis=0, mode='interp')
    return smoothed


def reduce_track(
    frames,
    xyxy,
    width: float,
    height: float,
    frames_count: int,
    *,
    min_iou: float = DEFAULT_MIN_IOU,
    max_gap: int = DEFAULT_MAX_GAP,
) -> list[dict]:
    """Keyframes `{frame, enabled, rotation, x, y, width, height}` (percent, ascending) of one track.

    `frames`: ascending distinct UI frames in 1..frames_count where the tracker has a box; `xyxy`: its
    pixel boxes there. Empty list for a track with no box left. Raises ValueError for frames that are
    unsorted, repeated or outside the video, or a box count that does not match.
    """
    if not (width > 0 and height > 0):
        raise ValueError(f'the frame size must be positive, got {width}x{height}')
    frames = np.asarray(frames, np.int64).reshape(-1)
    boxes, keep = percent_boxes(xyxy, width, height)
    if len(boxes) != len(frames):
        raise ValueError(f'{len(frames)} frames but {len(boxes)} boxes')
    if len(frames) and (frames[0] < 1 or frames[-1] > frames_count or np.any(np.diff(frames) <= 0)):
        raise ValueError(f'frames must be ascending, distinct and within 1..{frames_count}')
    if not 0 < min_iou <= 1 or max_gap < 0:
        raise ValueError(f'min_iou must be in (0, 1] and max_gap >= 0, got {min_iou} and {max_gap}')
    frames, boxes = frames[keep], boxes[keep]
    sequence = []
    spans = _spans(frames, max_gap)
    for number, span in enumerate(spans if len(frames) else []):
        f, b = frames[span], boxes[span]
        held = number == len(spans) - 1 and frames_count - f[-1] <= max_gap
        keys = greedy_keyframes(len(f), UiInterpolation(f, b), 1.0 - min_iou, 'hold' if held else 'keyframe')
        for index in keys.tolist():
            x, y, w, h = b[index].tolist()
            sequence.append(
                {'frame': int(f[index]), 'enabled': True, 'rotation': 0, 'x': x, 'y': y, 'width': w, 'height': h}
            )
        if not held:
            sequence[-1]['enabled'] = False  # the span ends here: the UI draws nothing until the next one
    return sequence


def track_region(
    frames,
    xyxy,
    width: float,
    height: float,
    frames_count: int,
    *,
    fps: float,
    label: str,
    region_id: str,
    from_name: str,
    to_name: str,
    scores=None,
    min_iou: float = DEFAULT_MIN_IOU,
    max_gap: int = DEFAULT_MAX_GAP,
) -> dict | None:
    """The Label Studio `videorectangle` result of one track, or None when no box of it is left.

    `time` of a keyframe is `frame / fps`, as the UI writes it on save (`VideoRegion.serialize`);
    `duration` is `frames_count / fps`; `score` is the mean of the kept boxes' detection scores.
    """
    sequence = reduce_track(frames, xyxy, width, height, frames_count, min_iou=min_iou, max_gap=max_gap)
    if not sequence:
        return None
    for keyframe in sequence:
        keyframe['time'] = keyframe['frame'] / fps
    region = {
        'type': 'videorectangle',
        'from_name': from_name,
        'to_name': to_name,
        'id': region_id,
        'value': {'sequence': sequence, 'labels': [label], 'framesCount': frames_count, 'duration': frames_count / fps},
    }
    if scores is not None:
        _, keep = clip_boxes(xyxy, width, height)
        kept = np.asarray(scores, np.float64).reshape(-1)[keep]
        if len(kept):
            region['score'] = float(np.mean(kept))
    return region
