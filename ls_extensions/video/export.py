"""Django side of the per-frame video export: Label Studio tasks -> `VideoExport`, streamed through a writer.

The engine (`interpolation.py`, `formats/`) takes plain data; this module gathers it:
- the project's video tracking setup from its labeling config (`video_tracking_config`);
- task dicts, either from the database (`iter_project_tasks`) or from a snapshot's JSON file, in the
  shape of Label Studio's export (`id`, `data`, `annotations[].result`, ...);
- each task's video file, resolved safely from `/data/upload/...` or `/data/local-files/?d=...`
  (`resolve_video`), probed for its real frame count and pixel size (`frames.probe`), and its frames
  read for image formats (`FrameReader`: UI frame f is decoded frame f - 1);
- keyframe sequences validated up front: a malformed one is skipped with a per-task warning, so the
  number of warnings is known before the first byte is written (`X-Export-Warnings`); a task whose video
  URL no file can have (NUL or control characters) is skipped whole, with its reason;
- frame counts bounded by `LS_EXT_VIDEO_MAX_FRAMES` (`limits.py`): beyond it, a 422 before writing.

`stream_export` turns a writer's `write(out, export)` into an iterator of byte chunks through a bounded
queue, so an HTTP response streams while memory stays flat.
"""

from __future__ import annotations

import io
import logging
import math
import posixpath
import queue
import threading
import xml.etree.ElementTree as ET
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

from django.conf import settings

from . import limits
from .formats import Exporter, MissingVideoInfo, SkippedTask, Track, VideoExport, VideoTrackSet, list_exporters
from .frames import encode_jpeg, iter_frames, probe
from .interpolation import ExpansionPlan, MalformedSequence

logger = logging.getLogger(__name__)

FORMAT_PREFIX = 'VIDEO_'  # our names in Label Studio's export format list: VIDEO_MOT, VIDEO_YOLO_OBB, ...
BATCH = 500  # tasks per database round trip
ID_CHUNK = 900  # task ids per `IN (...)`: SQLite allows 32766 variables per statement (999 before 3.32)
DEFAULT_FRAMERATE = 24.0  # the UI's default for <Video frameRate>
OPTIONAL_IMAGES = {'MOT'}  # formats that write frame images when given them; YOLO/YOLO-OBB always need them


# ---------------------------------------------------------------- errors


class VideoExportError(Exception):
    """A request the export cannot serve; `status` is the HTTP status to answer with."""

    status = 400

    def __init__(self, message: str, **extra):
        super().__init__(message)
        self.message = message
        self.extra = extra


class NoVideoTracking(VideoExportError):
    pass


class UnknownFormat(VideoExportError):
    pass


class MissingVideo(VideoExportError):
    """An image format met a task whose video file cannot be read; names the tasks."""

    status = 422


class MissingPixelSize(VideoExportError):
    status = 422


class TooManyFrames(VideoExportError):
    """A video whose frame count is beyond `LS_EXT_VIDEO_MAX_FRAMES`; names the tasks and the setting."""

    status = 422


class MalformedVideoUrl(ValueError):
    """A task's video URL that no file can have: the task is skipped with this reason."""


# ---------------------------------------------------------------- formats


@dataclass(frozen=True)
class ChosenFormat:
    """A format as asked for: the engine's writer, the name it goes by in Label Studio's export list, and
    option defaults that name implies (`VIDEO_MOT_IMAGES` = MOT with frame images)."""

    exporter: Exporter
    name: str  # Label Studio list name (`exportType`): VIDEO_MOT, VIDEO_YOLO_OBB, ...
    title: str
    description: str
    defaults: dict = field(default_factory=dict)


DIALOG_ORDER = ['JSON', 'CSV', 'MOT', 'YOLO', 'YOLO-OBB', 'CVAT', 'COCO-video']  # others after these


def label_studio_name(exporter: Exporter) -> str:
    """Our format's name in Label Studio's export list (`exportType`), e.g. `VIDEO_YOLO_OBB`."""
    return FORMAT_PREFIX + exporter.name.upper().replace('-', '_')


