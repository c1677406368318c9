"""`/predict` on a video task: the detector's boxes on its frames, linked into tracks, as `videorectangle` regions.

One video task flows: its URL is read with the image rules (`images.ImageLoader`: Label Studio paths
with the token, plain URLs on allowed hosts only, data URIs) into a temporary file of at most
`max_bytes`; its timing is checked against the config's `<Video frameRate>` (a variable frame rate, or
a rate off by more than `FPS_TOLERANCE`, is refused: Label Studio would show the boxes on other frames
than they were found on); UI frames 1, 1 + stride, ... are decoded (`frames.iter_frames`: UI frame f is
decoded frame f - 1) and given to the adapter in batches through the image path's own call (`detect`:
the adapter never learns they came from a video); model classes map to labels as for images; the
boxes are linked by ByteTrack (`video.tracking.link_tracks`, one tracker per label), each track's boxes
are smoothed along it (`video.track_keyframes.smooth_track`: a detector's jitter out, its motion kept)
and reduced to few keyframes (`track_region`: the UI's interpolation of them stays within `min_iou` of
the smoothed box on every frame). `framesCount` and `duration` are the file's.

Anything wrong with one video is a `VideoError` whose message is that task's `error` in the answer.
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ls_extensions.ml_backend.images import ImageError, ImageLoader
from ls_extensions.ml_backend.labels import task_score
from ls_extensions.video.export.config import ui_frame_rate

logger = logging.getLogger('ls_extensions.ml_backend')

FPS_TOLERANCE = 0.005  # relative: 0.5 % (25 vs 25.125 fps drifts one frame every 8 s)
DEFAULT_MAX_MB = 2048
PREPARE_FIX = (
    'convert it with `manage.py prepare_videos` (constant frame rate at the project frameRate, '
    'first frame at 0) and import the converted file'
)


class VideoError(RuntimeError):
    """One video task cannot be predicted; the message is that task's error in the /predict answer."""


@dataclass(frozen=True)
class VideoOptions:
    """How videos are predicted: detect on every `stride`-th frame, tracks smoothed over `smooth` frames (fewer
    than 3 detections: not smoothed), keyframes within `min_iou` of the (smoothed) track, files up to `max_bytes`."""

    stride: int = 1
    min_iou: float = 0.9
    max_bytes: int = DEFAULT_MAX_MB * 2**20
    smooth: int = 7

    @classmethod
    def from_settings(cls, server_options, params):
        """Request `params` (`video_stride`, `video_min_iou`) over server `--option`s (the same names, and
        `video_max_mb`), over the defaults. Raises ValueError naming a bad value."""
        merged = {**(server_options or {}), **{k: v for k, v in (params or {}).items() if k != 'video_max_mb'}}
        return cls(
            stride=option_number(merged, 'video_stride', int, 1, 1, 1000),
            min_iou=option_number(merged, 'video_min_iou', float, 0.9, 0.01, 1.0),
            max_bytes=int(option_number(merged, 'video_max_mb', float, DEFAULT_MAX_MB, 1, 2**20) * 2**20),
            smooth=option_number(merged, 'video_smooth', int, 7, 0, 101),
        )


def option_number(options, key, kind, default, low, high):
    """`options[key]` as a `kind` within low..high, `default` when absent; ValueError naming the key."""
    raw = options.get(key)
    if raw is None or raw == '':
        return default
    try:
        value = kind(raw)
    except (TypeError, ValueError):
        raise ValueError(f'{key} must be a number, not {str(raw)[:40]!r}') from None
    if not low <= value <= high:
        raise ValueError(f'{key} must be within {low}..{high}, not {value}')
    return value


class VideoLoader(ImageLoader):
    """A task's video, read with the image rules (hosts, token, redirects), streamed into a temporary file."""

    def __init__(self, client=None, allowed_hosts='', max_bytes=DEFAULT_MAX_MB * 2**20, timeout=30.0):
        super().__init__(client, allowed_hosts, timeout)
        self.max_bytes = int(max_bytes)

    def _read(self, response, url):
        path = self._temporary()
        try:
            size = 0
            with path.open('wb') as out:
                for chunk in response.iter_content(1 << 20):
                    size += len(chunk)
                    if size > self.max_bytes:
                        raise ImageError(f'{url} is larger than {self.max_bytes} bytes (video_max_mb)')
                    out.write(chunk)
        except BaseException:
            path.unlink(missing_ok=True)
            raise
        return path

    @staticmethod
    def _temporary():
        handle, name = tempfile.mkstemp(prefix='ls-ext-video-', suffix='.video')
        os.close(handle)
        return Path(name)

    @contextlib.contextmanager
    def download(self, url):
        """``with loader.download(url) as path``: the video in a temporary file, removed afterwards."""
        if not url or not isinstance(url, str):
            raise VideoError('task has no video URL')
        try:
            fetched = self.fetch(url)
        except ImageError as exc:
            raise VideoError(f'cannot read the video: {exc}') from None
        if isinstance(fetched, bytes):  # a data URI
            if len(fetched) > self.max_bytes:
                raise VideoError(f'the video is larger than {self.max_bytes} bytes (video_max_mb)')
            path = self._temporary()
            try:
                path.write_bytes(fetched)
            except BaseException:
                path.unlink(missing_ok=True)
                raise
            fetched = path
        try:
            yield fetched
        finally:
            fetched.unlink(missing_ok=True)


@dataclass(frozen=True)
class VideoFile:
    frames_count: int
    width: int
    height: int
    fps: float


