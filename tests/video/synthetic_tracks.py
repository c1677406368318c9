"""Ground-truth object tracks on a synthetic video and detector output made from them (no model).

Objects move piecewise linearly between waypoints (a turn at each waypoint), change size slowly, enter
and leave through the frame's edges; boxes are clipped to the frame and dropped where nothing is left.
Detections are the ground truth plus seeded Gaussian noise, with some frames dropped at random, on
every `stride`-th frame only. Shared by tests/video/test_track_keyframes.py, test_tracking.py and
benchmarks/video_preannotation.py.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ls_extensions.video.interpolation import expand_sequence
from ls_extensions.video.track_keyframes import box_iou, percent_boxes, track_region
from ls_extensions.video.tracking import FrameDetections, Track, clip_boxes

WIDTH, HEIGHT = 1280, 720


@dataclass(frozen=True)
class Truth:
    """One object: UI frames where it is (partly) inside the frame and its clipped pixel `xyxy` there."""

    track_id: int
    class_id: int
    frame: np.ndarray
    xyxy: np.ndarray


def moving_box(track_id, class_id, waypoints, size, frames_count) -> Truth:
    """A box whose top-left corner goes through `waypoints` [(frame, x, y), ...] linearly, `size` (w, h) or
    [(frame, w, h), ...]; it exists from the first waypoint's frame to the last one's."""
    way = np.asarray(waypoints, np.float64)
    frames = np.arange(int(way[0, 0]), int(min(way[-1, 0], frames_count)) + 1)
    x, y = np.interp(frames, way[:, 0], way[:, 1]), np.interp(frames, way[:, 0], way[:, 2])
    sizes = np.asarray(size, np.float64).reshape(-1, 3) if np.size(size) != 2 else None
    w = np.interp(frames, sizes[:, 0], sizes[:, 1]) if sizes is not None else np.full(len(frames), size[0])
    h = np.interp(frames, sizes[:, 0], sizes[:, 2]) if sizes is not None else np.full(len(frames), size[1])
    xyxy, keep = clip_boxes(np.column_stack([x, y, x + w, y + h]), WIDTH, HEIGHT)
    return Truth(track_id, class_id, frames[keep], xyxy[keep])


def crossing_scene(frames_count: int = 300) -> list[Truth]:
    """Five objects on a short video: straight, turning, entering, leaving, and two (same class) crossing."""
    n = frames_count
    return [
        moving_box(1, 0, [(1, 100, 100), (n, 900, 160)], [(1, 80, 60), (n, 120, 90)], n),  # straight, growing
        moving_box(2, 0, [(1, 1100, 500), (n // 2, 700, 500), (n, 700, 150)], (70, 70), n),  # a right-angle turn
        moving_box(3, 1, [(20, -150, 300), (n, 600, 320)], (100, 60), n),  # enters from the left edge
        moving_box(4, 1, [(1, 900, 40), (n // 2, 1400, 0)], (90, 50), n),  # leaves through the right edge
        moving_box(5, 2, [(1, 200, 400), (n, 1000, 420)], (80, 80), n),  # these two cross around n / 2
        moving_box(6, 2, [(1, 1000, 440), (n, 200, 400)], (80, 80), n),
    ]


def random_scene(frames_count: int, objects: int, seed: int = 0, turns: int = 6) -> list[Truth]:
    """`objects` boxes wandering the frame with `turns` random turns each, several alive at once."""
    rng = np.random.default_rng(seed)
    truths = []
    for number in range(objects):
        start = int(rng.integers(1, frames_count // 4))
        stop = int(rng.integers(3 * frames_count // 4, frames_count + 1))
        frames = np.linspace(start, stop, turns + 2).round()
        w, h = rng.uniform(50, 150), rng.uniform(40, 120)
        xs, ys = rng.uniform(0, WIDTH - w, len(frames)), rng.uniform(0, HEIGHT - h, len(frames))
        way = list(zip(frames.tolist(), xs.tolist(), ys.tolist(), strict=True))
        truths.append(moving_box(number + 1, number % 3, way, (w, h), frames_count))
    return truths


def observe(
    truth: Truth,
    rng: np.random.Generator,
    *,
    noise: float = 0.01,
    drop: float = 0.03,
    stride: int = 1,
    score=(0.7, 0.95),
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A detector's view of one object on frames 1, 1 + stride, ...: frames, pixel xyxy, scores. Each true box
    plus N(0, `noise` x its width) on x and N(0, `noise` x its height) on y, missing with probability `drop`."""
    seen = ((truth.frame - 1) % stride == 0) & (rng.random(len(truth.frame)) >= drop)
    size = np.tile(truth.xyxy[:, 2:] - truth.xyxy[:, :2], 2)
    noisy = truth.xyxy + rng.normal(0, 1, truth.xyxy.shape) * noise * size
    return truth.frame[seen], noisy[seen], rng.uniform(*score, len(truth.frame))[seen]


def detect(truths: list[Truth], *, seed: int = 0, **options) -> list[FrameDetections]:
    """Detections of every object (`observe`'s options) grouped by frame, as a detector gives them."""
    rng = np.random.default_rng(seed)
    by_frame: dict[int, list] = {}
    for truth in truths:
        frames, boxes, scores = observe(truth, rng, **options)
        for frame, box, s in zip(frames.tolist(), boxes, scores.tolist(), strict=True):
            by_frame.setdefault(frame, []).append((box, s, truth.class_id))
    return [
        FrameDetections(
            frame,
            np.array([row[0] for row in rows]).reshape(-1, 4),
            np.array([row[1] for row in rows]),
            np.array([row[2] for row in rows], np.int64),
        )
        for frame, rows in sorted(by_frame.items())
    ]