def chosen_formats() -> list[ChosenFormat]:
    """Every format we offer, in the Export dialog's order; MOT also with frame images."""
    exporters = sorted(
        list_exporters(), key=lambda e: DIALOG_ORDER.index(e.name) if e.name in DIALOG_ORDER else len(DIALOG_ORDER)
    )
    formats = []
    for exporter in exporters:
        formats.append(ChosenFormat(exporter, label_studio_name(exporter), exporter.title, exporter.description))
        if exporter.name in OPTIONAL_IMAGES:
            formats.append(
                ChosenFormat(
                    exporter,
                    label_studio_name(exporter) + '_IMAGES',
                    f'{exporter.title} + frame images',
                    f'{exporter.description} With every exported frame as img1/<frame>.jpg from the video.',
                    {'images': True},
                )
            )
    return formats


def format_names() -> list[str]:
    return [exporter.name for exporter in list_exporters()]


def find_format(name: str | None) -> ChosenFormat | None:
    """An engine name (`MOT`, `yolo-obb`, case-insensitive) or a Label Studio list name (`VIDEO_MOT_IMAGES`)."""
    if not name:
        return None
    key = name.strip().upper()
    for chosen in chosen_formats():
        if key == chosen.name or (not chosen.defaults and key == chosen.exporter.name.upper()):
            return chosen
    return None


def require_format(name: str | None) -> ChosenFormat:
    chosen = find_format(name)
    if chosen is None:
        valid = format_names()
        problem = f'unknown video export format {name!r}' if name else 'no export format given (?format=...)'
        raise UnknownFormat(
            f'{problem}; valid formats: {", ".join(valid)} '
            f'(or, as in the Export dialog: {", ".join(f.name for f in chosen_formats())})',
            valid_formats=valid,
        )
    return chosen


def require_exporter(name: str | None) -> Exporter:
    return require_format(name).exporter


# ---------------------------------------------------------------- labeling config


@dataclass(frozen=True)
class VideoTrackingConfig:
    """What the labeling config says about video tracking: the `<VideoRectangle>`s and their `<Video>`."""

    box_names: frozenset[str]  # from_name of the VideoRectangle tags
    label_names: frozenset[str]  # Labels tags on the same video (results of type "labels")
    video_name: str  # to_name of the Video tag
    video_key: str  # task.data key of the video
    labels: tuple[str, ...]  # label values in config order
    framerate: float


def video_tracking_config(project) -> VideoTrackingConfig:
    """The project's video tracking setup; `NoVideoTracking` when it has none."""
    parsed = project.get_parsed_config() or {}
    boxes = {name: tag for name, tag in parsed.items() if tag.get('type') == 'VideoRectangle'}
    if not boxes:
        raise NoVideoTracking(
            f'project {project.id} has no video tracking: its labeling config has no <VideoRectangle> '
            'on a <Video>, so there is nothing to export per frame'
        )
    video_name = sorted(name for tag in boxes.values() for name in tag.get('to_name', []))[0]
    inputs = [i for tag in boxes.values() for i in tag.get('inputs', []) if i.get('type') == 'Video']
    video_key = inputs[0]['value'] if inputs else 'video'
    labels, label_names = [], set()
    for name, tag in parsed.items():
        if video_name in tag.get('to_name', []) and tag.get('type') in ('Labels', 'VideoRectangle'):
            if tag.get('type') == 'Labels':
                label_names.add(name)
            labels += [label for label in tag.get('labels', []) if label not in labels]
    return VideoTrackingConfig(
        frozenset(boxes), frozenset(label_names), video_name, video_key, tuple(labels), _framerate(project, video_name)
    )


def _framerate(project, video_name: str) -> float:
    """`<Video frameRate>` as the UI reads it: default 24, 0 or NaN -> 24, below 1 inverted."""
    try:
        root = ET.fromstring(project.label_config or '<View/>')
    except ET.ParseError:
        return DEFAULT_FRAMERATE
    for tag in root.iter():
        if tag.tag.lower() == 'video' and tag.get('name') == video_name:
            raw = tag.get('frameRate', tag.get('framerate'))
            try:
                rate = float(raw)
            except (TypeError, ValueError):
                return DEFAULT_FRAMERATE
            if not math.isfinite(rate) or rate <= 0:
                return DEFAULT_FRAMERATE
            return 1 / rate if rate < 1 else rate
    return DEFAULT_FRAMERATE


# ---------------------------------------------------------------- video files


def _inside(path: Path, root: Path) -> bool:
    try:
        path.relative_to(root)
    except ValueError:
        return False
    return True


