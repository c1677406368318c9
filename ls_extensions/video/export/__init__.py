"""Django side of the per-frame video export: Label Studio tasks -> `VideoExport`, streamed through a writer.

The engine (`interpolation.py`, `formats/`) takes plain data; this package gathers it, one job a module:
- `errors.py`: the errors a request can meet, each with its HTTP status;
- `catalogue.py`: the formats we offer and their names in Label Studio's Export dialog (`VIDEO_MOT`, ...);
- `config.py`: the project's video tracking setup from its labeling config (`video_tracking_config`),
  and the one reader of `<Video frameRate>` (the importer's too);
- `options.py`: what the caller chose (`ExportOptions`);
- `project_tasks.py`: task dicts from the database (`iter_project_tasks`), in the shape of Label Studio's
  export (`id`, `data`, `annotations[].result`, ...; `predictions[]` for the predictions source); a
  snapshot's JSON file gives the same shape;
- `predictions.py`: the predictions source: which model version (`with_model_version`, a 400 when it has
  no predictions), which results of a task (`results_of`) and a predicted track's score;
- `sources.py`: each task's video file, resolved safely from `/data/upload/...` or
  `/data/local-files/?d=...` (`resolve_video`): a security boundary;
- `reader.py`: the video probed for its real frame count and pixel size (`probe_video`), and its frames
  read for image formats (`FrameReader`: UI frame f is decoded frame f - 1);
- `building.py`: tasks -> `VideoExport` (`build_export`): keyframe sequences validated up front (a
  malformed one is skipped with a per-task warning, so the number of warnings is known before the first
  byte is written, `X-Export-Warnings`; a task whose video URL no file can have is skipped whole, with
  its reason), frame counts bounded by `LS_EXT_VIDEO_MAX_FRAMES` (`limits.py`: beyond it, a 422 before
  writing);
- `streaming.py`: `stream_export` turns a writer's `write(out, export)` into an iterator of byte chunks
  through a bounded queue, so an HTTP response streams while memory stays flat; `write_export_file`.

The names below are this package's public face; code inside `ls_extensions/video` imports from the
module that holds a name.
"""

from __future__ import annotations

from .building import build_export, check_pixel_size, warnings_of
from .catalogue import (
    FORMAT_PREFIX,
    OPTIONAL_IMAGES,
    ChosenFormat,
    chosen_formats,
    find_format,
    format_names,
    label_studio_name,
    require_exporter,
    require_format,
)
from .config import DEFAULT_FRAMERATE, VideoTrackingConfig, video_tracking_config
from .errors import (
    MalformedVideoUrl,
    MissingPixelSize,
    MissingVideo,
    NoPredictions,
    NoVideoTracking,
    TooManyFrames,
    UnknownFormat,
    VideoExportError,
)
from .options import SOURCES, ExportOptions, needs_task_json, wants_images
from .predictions import with_model_version
from .project_tasks import iter_project_tasks
from .reader import FrameReader, probe_video
from .sources import resolve_video
from .streaming import export_file_name, stream_export, write_export_file

__all__ = [
    'DEFAULT_FRAMERATE',
    'FORMAT_PREFIX',
    'OPTIONAL_IMAGES',
    'SOURCES',
    'ChosenFormat',
    'ExportOptions',
    'FrameReader',
    'MissingPixelSize',
    'MissingVideo',
    'MalformedVideoUrl',
    'NoPredictions',
    'NoVideoTracking',
    'TooManyFrames',
    'UnknownFormat',
    'VideoExportError',
    'VideoTrackingConfig',
    'build_export',
    'check_pixel_size',
    'export_file_name',
    'chosen_formats',
    'find_format',
    'format_names',
    'iter_project_tasks',
    'label_studio_name',
    'needs_task_json',
    'probe_video',
    'require_exporter',
    'require_format',
    'resolve_video',
    'stream_export',
    'video_tracking_config',
    'wants_images',
    'with_model_version',
    'warnings_of',
    'write_export_file',
]