def mot_scores(truths: list[Truth], hypotheses: dict[int, dict[int, np.ndarray]], frames_count: int) -> dict:
    """motmetrics' MOTA, IDF1, identity switches and counts; `hypotheses`: {frame: {id: xyxy}}.

    motmetrics 1.4.0 calls `np.asfarray`, which NumPy 2 removed: NumPy 1's definition is put back
    for the call (the tests' `numpy_for_motmetrics` fixture does the same) and taken away after.
    """
    import motmetrics as mm

    truth_by_frame: dict[int, dict[int, np.ndarray]] = {}
    for truth in truths:
        for frame, box in zip(truth.frame.tolist(), truth.xyxy, strict=True):
            truth_by_frame.setdefault(frame, {})[truth.track_id] = box
    added = not hasattr(np, 'asfarray')
    if added:
        np.asfarray = lambda a, dtype=float: np.asarray(a, dtype)
    try:
        accumulator = mm.MOTAccumulator(auto_id=False)
        for frame in range(1, frames_count + 1):
            gt, hyp = truth_by_frame.get(frame, {}), hypotheses.get(frame, {})

            def xywh(boxes):
                xyxy = np.array(list(boxes.values()), np.float64).reshape(-1, 4)
                return np.column_stack([xyxy[:, :2], xyxy[:, 2:] - xyxy[:, :2]])

            distances = mm.distances.iou_matrix(xywh(gt), xywh(hyp), max_iou=0.5)
            accumulator.update(list(gt), list(hyp), distances, frameid=frame)
        names = ['mota', 'idf1', 'num_switches', 'num_objects', 'num_misses', 'num_false_positives']
        row = mm.metrics.create().compute(accumulator, metrics=names).iloc[0]
    finally:
        if added:
            del np.asfarray
    return {name: float(row[name]) for name in names}


def linked_boxes(tracks: list[Track]) -> dict[int, dict[int, np.ndarray]]:
    """The tracker's own boxes, {frame: {track id: xyxy}}."""
    found: dict[int, dict[int, np.ndarray]] = {}
    for track in tracks:
        for frame, box in zip(track.frame.tolist(), track.xyxy, strict=True):
            found.setdefault(frame, {})[track.track_id] = box
    return found


def track_regions(tracks: list[Track], frames_count: int, *, fps: float, max_gap: int) -> dict[int, dict | None]:
    """Each track's `videorectangle` result (label: its class id, region id: its track id), None if no box is left."""
    return {
        t.track_id: track_region(
            t.frame,
            t.xyxy,
            WIDTH,
            HEIGHT,
            frames_count,
            fps=fps,
            label=str(t.class_id),
            region_id=str(t.track_id),
            from_name='box',
            to_name='video',
            scores=t.score,
            max_gap=max_gap,
        )
        for t in tracks
    }


def drawn_boxes(sequence: list[dict], frames_count: int) -> dict[int, np.ndarray]:
    """{frame: (x, y, width, height) percent} of what the UI draws of a keyframe sequence, by our engine."""
    if not sequence:
        return {}
    boxes = expand_sequence(sequence, frames_count)
    values = np.column_stack([boxes.x, boxes.y, boxes.width, boxes.height])
    return dict(zip(boxes.frame.tolist(), values, strict=True))


def assert_drawn(frames, xyxy, sequence, frames_count: int, max_gap: int, min_iou: float = 0.9) -> np.ndarray:
    """Every kept tracker box is drawn with IoU >= min_iou; nothing is drawn before the first box, in a
    gap longer than max_gap, or after the last box unless it is within max_gap of the video's end."""
    boxes, keep = percent_boxes(xyxy, WIDTH, HEIGHT)
    frames, boxes = np.asarray(frames)[keep], boxes[keep]
    drawn = drawn_boxes(sequence, frames_count)
    assert set(frames.tolist()) <= set(drawn)
    ious = box_iou(np.array([drawn[f] for f in frames.tolist()]), boxes)
    assert ious.min() >= min_iou
    allowed = set(frames.tolist())
    for a, b in zip(frames[:-1].tolist(), frames[1:].tolist(), strict=True):
        if b - a - 1 <= max_gap:
            allowed |= set(range(a, b + 1))
    if frames_count - frames[-1] <= max_gap:
        allowed |= set(range(int(frames[-1]), frames_count + 1))
    assert set(drawn) <= allowed
    return ious


def shown_boxes(
    regions: dict[int, dict], frames_count: int, width: float = WIDTH, height: float = HEIGHT
) -> dict[int, dict[int, np.ndarray]]:
    """What the UI draws of `regions` {track id: videorectangle result}, by our engine, {frame: {id: xyxy}}."""
    found: dict[int, dict[int, np.ndarray]] = {}
    for track_id, region in regions.items():
        if region is None:
            continue
        boxes = expand_sequence(region['value']['sequence'], frames_count)
        x, y = boxes.x * width / 100, boxes.y * height / 100
        w, h = boxes.width * width / 100, boxes.height * height / 100
        for frame, box in zip(boxes.frame.tolist(), np.column_stack([x, y, x + w, y + h]), strict=True):
            found.setdefault(frame, {})[track_id] = box
    return found