def _strip_own_host(url: str) -> str:
    """`http://<HOSTNAME>/<FORCE_SCRIPT_NAME>/data/...` -> `/data/...`: this Label Studio's own URLs."""
    parts = urlsplit(url)
    hostname = urlsplit(settings.HOSTNAME or '').netloc
    if parts.scheme in ('http', 'https') and hostname and parts.netloc == hostname:
        url = url[len(f'{parts.scheme}://{parts.netloc}') :]
    prefix = (getattr(settings, 'FORCE_SCRIPT_NAME', None) or '').rstrip('/')
    if prefix and url.startswith(prefix + '/data/'):
        url = url[len(prefix) :]
    return url


def _url_problem(url: str) -> str | None:
    """Why no file can have this URL (too long, NUL or control characters, raw or %-encoded), or None."""
    if len(url) > limits.MAX_URL_CHARS:
        return f'it is longer than {limits.MAX_URL_CHARS} characters'
    for text in (url, unquote(url)):
        bad = next((char for char in text if ord(char) < 32 or ord(char) == 127), None)
        if bad is not None:
            return f'it contains the control character {bad!r}'
    return None


def resolve_video(project, url) -> Path | None:
    """The local file behind a task's video URL, or None when it is not one this project may read.

    `/data/upload/<...>`: a file uploaded to a project of the same organization, under
    MEDIA_ROOT/UPLOAD_DIR. `/data/local-files/?d=<path>`: a file under LOCAL_FILES_DOCUMENT_ROOT inside
    a local files storage of this project. Paths are resolved (symlinks too) before the containment
    checks, so `..` and links cannot leave the roots. Any other URL (cloud storage, web) -> None.
    A URL that no file can have (NUL byte, control characters, over-long) raises `MalformedVideoUrl`
    before it reaches the file system or the database (PostgreSQL refuses NUL in strings).
    """
    if not isinstance(url, str) or not url:
        return None
    url = _strip_own_host(url.strip())
    problem = _url_problem(url)
    if problem is not None:
        raise MalformedVideoUrl(f'its video URL is malformed: {problem}')
    parts = urlsplit(url)
    if parts.scheme or parts.netloc:
        return None
    try:
        if parts.path.startswith('/data/upload/'):
            return _upload_path(project, unquote(parts.path[len('/data/upload/') :]))
        if parts.path.rstrip('/') == '/data/local-files':
            relative = parse_qs(parts.query).get('d', [''])[0]
            return _local_file_path(project, relative)
    except (OSError, ValueError) as error:  # e.g. a path component longer than NAME_MAX
        raise MalformedVideoUrl(f'its video URL cannot name a file ({type(error).__name__}: {error})') from error
    return None


def _upload_path(project, relative: str) -> Path | None:
    from data_import.models import FileUpload

    relative = posixpath.normpath(relative).lstrip('/')
    if relative.startswith('..') or not relative or relative == '.':
        return None
    root = Path(settings.MEDIA_ROOT, settings.UPLOAD_DIR).resolve()
    path = (root / relative).resolve()
    if not _inside(path, root) or not path.is_file():
        return None
    name = f'{settings.UPLOAD_DIR}/{relative}'
    if not FileUpload.objects.filter(file=name, project__organization_id=project.organization_id).exists():
        return None
    return path


def _local_file_path(project, relative: str) -> Path | None:
    from io_storages.localfiles.models import LocalFilesImportStorage

    relative = posixpath.normpath(relative).lstrip('/')  # decoded once, as Label Studio's own view does
    if not relative or relative == '.':
        return None
    root = Path(settings.LOCAL_FILES_DOCUMENT_ROOT).resolve()
    path = (root / relative).resolve()
    if not _inside(path, root) or not path.is_file():
        return None
    for storage_path in LocalFilesImportStorage.objects.filter(project=project).values_list('path', flat=True):
        if storage_path and _inside(path, Path(storage_path).resolve()):
            return path
    return None


@lru_cache(maxsize=256)
def _probe_cached(path: str, mtime_ns: int, size: int):
    return probe(path)


def probe_video(path: Path):
    """`frames.probe`, remembered per file version (WebM has no frame count in its header: decoding is slow)."""
    stat = path.stat()
    return _probe_cached(str(path), stat.st_mtime_ns, stat.st_size)


