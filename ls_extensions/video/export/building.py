"""Task dicts -> the engine's `VideoExport`: validated tracks, frame counts, sizes and frame readers.

Everything that can make an export fail is found here, before the first byte is written: a malformed
keyframe sequence is skipped with a per-task warning (so `X-Export-Warnings` is known up front), a task
whose video URL no file can have is skipped whole, and a missing video, pixel size or a frame count
beyond `LS_EXT_VIDEO_MAX_FRAMES` is an error naming the tasks.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field

from .. import limits
from ..formats import Exporter, MissingVideoInfo, SkippedTask, Track, VideoExport, VideoTrackSet
from ..interpolation import ExpansionPlan, MalformedSequence
from ..regions import region_labels
from .config import VideoTrackingConfig, video_tracking_config
from .errors import MalformedVideoUrl, MissingPixelSize, MissingVideo, TooManyFrames
from .options import PREDICTIONS, ExportOptions, needs_task_json, wants_images
from .predictions import results_of, score_of, unpredicted_reason, with_model_version
from .reader import FrameReader, probe_video
from .sources import resolve_video


@dataclass
class _TaskTracks:
    task: dict
    tracks: list[Track] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    frames_counts: list[int] = field(default_factory=list)
    last_keyframe: int = 0
    holders: int = 0  # annotations or predictions (of the version) the task has


def _collect_tracks(task: dict, config: VideoTrackingConfig, label_ids: dict, options: ExportOptions) -> _TaskTracks:
    """The task's `videorectangle` results (of the options' source) as validated tracks; bad ones become warnings.

    Predictions go through the same checks as annotations: a model's output is no more trusted than a user's.
    """
    found = _TaskTracks(task)
    holders = results_of(task, options)  # the annotations, or the predictions of the model version
    found.holders = len(holders)
    kind = options.source[:-1]  # 'annotation' or 'prediction', for the warnings
    track_id = 0
    for annotation in holders:
        results = annotation.get('result') or []
        if not isinstance(results, list):
            found.warnings.append(f'{kind} {annotation.get("id")}: result is not a list, skipped')
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
            where = f'{kind} {annotation.get("id")}, result {result.get("id")!r}'
            value = result.get('value')
            if not isinstance(value, dict):
                found.warnings.append(f'track {track_id} ({where}) skipped: value is not an object')
                continue
            labels = region_labels(result, value, companions)
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
                    score=score_of(result, annotation, options),
                )
            )
    return found


def build_export(project, tasks: Iterable[dict], options: ExportOptions) -> VideoExport:
    """The `VideoExport` for these task dicts: labels, tracks, frame counts, sizes, frame readers.

    Raises `NoVideoTracking`, `MissingVideo` (image formats: a task's video cannot be read),
    `MissingPixelSize` (pixel formats: a task's size is neither in its video nor in the options) and
    `TooManyFrames` (a frame count beyond `LS_EXT_VIDEO_MAX_FRAMES`), before anything is written. A task
    whose video URL is malformed is left out and listed in `VideoExport.skipped`, and so is, when
    `options.only_predicted`, a task without a prediction of the model version (resolved here if not yet:
    `NoPredictions`, a 400, when it has none).
    """
    config = video_tracking_config(project)
    if options.source == PREDICTIONS and options.model_version is None:
        options = with_model_version(project, options)
    wanted = options.labels
    label_ids = {label: index for index, label in enumerate(x for x in config.labels if wanted is None or x in wanted)}
    if wanted is not None:
        for label in wanted:  # labels asked for that the config lacks still get a class (results may use them)
            label_ids.setdefault(label, len(label_ids))
    track_sets, unreadable, skipped, too_long = [], [], [], []
    most = limits.max_frames()
    for task in tasks:
        found = _collect_tracks(task, config, label_ids, options)
        if options.only_predicted and not found.holders:
            skipped.append(SkippedTask(task.get('id'), _video_of(task, config), unpredicted_reason(task, options)))
            continue
        try:
            track_set = _track_set(project, config, found, options)
        except MalformedVideoUrl as error:
            skipped.append(SkippedTask(task.get('id'), _video_of(task, config), str(error)))
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
        list(label_ids),
        track_sets,
        frame_stride=options.frame_stride,
        skipped=skipped,
        mot_origin=options.mot_origin,
        source=options.source,
        model_version=options.model_version,
    )
    check_pixel_size(options.exporter, export)
    return export


def _video_of(task: dict, config: VideoTrackingConfig) -> str:
    """The task's video URL as stored ('' when it has none, or not a string)."""
    data = task.get('data') if isinstance(task.get('data'), dict) else {}
    video = data.get(config.video_key)
    return video if isinstance(video, str) else ''


def _track_set(project, config: VideoTrackingConfig, found: _TaskTracks, options: ExportOptions) -> VideoTrackSet:
    task = found.task
    video = _video_of(task, config)
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
