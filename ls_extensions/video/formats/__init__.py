"""Per-frame video export formats: build a `VideoExport`, then `get_exporter(name).write(binary_file, export)`.

Importing the package registers every writer; the writer returns the `ExportSummary`.
"""

from . import coco_video, csv_frames, cvat_video, json_frames, mot, yolo  # noqa: F401  (register the writers)
from .model import ExportSummary, MissingVideoInfo, SkippedTask, TaskSummary, Track, VideoExport, VideoTrackSet
from .registry import Exporter, exporter, get_exporter, list_exporters

__all__ = [
    'ExportSummary',
    'Exporter',
    'MissingVideoInfo',
    'SkippedTask',
    'TaskSummary',
    'Track',
    'VideoExport',
    'VideoTrackSet',
    'exporter',
    'get_exporter',
    'list_exporters',
]