class _Requests:
    """The frames asked for so far, handed one at a time to `iter_frames` (which pulls after each yield)."""

    def __init__(self):
        self.frames: deque[int] = deque()

    def __iter__(self):
        return self

    def __next__(self) -> int:
        if self.frames:
            return self.frames.popleft()
        raise StopIteration


class FrameReader:
    """`frame_images` for one video: JPEGs of the requested UI frames, decoding the file once in order.

    The writers ask window by window for increasing frames; one decoder (`frames.iter_frames`, UI frame
    f = decoded frame f - 1) runs across those calls, so a long video is not decoded again from the start
    for each window. Frames past the end of the video are not yielded (the writer counts them).
    """

    def __init__(self, path: Path, quality: int = 90):
        self.path = path
        self.quality = quality
        self._requests = _Requests()
        self._decoder = None
        self._last = 0  # the last frame yielded by the running decoder
        self._past_end: int | None = None  # the first frame found past the end of the video

    def __call__(self, ui_frames: Iterable[int]) -> Iterator[tuple[int, bytes]]:
        for frame in ui_frames:
            if self._past_end is not None and frame >= self._past_end:
                return
            if frame <= self._last:  # asked from an earlier frame again: start a new decoding pass
                self.close()
            if self._decoder is None:
                self._decoder = iter_frames(self.path, self._requests)
            self._requests.frames.append(frame)
            try:
                got, rgb = next(self._decoder)
            except (StopIteration, ValueError):  # past the end of the video
                self.close()
                self._past_end = frame
                return
            self._last = got
            yield got, encode_jpeg(rgb, self.quality)

    def close(self) -> None:
        if self._decoder is not None:
            self._decoder.close()
        self._decoder, self._last = None, 0
        self._requests.frames.clear()


# ---------------------------------------------------------------- options and tasks


@dataclass
class ExportOptions:
    """What the caller chose; `labels` None = every label, `task_ids` None = every task."""

    exporter: Exporter
    task_ids: list[int] | None = None
    labels: list[str] | None = None
    frame_stride: int = 1
    width: int | None = None  # pixel size for videos that cannot be read
    height: int | None = None
    only_annotated: bool = True
    images: bool = False  # frame images for formats where they are optional (MOT)
    mot_origin: int = 1  # MOT pixel positions: 1-based (MOT Challenge) or 0-based (datumaro/CVAT)


def wants_images(options: ExportOptions) -> bool:
    return options.exporter.needs_images or (options.images and options.exporter.name in OPTIONAL_IMAGES)


def needs_task_json(exporter: Exporter) -> bool:
    """The JSON format rewrites Label Studio's task JSON, so it needs the full serialized tasks."""
    return exporter.name == 'JSON'


def iter_project_tasks(project, options: ExportOptions) -> Iterator[dict]:
    """Task dicts in id order, in the shape of Label Studio's export JSON, batch by batch.

    For the JSON format they are Label Studio's own export serialization (`ExportDataSerializer`); for
    the others only what the tracks need (`id`, `data`, non-cancelled annotations' `id` and `result`).
    """
    from tasks.models import Annotation, Task

    ids = _task_ids(project, options)
    for start in range(0, len(ids), BATCH):
        batch = ids[start : start + BATCH]
        if needs_task_json(options.exporter):
            yield from _serialized_tasks(batch)
            continue
        data = dict(Task.objects.filter(id__in=batch).values_list('id', 'data'))
        rows = (
            Annotation.objects.filter(task_id__in=batch, was_cancelled=False)
            .order_by('task_id', 'id')
            .values_list('task_id', 'id', 'result')
            .iterator(chunk_size=20)  # annotations hold every keyframe: a few at a time, not the whole batch
        )
        row = next(rows, None)
        for task_id in batch:
            annotations = []
            while row is not None and row[0] == task_id:
                annotations.append({'id': row[1], 'result': row[2]})
                row = next(rows, None)
            yield {'id': task_id, 'data': data.get(task_id), 'annotations': annotations}


def _task_ids(project, options: ExportOptions) -> list[int]:
    """The ids of the tasks to export, ascending; asked-for ids are looked up `ID_CHUNK` at a time."""
    from tasks.models import Task

    tasks = Task.objects.filter(project=project)
    if options.only_annotated:
        tasks = tasks.filter(annotations__isnull=False).distinct()
    if options.task_ids is None:
        return list(tasks.order_by('id').values_list('id', flat=True))
    wanted = sorted(set(options.task_ids))
    ids: list[int] = []
    for start in range(0, len(wanted), ID_CHUNK):
        chunk = wanted[start : start + ID_CHUNK]
        ids += tasks.filter(id__in=chunk).order_by('id').values_list('id', flat=True)
    return ids


