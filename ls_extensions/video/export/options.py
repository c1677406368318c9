"""What the caller chose for one export (`ExportOptions`), and what the chosen format needs because of it."""

from __future__ import annotations

from dataclasses import dataclass

from ..formats import Exporter
from .catalogue import OPTIONAL_IMAGES

ANNOTATIONS, PREDICTIONS = 'annotations', 'predictions'
SOURCES = (ANNOTATIONS, PREDICTIONS)  # the `source` parameter's values; also the task JSON keys that hold them


@dataclass
class ExportOptions:
    """What the caller chose; `labels` None = every label, `task_ids` None = every task.

    `source` says whose tracks are exported: the annotations (ground truth) or the predictions of one
    `model_version` (resolved before any task is read, `predictions.with_model_version`), so a model can be
    scored against the ground truth with the same writers and the same frame rule.
    """

    exporter: Exporter
    task_ids: list[int] | None = None
    labels: list[str] | None = None
    frame_stride: int = 1
    width: int | None = None  # pixel size for videos that cannot be read
    height: int | None = None
    only_annotated: bool = True  # leave out tasks without annotations (the annotations source)
    images: bool = False  # frame images for formats where they are optional (MOT)
    mot_origin: int = 1  # MOT pixel positions: 1-based (MOT Challenge) or 0-based (datumaro/CVAT)
    source: str = ANNOTATIONS  # ANNOTATIONS or PREDICTIONS
    model_version: str | None = None  # the predictions' version (PREDICTIONS; None until resolved)
    only_predicted: bool = False  # PREDICTIONS: a task without a prediction of that version is skipped, listed


def wants_images(options: ExportOptions) -> bool:
    return options.exporter.needs_images or (options.images and options.exporter.name in OPTIONAL_IMAGES)


def needs_task_json(exporter: Exporter) -> bool:
    """The JSON format rewrites Label Studio's task JSON, so it needs the full serialized tasks."""
    return exporter.name == 'JSON'
