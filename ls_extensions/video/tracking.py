"""Per-frame detections linked into tracks by ByteTrack, for pre-annotating videos as Label Studio tracks.

Pure NumPy around `trackers.ByteTrackTracker` (Roboflow's `trackers` package, which speaks
`supervision.Detections`; supervision 0.31 itself no longer ships ByteTrack): no association is written
here. Frames are Label Studio UI frames (1-based: UI frame f is the video's decoded frame f - 1), boxes are
pixel `xyxy`. With `stride` k the detector ran on frames `first_frame`, `first_frame + k`, ... only: the
tracker steps once per such frame, an empty step where the detector found nothing, and its lost-track
buffer is scaled to the detector's rate (`fps / k`).

Boxes are clipped to the frame; a box with no area left (entirely outside, or degenerate) and a box or
score that is not finite is dropped before tracking. ByteTrack reports a track from the step that
confirms it (`confirm_frames` consecutive matches); the box of the step before is put back, so a track
starts where the object was first detected. The keyframes of a track are made by `track_keyframes.py`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from .geometry import iou_xyxy


@dataclass(frozen=True)
class FrameDetections:
    """A detector's boxes on one UI frame: `xyxy` (n, 4) pixels, `scores` (n,), `class_ids` (n,)."""

    frame: int
    xyxy: np.ndarray
    scores: np.ndarray
    class_ids: np.ndarray


@dataclass(frozen=True)
class Track:
    """One linked object: ascending UI `frame`s it was seen on, its detected `xyxy` and `score` there."""

    track_id: int
    class_id: int
    frame: np.ndarray
    xyxy: np.ndarray
    score: np.ndarray

    def __len__(self) -> int:
        return len(self.frame)


def clip_boxes(xyxy, width: float, height: float) -> tuple[np.ndarray, np.ndarray]:
    """Boxes clipped to the frame `[0, width] x [0, height]`, and which of them keep an area (and are finite)."""
    boxes = np.asarray(xyxy, np.float64).reshape(-1, 4)
    finite = np.isfinite(boxes).all(axis=1)
    clipped = np.where(finite[:, None], boxes, 0.0)
    clipped = np.clip(clipped, 0.0, [width, height, width, height])
    keep = finite & (clipped[:, 2] > clipped[:, 0]) & (clipped[:, 3] > clipped[:, 1])
    return clipped, keep


def _clean(detections: FrameDetections, width: float, height: float):
    xyxy, keep = clip_boxes(detections.xyxy, width, height)
    scores = np.asarray(detections.scores, np.float64).reshape(-1)
    class_ids = np.asarray(detections.class_ids).reshape(-1).astype(np.int64)
    if not len(xyxy) == len(scores) == len(class_ids):
        raise ValueError(
            f'frame {detections.frame}: {len(xyxy)} boxes, {len(scores)} scores and {len(class_ids)} class ids'
        )
    keep &= np.isfinite(scores)
    return xyxy[keep], scores[keep], class_ids[keep]


def _steps(frames: Iterable[FrameDetections], frames_count: int, stride: int, first_frame: int):
    if stride < 1 or first_frame < 1:
        raise ValueError(f'stride and first_frame must be >= 1, got {stride} and {first_frame}')
    by_frame: dict[int, FrameDetections] = {}
    for item in frames:
        frame = int(item.frame)
        if not 1 <= frame <= frames_count:
            raise ValueError(f'frame {frame} is outside the video (frames 1..{frames_count})')
        if (frame - first_frame) % stride:
            raise ValueError(f'frame {frame} is not a detection frame ({first_frame} + k * {stride})')
        if frame in by_frame:
            raise ValueError(f'frame {frame} is given twice')
        by_frame[frame] = item
    return range(first_frame, frames_count + 1, stride), by_frame