def _serialized_tasks(ids: list[int]) -> list[dict]:
    from data_export.serializers import ExportDataSerializer
    from django.db.models import Prefetch
    from tasks.models import Annotation, Task

    queryset = (
        Task.objects.filter(id__in=ids)
        .order_by('id')
        .prefetch_related(Prefetch('annotations', queryset=Annotation.objects.order_by('id')), 'predictions')
    )
    return list(ExportDataSerializer(queryset, many=True, expand=['drafts']).data)


# ---------------------------------------------------------------- tasks -> track sets


@dataclass
class _TaskTracks:
    task: dict
    tracks: list[Track] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    frames_counts: list[int] = field(default_factory=list)
    last_keyframe: int = 0


def _label_of(result: dict, value: dict, companions: dict) -> list:
    labels = value.get('labels')
    if not labels:
        companion = companions.get(result.get('id'))
        labels = (companion or {}).get('labels')
    return labels if isinstance(labels, list) else []


def _collect_tracks(task: dict, config: VideoTrackingConfig, label_ids: dict, options: ExportOptions) -> _TaskTracks:
    """The task's `videorectangle` results as validated tracks; bad ones become warnings."""
    found = _TaskTracks(task)
    annotations = task.get('annotations') or []
    track_id = 0
    for annotation in annotations:
        if not isinstance(annotation, dict) or annotation.get('was_cancelled'):
            continue
        results = annotation.get('result') or []
        if not isinstance(results, list):
            found.warnings.append(f'annotation {annotation.get("id")}: result is not a list, skipped')
            continue
        companions = {
            r.get('id'): r.get('value') or {}
            for r in results
            if isinstance(r, dict) and r.get('type') == 'labels' and r.get('from_name') in config.label_names
        }
        for result in results:
            if not isinstance(result, dict) or result.get('type') != 'videorectangle':
                continue
            if result.get('to_name', config.video_name) != config.video_name:
                continue
            track_id += 1
            where = f'annotation {annotation.get("id")}, result {result.get("id")!r}'
            value = result.get('value')
            if not isinstance(value, dict):
                found.warnings.append(f'track {track_id} ({where}) skipped: value is not an object')
                continue
            labels = _label_of(result, value, companions)
            if not labels:
                found.warnings.append(f'track {track_id} ({where}) skipped: it has no label')
                continue
            label = str(labels[0])
            if len(labels) > 1:
                found.warnings.append(f'track {track_id} ({where}) has labels {labels}; exported as {label!r}')
            if options.labels is not None and label not in options.labels:
                continue
            if label not in label_ids:
                label_ids[label] = len(label_ids)
            count = value.get('framesCount')
            if isinstance(count, (int, float)) and not isinstance(count, bool) and math.isfinite(count) and count > 0:
                found.frames_counts.append(int(count))
            try:
                plan = ExpansionPlan(value.get('sequence'))
            except MalformedSequence as error:
                found.warnings.append(f'track {track_id} ({label}) skipped: {error}')
                continue
            found.last_keyframe = max(found.last_keyframe, int(plan.keyframes['frame'].max()))
            found.tracks.append(
                Track(
                    track_id,
                    label,
                    label_ids[label],
                    sequence=plan.keyframes,
                    result_id=result.get('id'),
                    annotation_id=annotation.get('id'),
                )
            )
    return found


