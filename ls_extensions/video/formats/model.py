"""Plain data that the Django layer builds for the format writers, and the summary they hand back.

Writers never touch the database or the video: everything they need is here, per task, and the
heavy part (the per-frame boxes) is expanded lazily from the keyframes while writing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Literal

from ..interpolation import DEFAULT_CHUNK_FRAMES, ExpansionPlan, FrameBoxes

FrameImages = Callable[[Sequence[int]], Iterable[tuple[int, bytes]]]


class MissingVideoInfo(ValueError):
    """A pixel format met a task whose video size is unknown (it is not stored in annotations)."""

    def __init__(self, task_id: int, video: str):
        super().__init__(
            f'task {task_id}: the pixel size of video {video!r} is unknown; it could not be read from the video, '
            'pass width and height for this task or choose a format in percents (JSON, CSV)'
        )
        self.task_id = task_id


@dataclass
class Track:
    """One `videorectangle` result: give its stored `sequence`, or already expanded `boxes`.

    `track_id` is 1-based and unique within its task; `label_id` indexes `VideoExport.labels`;
    `annotation_id`/`result_id` locate the result in the task JSON for the JSON format (in `annotations`,
    or in `predictions` when `VideoExport.source` is predictions: then `annotation_id` is the prediction's
    id). `score` is a predicted track's confidence (None for ground truth), for formats with a column for it.
    """

    track_id: int
    label: str
    label_id: int
    sequence: list[dict] | None = None
    boxes: FrameBoxes | Iterable[FrameBoxes] | None = None
    result_id: str | None = None
    annotation_id: int | None = None
    score: float | None = None

    def __post_init__(self):
        if (self.sequence is None) == (self.boxes is None):
            raise ValueError(f'track {self.track_id}: give exactly one of sequence and boxes')

    def source(self) -> ExpansionPlan | FrameBoxes:
        """What the writers expand windows from; raises `MalformedSequence` for a bad sequence."""
        if self.sequence is not None:
            return ExpansionPlan(self.sequence)
        return self.boxes if isinstance(self.boxes, FrameBoxes) else FrameBoxes.concat(self.boxes)


@dataclass
class VideoTrackSet:
    """The tracks of one task's video, with what is known about the video itself.

    `frame_count` is the number of frames to export: the video's real count when it could be read
    (`frame_count_source='video'`), else the annotation's `framesCount`. `width`/`height` are pixels
    (None when unknown). `task` is the Label Studio task JSON (for the JSON format; a minimal one is
    made when absent). `frame_images(ui_frames)` yields `(ui_frame, jpeg_bytes)` for image formats.
    """

    task_id: int
    video: str
    frame_count: int
    frame_count_source: Literal['video', 'framesCount']
    tracks: list[Track]
    width: int | None = None
    height: int | None = None
    fps: float | None = None
    task: dict | None = None
    frame_images: FrameImages | None = None
    warnings: list[str] = field(default_factory=list)

    @property
    def has_size(self) -> bool:
        return bool(self.width and self.height)


@dataclass(frozen=True)
class SkippedTask:
    """A task left out of the export and why (e.g. its video URL is malformed); listed in the summary."""

    task_id: int
    video: str
    reason: str


@dataclass
class VideoExport:
    """An export: the class names (index = `Track.label_id`) and the tasks, in output order.

    `track_sets` is read once, up front (keyframes are small; the per-frame boxes are made while writing).
    `frame_stride` > 1 exports only frames 1, 1 + stride, 1 + 2 * stride, ... (frame numbers are kept).
    """

    labels: list[str]
    track_sets: Iterable[VideoTrackSet]
    chunk_frames: int = DEFAULT_CHUNK_FRAMES
    frame_stride: int = 1
    skipped: list[SkippedTask] = field(default_factory=list)
    mot_origin: int = 1  # MOT's first pixel: 1 (MOT Challenge, motmetrics) or 0 (datumaro, CVAT's MOT import)
    source: str = 'annotations'  # whose tracks: 'annotations' (ground truth) or 'predictions' (a model's output)
    model_version: str | None = None  # the predictions' model version

    @property
    def predicted(self) -> bool:
        """Tracks from a model: writers lay them out as tracker output (MOT) and add their scores."""
        return self.source == 'predictions'

    def __post_init__(self):
        if not isinstance(self.frame_stride, int) or self.frame_stride < 1:
            raise ValueError(f'frame_stride must be a whole number from 1, got {self.frame_stride!r}')
        if self.mot_origin not in (0, 1):
            raise ValueError(f'mot_origin must be 0 or 1, got {self.mot_origin!r}')
        if self.source not in ('annotations', 'predictions'):
            raise ValueError(f"source must be 'annotations' or 'predictions', got {self.source!r}")


@dataclass
class TaskSummary:
    task_id: int
    video: str
    frame_count: int
    frame_count_source: str
    tracks: int = 0
    boxes: int = 0  # shown by the UI on the exported frames
    boxes_clipped: int = 0  # written cut to the frame (formats that cannot leave it: YOLO, YOLO-OBB)
    boxes_dropped: int = 0  # not written: nothing of the box is inside the frame (YOLO, YOLO-OBB)
    warnings: list[str] = field(default_factory=list)


@dataclass
class ExportSummary:
    """What was written, and what was skipped and why; zips carry it as `summary.json`."""

    format: str
    tasks: list[TaskSummary] = field(default_factory=list)
    frame_stride: int = 1
    skipped: list[SkippedTask] = field(default_factory=list)
    model_version: str | None = None  # set for a predictions export: summary.json says whose boxes they are

    @property
    def boxes(self) -> int:
        return sum(task.boxes for task in self.tasks)

    @property
    def boxes_clipped(self) -> int:
        return sum(task.boxes_clipped for task in self.tasks)

    @property
    def boxes_dropped(self) -> int:
        return sum(task.boxes_dropped for task in self.tasks)

    @property
    def warnings(self) -> list[str]:
        written = [f'task {task.task_id}: {message}' for task in self.tasks for message in task.warnings]
        return written + [f'task {task.task_id} skipped: {task.reason}' for task in self.skipped]

    def to_dict(self) -> dict:
        stride = {'frame_stride': self.frame_stride} if self.frame_stride != 1 else {}
        skipped = {'skipped': [asdict(task) for task in self.skipped]} if self.skipped else {}
        tasks = [asdict(task) for task in self.tasks]
        counts = {'boxes': self.boxes, 'boxes_clipped': self.boxes_clipped, 'boxes_dropped': self.boxes_dropped}
        source = {} if self.model_version is None else {'source': 'predictions', 'model_version': self.model_version}
        return {'format': self.format, **source, **stride, **counts, 'tasks': tasks, **skipped}