def link_tracks(
    frames: Iterable[FrameDetections],
    frames_count: int,
    width: float,
    height: float,
    *,
    stride: int = 1,
    first_frame: int = 1,
    fps: float = 24.0,
    per_class: bool = True,
    lost_seconds: float = 1.0,
    activation_threshold: float = 0.5,
    high_threshold: float = 0.6,
    min_iou: float = 0.1,
    confirm_frames: int = 2,
) -> list[Track]:
    """Tracks (ordered by first frame, then id; ids from 1) of the detections on a video's detection frames.

    `per_class`: one tracker per class id, so a track never changes label (ByteTrack itself ignores
    classes); otherwise a track's class is the most frequent among its detections. `lost_seconds`: how
    long a lost track may come back. The other options are ByteTrack's own thresholds.
    """
    from supervision import Detections

    try:
        from trackers import ByteTrackTracker  # deferred: only linking needs it
    except ImportError as error:
        raise ImportError(
            "linking detections into tracks needs Roboflow's `trackers` package (ByteTrack), "
            'e.g. `pip install --no-deps trackers==2.6.1` beside the headless OpenCV'
        ) from error

    steps, by_frame = _steps(frames, frames_count, stride, first_frame)
    rate = fps / stride

    def tracker():
        return ByteTrackTracker(
            lost_track_buffer=max(int(round(lost_seconds * 30)), 0),
            frame_rate=rate,
            track_activation_threshold=activation_threshold,
            minimum_consecutive_frames=confirm_frames,
            minimum_iou_threshold=min_iou,
            high_conf_det_threshold=high_threshold,
        )

    by_class: dict[int, object] = {}  # one tracker per class id, or one for all (key 0)
    seen: dict[tuple[int, int], list[tuple[int, np.ndarray, float, int]]] = {}
    for frame in steps:
        item = by_frame.get(frame)
        xyxy, scores, class_ids = (
            _clean(item, width, height) if item is not None else (np.empty((0, 4)), np.empty(0), np.empty(0, np.int64))
        )
        keys = class_ids if per_class else np.zeros(len(class_ids), np.int64)
        # every tracker with tracks steps on every detection frame, so its motion model keeps time
        for key in sorted(set(np.unique(keys).tolist()) | set(by_class)):
            mask = keys == key
            if key not in by_class:
                by_class[key] = tracker()
            step = by_class[key]
            if not mask.any() and not step.tracks:
                continue
            linked = step.update(Detections(xyxy=xyxy[mask], confidence=scores[mask], class_id=class_ids[mask]))
            for box, score, class_id, tracker_id in zip(
                linked.xyxy, linked.confidence, linked.class_id, linked.tracker_id, strict=True
            ):
                if tracker_id >= 0:  # -1: not (yet) part of a confirmed track
                    seen.setdefault((key, int(tracker_id)), []).append((frame, box, float(score), int(class_id)))
    tracks = []
    for rows in sorted(seen.values(), key=lambda rows: rows[0][0]):
        rows.sort(key=lambda row: row[0])
        class_id = Counter(row[3] for row in rows).most_common(1)[0][0]
        tracks.append(
            Track(
                track_id=len(tracks) + 1,
                class_id=class_id,
                frame=np.array([row[0] for row in rows], np.int64),
                xyxy=np.array([row[1] for row in rows], np.float64).reshape(-1, 4),
                score=np.array([row[2] for row in rows], np.float64),
            )
        )
    return _with_first_frames(tracks, by_frame, stride, width, height, per_class)


def _with_first_frames(tracks, by_frame, stride, width, height, per_class, min_iou=0.3):
    """Tracks with the box ByteTrack saw before confirming them put back: a track starts on its confirming
    step, so each would lose its first detection frame. That box is, on the detection frame just before a
    track's first, the unclaimed box (of the track's class) overlapping its first box most (IoU >= `min_iou`)."""
    claimed: dict[int, set] = {}
    for track in tracks:
        for frame, box in zip(track.frame.tolist(), track.xyxy.tolist(), strict=True):
            claimed.setdefault(frame, set()).add(tuple(box))
    result = []
    for track in tracks:
        item = by_frame.get(int(track.frame[0]) - stride)
        if item is not None:
            boxes, scores, class_ids = _clean(item, width, height)
            free = np.array([tuple(box) not in claimed.get(item.frame, ()) for box in boxes.tolist()], bool)
            if per_class:
                free &= class_ids == track.class_id
            ious = np.where(free, iou_xyxy(boxes, np.repeat(track.xyxy[:1], len(boxes), 0)), 0.0)
            if len(ious) and ious.max() >= min_iou:
                best = int(ious.argmax())
                claimed.setdefault(item.frame, set()).add(tuple(boxes[best].tolist()))
                track = Track(
                    track.track_id,
                    track.class_id,
                    np.concatenate([[item.frame], track.frame]),
                    np.vstack([boxes[best : best + 1], track.xyxy]),
                    np.concatenate([[float(scores[best])], track.score]),
                )
        result.append(track)
    return result