def build_export(project, tasks: Iterable[dict], options: ExportOptions) -> VideoExport:
    """The `VideoExport` for these task dicts: labels, tracks, frame counts, sizes, frame readers.

    Raises `NoVideoTracking`, `MissingVideo` (image formats: a task's video cannot be read),
    `MissingPixelSize` (pixel formats: a task's size is neither in its video nor in the options) and
    `TooManyFrames` (a frame count beyond `LS_EXT_VIDEO_MAX_FRAMES`), before anything is written. A task
    whose video URL is malformed is left out and listed in `VideoExport.skipped`.
    """
    config = video_tracking_config(project)
    wanted = options.labels
    label_ids = {label: index for index, label in enumerate(x for x in config.labels if wanted is None or x in wanted)}
    if wanted is not None:
        for label in wanted:  # labels asked for that the config lacks still get a class (results may use them)
            label_ids.setdefault(label, len(label_ids))
    track_sets, unreadable, skipped, too_long = [], [], [], []
    most = limits.max_frames()
    for task in tasks:
        found = _collect_tracks(task, config, label_ids, options)
        try:
            track_set = _track_set(project, config, found, options)
        except MalformedVideoUrl as error:
            video = (task.get('data') or {}).get(config.video_key) if isinstance(task.get('data'), dict) else None
            skipped.append(SkippedTask(task.get('id'), video if isinstance(video, str) else '', str(error)))
            continue
        if track_set.frame_count > most:
            too_long.append(track_set)
        if wants_images(options) and track_set.frame_images is None:
            unreadable.append(track_set)
        track_sets.append(track_set)
    if too_long:
        raise TooManyFrames(
            f'{len(too_long)} task(s) would export more than {limits.MAX_FRAMES_SETTING} = {most} frames: '
            + '; '.join(
                f'task {ts.task_id}: {ts.frame_count} frames (from {ts.frame_count_source})' for ts in too_long[:20]
            )
            + f'. Fix the annotation (framesCount, keyframe frames), leave the task out (ids=), or raise '
            f'{limits.MAX_FRAMES_SETTING} in the server settings',
            task_ids=[ts.task_id for ts in too_long],
            max_frames=most,
        )
    if unreadable:
        raise MissingVideo(
            f'{options.exporter.name} with frame images needs the video files, and these could not be read: '
            + '; '.join(f'task {ts.task_id} ({ts.video or "no video"})' for ts in unreadable[:20])
            + (f'; and {len(unreadable) - 20} more' if len(unreadable) > 20 else ''),
            task_ids=[ts.task_id for ts in unreadable],
        )
    export = VideoExport(
        list(label_ids), track_sets, frame_stride=options.frame_stride, skipped=skipped, mot_origin=options.mot_origin
    )
    check_pixel_size(options.exporter, export)
    return export


def _track_set(project, config: VideoTrackingConfig, found: _TaskTracks, options: ExportOptions) -> VideoTrackSet:
    task = found.task
    data = task.get('data') if isinstance(task.get('data'), dict) else {}
    video = data.get(config.video_key)
    video = video if isinstance(video, str) else ''
    warnings = list(found.warnings)
    path = resolve_video(project, video)
    info = None
    if path is not None:
        try:
            info = probe_video(path)
        except Exception as error:  # a file that is not a readable video
            warnings.append(f'the video file could not be read ({error}); frames and size from the annotation')
    if info is not None and info.frame_count > 0:
        frame_count, source = info.frame_count, 'video'
        stored = set(found.frames_counts)
        if stored and stored != {frame_count}:
            warnings.append(
                f"annotation framesCount {sorted(stored)} differs from the video's {frame_count} frames; used the video"
            )
    elif found.frames_counts:
        frame_count, source = max(found.frames_counts), 'framesCount'
    else:
        frame_count, source = found.last_keyframe, 'keyframes'
        if found.tracks:
            warnings.append(f'no video and no framesCount: exported up to the last keyframe, frame {frame_count}')
    width = info.width if info is not None else options.width
    height = info.height if info is not None else options.height
    fps = info.fps if info is not None and info.fps else config.framerate
    return VideoTrackSet(
        task_id=task.get('id'),
        video=video,
        frame_count=frame_count,
        frame_count_source=source,
        tracks=found.tracks,
        width=width,
        height=height,
        fps=fps,
        task=task if needs_task_json(options.exporter) else None,
        frame_images=FrameReader(path) if info is not None and wants_images(options) else None,
        warnings=warnings,
    )


def check_pixel_size(exporter: Exporter, export: VideoExport) -> None:
    """Pixel formats (and YOLO when a box is rotated) need every video's size: fail before writing."""
    needs = exporter.needs_pixels
    if not needs and exporter.name == 'YOLO':
        needs = any(track.source().rotated for ts in export.track_sets for track in ts.tracks)
    if not needs:
        return
    missing = [ts for ts in export.track_sets if not ts.has_size]
    if missing:
        first = MissingVideoInfo(missing[0].task_id, missing[0].video)
        raise MissingPixelSize(
            f'{exporter.name} writes pixels; {first} '
            + (
                f'(tasks without a size: {", ".join(str(ts.task_id) for ts in missing[:50])})'
                if len(missing) > 1
                else ''
            ),
            task_ids=[ts.task_id for ts in missing],
        )