def task_frame_rate(control, data):
    """The frame rate the UI plays this task at: the config's, or the task's `$field` (the UI's rule)."""
    if control.frame_rate is not None:
        return control.frame_rate
    raw = data.get(control.frame_rate_key) if isinstance(data, dict) else None
    if raw is None:
        raise VideoError(f'the video plays at ${control.frame_rate_key} but the task has no "{control.frame_rate_key}"')
    return ui_frame_rate(raw)


def check_video(path, fps):
    """Probe the file; VideoError when it cannot be decoded or its timing would not match the UI's frames."""
    import av

    from ls_extensions.video.frames import UnsafeVideo
    from ls_extensions.video.frames import probe as probe_file
    from ls_extensions.video.probe import SEEK_STEP, inspect_video

    try:
        facts = inspect_video(path, decode=False)
        info = probe_file(path)
    except (UnsafeVideo, ValueError, av.FFmpegError, OSError) as exc:
        raise VideoError(f'the video cannot be decoded ({exc.__class__.__name__}: {str(exc)[:200]})') from None
    if info.frame_count <= 0 or info.width <= 0 or info.height <= 0:
        raise VideoError('the video cannot be decoded: no frames')
    rate = facts.measured_fps or facts.average_fps or info.fps
    if facts.variable_frame_rate:
        raise VideoError(
            f'the video has a variable frame rate ({facts.irregular_durations} frame durations differ): '
            f'Label Studio would show the boxes on other frames; {PREPARE_FIX}'
        )
    if facts.first_timestamp and facts.first_timestamp > SEEK_STEP:
        raise VideoError(
            f'the first frame of the video is at {facts.first_timestamp:.3f} s, not 0: Label Studio would show '
            f'the boxes on other frames; {PREPARE_FIX}'
        )
    if not rate or abs(rate - fps) > FPS_TOLERANCE * fps:
        raise VideoError(
            f"the video plays at {rate:.4g} fps but the project's <Video frameRate> is {fps:g}: "
            f'Label Studio would show the boxes on other frames; {PREPARE_FIX}'
        )
    return VideoFile(info.frame_count, info.width, info.height, float(fps))


def detections_on_frames(path, video, stride, detect, batch_size, label_of, score_threshold=0.0, progress=None):
    """`FrameDetections` of UI frames 1, 1 + stride, ...; `detect(images)` is the image path's batch call,
    `label_of(class_index)` a label index or None (unmapped: dropped and counted, as for images);
    `progress(frames_done)` after each batch."""
    import av

    from ls_extensions.video.frames import iter_frames
    from ls_extensions.video.tracking import FrameDetections

    found, frames, images = [], [], []

    def flush():
        for frame, dets in zip(frames, detect(images), strict=True):
            scored = [(d, label_of(int(d.class_index))) for d in dets if d.score >= score_threshold]
            kept = [(d, k) for d, k in scored if k is not None]
            found.append(
                FrameDetections(
                    frame,
                    np.array([[d.x1, d.y1, d.x2, d.y2] for d, _ in kept], np.float64).reshape(-1, 4),
                    np.array([d.score for d, _ in kept], np.float64),
                    np.array([k for _, k in kept], np.int64),
                )
            )
        frames.clear()
        images.clear()
        if progress is not None:
            progress(found[-1].frame)

    try:
        for frame, image in iter_frames(path, range(1, video.frames_count + 1, stride)):
            frames.append(frame)
            images.append(image)
            if len(images) >= batch_size:
                flush()
    except (ValueError, av.FFmpegError) as exc:
        raise VideoError(f'the video cannot be decoded ({exc.__class__.__name__}: {str(exc)[:200]})') from None
    if images:
        flush()
    return found


def predict_video(
    task, control, loader, detect, label_map, *, options, batch_size, score_threshold, version, progress=None
):
    """The prediction (`result`, `score`, `model_version`) of one video task; VideoError with the reason.
    `progress(frames_done, frames_count)` as the frames are detected."""
    from ls_extensions.video.track_keyframes import DEFAULT_MAX_GAP, smooth_track, track_region
    from ls_extensions.video.tracking import link_tracks

    data = task.get('data') or {}
    fps = task_frame_rate(control, data)
    labels = list(control.labels)

    def label_of(class_index):
        label = label_map.label_for(class_index)
        return None if label is None else labels.index(label)

    with loader.download(data.get(control.value_key)) as path:
        video = check_video(path, fps)
        done = (lambda frame: progress(frame, video.frames_count)) if progress is not None else None
        found = detections_on_frames(path, video, options.stride, detect, batch_size, label_of, score_threshold, done)
    tracks = link_tracks(found, video.frames_count, video.width, video.height, stride=options.stride, fps=fps)
    regions = []
    for track in tracks:
        region = track_region(
            track.frame,
            smooth_track(track.frame, track.xyxy, options.smooth // options.stride),  # over `smooth` frames
            video.width,
            video.height,
            video.frames_count,
            fps=fps,
            label=labels[track.class_id],
            region_id=uuid.uuid4().hex[:10],
            from_name=control.from_name,
            to_name=control.to_name,
            scores=track.score,
            min_iou=options.min_iou,
            max_gap=max(DEFAULT_MAX_GAP, 2 * options.stride),
        )
        if region is not None:
            region['score'] = round(region.get('score', 0.0), 4)
            regions.append(region)
    return {'result': regions, 'score': task_score(regions), 'model_version': version}