def warnings_of(export: VideoExport) -> list[str]:
    """The per-task warnings known before writing (malformed or unlabeled tracks, frame count notes, skipped tasks)."""
    warnings = [f'task {ts.task_id}: {message}' for ts in export.track_sets for message in ts.warnings]
    return warnings + [f'task {task.task_id} skipped: {task.reason}' for task in export.skipped]


# ---------------------------------------------------------------- streaming


class _Cancelled(Exception):
    """The consumer went away (client disconnected): the writer thread stops at its next write."""


class _QueueStream(io.RawIOBase):
    """A write-only stream that hands chunks of about `chunk` bytes to a bounded queue."""

    def __init__(self, chunks: queue.Queue, cancelled: threading.Event, chunk: int = 1 << 16):
        self.chunks, self.cancelled, self.chunk = chunks, cancelled, chunk
        self.pending = bytearray()

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:
        self.pending += data
        if len(self.pending) >= self.chunk:
            self.push()
        return len(data)

    def push(self) -> None:
        if not self.pending:
            return
        piece = bytes(self.pending)
        self.pending.clear()
        while True:
            if self.cancelled.is_set():
                raise _Cancelled
            try:
                self.chunks.put(piece, timeout=0.5)
                return
            except queue.Full:
                continue


_DONE = object()


@dataclass
class _Failed:
    error: BaseException


def stream_export(exporter: Exporter, export: VideoExport, chunk: int = 1 << 16, depth: int = 16) -> Iterator[bytes]:
    """The writer's output as byte chunks; the writer runs in a thread, at most `depth` chunks ahead.

    Memory stays at about `chunk * depth` bytes however large the export. Errors after the first byte
    cannot change the response status any more: they are logged and end the stream early.
    """
    chunks: queue.Queue = queue.Queue(maxsize=depth)
    cancelled = threading.Event()
    stream = _QueueStream(chunks, cancelled, chunk)

    def produce():
        try:
            exporter.write(stream, export)
            stream.push()
            message = _DONE
        except _Cancelled:
            return
        except BaseException as error:  # handed to the consumer, which logs it
            message = _Failed(error)
        while not cancelled.is_set():
            try:
                chunks.put(message, timeout=0.5)
                return
            except queue.Full:
                continue

    def consume():
        worker = threading.Thread(target=produce, name=f'video-export-{exporter.name}', daemon=True)
        worker.start()
        try:
            while True:
                item = chunks.get()
                if item is _DONE:
                    return
                if isinstance(item, _Failed):
                    logger.error('video export %s failed while streaming', exporter.name, exc_info=item.error)
                    raise item.error
                yield item
        finally:
            cancelled.set()
            while worker.is_alive():
                try:
                    chunks.get(timeout=0.1)
                except queue.Empty:
                    pass
            for track_set in export.track_sets:
                if isinstance(track_set.frame_images, FrameReader):
                    track_set.frame_images.close()

    return consume()


def export_file_name(project, exporter: Exporter, now=None) -> str:
    from django.utils import timezone

    now = now or timezone.now()
    name = exporter.name.lower().replace('-', '_')
    return f'project-{project.id}-video-{name}-at-{now.strftime("%Y-%m-%d-%H-%M")}.{exporter.ext}'


def write_export_file(exporter: Exporter, export: VideoExport, out) -> None:
    """Write the whole export into a file object (snapshots store it; no thread needed)."""
    try:
        exporter.write(out, export)
    finally:
        for track_set in export.track_sets:
            if isinstance(track_set.frame_images, FrameReader):
                track_set.frame_images.close()


__all__ = [
    'ExportOptions',
    'FrameReader',
    'MissingPixelSize',
    'MissingVideo',
    'MalformedVideoUrl',
    'NoVideoTracking',
    'TooManyFrames',
    'UnknownFormat',
    'VideoExportError',
    'build_export',
    'export_file_name',
    'chosen_formats',
    'find_format',
    'iter_project_tasks',
    'label_studio_name',
    'require_exporter',
    'require_format',
    'resolve_video',
    'stream_export',
    'video_tracking_config',
    'warnings_of',
    'write_export_file',
]
