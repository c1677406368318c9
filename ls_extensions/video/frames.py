"""Reading and writing video frames: the one place that knows how decoded frames map to UI frames.

Label Studio shows UI frame ``f`` (1-based) at time ``(f - 1) / fps``, so UI frame ``f`` is the
decoded frame ``f - 1`` (docs/video-interpolation.md, "Frames and time"). Videos written here have a
constant frame rate and exact timestamps (frame ``i`` at ``i / fps``) so that mapping holds in the
browser. Frames are numpy ``HxWx3`` uint8 RGB arrays throughout.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
from av.video.reformatter import Interpolation

# swscale's default YUV->RGB path truncates (every channel comes out about 1 level dark); this one
# rounds and interpolates chroma like browsers do: unbiased, half the error, ~2 ms per 640x480 frame.
_TO_RGB = Interpolation.BILINEAR | Interpolation.ACCURATE_RND | Interpolation.FULL_CHR_H_INT
_TO_YUV = Interpolation.BILINEAR | Interpolation.ACCURATE_RND


@dataclass(frozen=True)
class ColourTags:
    """A stream's colour description (FFmpeg's names): the YUV matrix, primaries, transfer and range."""

    matrix: str
    primaries: str
    transfer: str
    range: str


# Colours of the videos written here. The matrix is BT.601 (SMPTE 170M), limited range, because it is
# what readers that ignore the tags assume: OpenCV's FFmpeg reader and swscale's defaults convert every
# video with BT.601 whatever it is tagged, so a BT.709 video comes out up to 23/255 off in OpenCV. The
# tags say so, for the readers that honour them (FFmpeg's filters, PyAV, browsers). Primaries and
# transfer are the source images' own, sRGB's: Chromium converts primaries it is told about (BT.601's
# 625-line primaries shift pure green by 29 levels on canvas). Measured per reader in
# tests/video/test_colours.py and test_colours_browser.py; README, "Video preparation".
WRITTEN_COLOURS = ColourTags(matrix='smpte170m', primaries='bt709', transfer='iec61966-2-1', range='tv')

# FFmpeg's AVColorSpace / AVColorPrimaries / AVColorTransferCharacteristic / AVColorRange codes.
_MATRICES = {
    0: 'gbr',
    1: 'bt709',
    2: 'unknown',
    4: 'fcc',
    5: 'bt470bg',
    6: 'smpte170m',
    7: 'smpte240m',
    8: 'ycgco',
    9: 'bt2020nc',
    10: 'bt2020c',
}
_PRIMARIES = {
    1: 'bt709',
    2: 'unknown',
    4: 'bt470m',
    5: 'bt470bg',
    6: 'smpte170m',
    7: 'smpte240m',
    8: 'film',
    9: 'bt2020',
    11: 'smpte431',
    12: 'smpte432',
}
_TRANSFERS = {
    1: 'bt709',
    2: 'unknown',
    4: 'gamma22',
    5: 'gamma28',
    6: 'smpte170m',
    7: 'smpte240m',
    8: 'linear',
    13: 'iec61966-2-1',
    14: 'bt2020-10',
    15: 'bt2020-12',
    16: 'smpte2084',
    18: 'arib-std-b67',
}
_RANGES = {0: 'unknown', 1: 'tv', 2: 'pc'}
# swscale's matrix for each tagged one. An untagged (or unusual) matrix is decoded as BT.601, as
# OpenCV, swscale and Chromium do, so every reader of such a file agrees with ours.
_SWS_MATRIX = {
    'bt709': 'ITU709',
    'fcc': 'FCC',
    'bt470bg': 'ITU601',
    'smpte170m': 'SMPTE170M',
    'smpte240m': 'SMPTE240M',
    'bt2020nc': 'BT2020',
    'bt2020c': 'BT2020',
}


def _code(table: dict, name: str) -> int:
    return next(code for code, known in table.items() if known == name)


def colour_tags(frame_or_context) -> ColourTags:
    """The colour tags of a decoded frame or a codec context (unknown codes read 'unknown')."""
    return ColourTags(
        matrix=_MATRICES.get(frame_or_context.colorspace, 'unknown'),
        primaries=_PRIMARIES.get(frame_or_context.color_primaries, 'unknown'),
        transfer=_TRANSFERS.get(frame_or_context.color_trc, 'unknown'),
        range=_RANGES.get(frame_or_context.color_range, 'unknown'),
    )


def to_rgb(frame: av.VideoFrame) -> np.ndarray:
    """RGB pixels of a decoded frame, converted with the matrix and range the frame is tagged with.

    Untagged matrices decode as BT.601 and untagged ranges as limited, FFmpeg's and OpenCV's defaults.
    """
    tags = colour_tags(frame)
    return frame.to_ndarray(
        format='rgb24',
        interpolation=_TO_RGB,
        src_colorspace=_SWS_MATRIX.get(tags.matrix, 'SMPTE170M'),
        src_color_range='JPEG' if tags.range == 'pc' else 'MPEG',
    )


@dataclass(frozen=True)
class VideoInfo:
    frame_count: int
    width: int
    height: int
    fps: float
    codec: str
    frame_count_source: str  # 'header' or 'decoded'
    colours: ColourTags | None = None  # as the stream is tagged; WRITTEN_COLOURS for videos written here


@dataclass(frozen=True)
class CodecSpec:
    encoder: str
    container: str
    suffix: str
    even_size: bool  # yuv420p in H.264 needs even width and height; VP9 does not
    options: dict


# Near-lossless (crf 12 / 15): frames exported from these videos become training images, so quality
# beats size (about 5 MB per 100 noisy 640x480 frames, see benchmarks/frames_to_video.py). No B-frames
# in H.264, so there is no composition offset or edit list for players to apply differently. VP9 uses
# libvpx's realtime mode: about 10x faster than 'good' on this machine at the same quality, files about
# a third larger. VideoWriter adds a key frame every second (fast frame stepping in the labeling UI).
CODECS = {
    'h264': CodecSpec('libx264', 'mp4', '.mp4', True, {'crf': '12', 'preset': 'veryfast', 'bf': '0'}),
    'vp9': CodecSpec(
        'libvpx-vp9',
        'webm',
        '.webm',
        False,
        {'crf': '15', 'b': '0', 'deadline': 'realtime', 'cpu-used': '8', 'row-mt': '1'},
    ),
}


# Demuxers of real video containers (FFmpeg names; a name may list several). Anything else is refused:
# playlist and indirection demuxers (hls, dash, concat, image2 sequences, ...) open further files or
# URLs named inside a user's file, so an uploaded "video" could read another organization's upload.
VIDEO_DEMUXERS = ('mov,mp4,m4a,3gp,3g2,mj2', 'matroska,webm', 'avi', 'mpegts', 'ogg', 'flv', 'mpeg', 'asf')


class UnsafeVideo(ValueError):
    """A user's file whose container is not a plain video file (a playlist, a concat list, ...)."""


def open_video(path: str | os.PathLike):
    """Open a user's video for reading: local file protocol only, real video containers only.

    Every read of a user-supplied file goes through here. FFmpeg's defaults would let a playlist
    (`#EXTM3U`) or a concat list fetch what it names; `protocol_whitelist=file` keeps nested opens
    local and `format_whitelist` refuses those demuxers before they open anything. The container's
    demuxer is checked again after opening (raises `UnsafeVideo`).
    """
    options = {'protocol_whitelist': 'file', 'format_whitelist': ','.join(VIDEO_DEMUXERS), 'enable_drefs': '0'}
    try:
        container = av.open(os.path.abspath(path), container_options=options)
    except av.ArgumentError as error:  # EINVAL: FFmpeg's "Format ... not on whitelist"
        raise UnsafeVideo(f'{path} is not a video file of a known container (a playlist or file list?)') from error
    if container.format.name not in VIDEO_DEMUXERS:
        container.close()
        raise UnsafeVideo(f'{path} is a {container.format.name!r} file, not a video container')
    return container


def probe(path: str | os.PathLike) -> VideoInfo:
    """Frame count, size, frame rate, codec and colour tags of the first video stream.

    The header's frame count is used when it agrees with the stream's duration; otherwise (WebM has no
    count, some muxers write wrong ones) the frames are decoded and counted.
    """
    with open_video(path) as container:
        stream = _video_stream(container, path)
        rate = stream.average_rate or stream.guessed_rate
        info = dict(
            width=stream.codec_context.width,
            height=stream.codec_context.height,
            fps=float(rate) if rate else 0.0,
            codec=stream.codec_context.name,
            colours=colour_tags(stream.codec_context),
        )
        if _header_count_trusted(stream, rate):
            return VideoInfo(frame_count=stream.frames, frame_count_source='header', **info)
        stream.thread_type = 'AUTO'
        count = sum(1 for _ in container.decode(stream))
    return VideoInfo(frame_count=count, frame_count_source='decoded', **info)


def _video_stream(container, path):
    if not container.streams.video:
        raise ValueError(f'{path} has no video stream')
    return container.streams.video[0]


def _header_count_trusted(stream, rate) -> bool:
    if stream.frames <= 0:
        return False
    if not (stream.duration and stream.time_base and rate):
        return True
    return abs(float(stream.duration * stream.time_base * rate) - stream.frames) <= 1


def iter_frames(path: str | os.PathLike, ui_frames: Iterable[int]) -> Iterator[tuple[int, np.ndarray]]:
    """Yield ``(ui_frame, rgb)`` for strictly increasing 1-based UI frames; UI frame f is decoded frame f-1.

    Decodes once from the start without seeking (seeks land on key frames and would need timestamp
    arithmetic that breaks on imperfect files); only requested frames are converted to RGB and
    decoding stops after the last one. Raises ValueError for a frame past the end of the video.
    """
    wanted = iter(ui_frames)
    target = _next_request(wanted, 0)
    if target is None:
        return
    decoded = 0
    with open_video(path) as container:
        stream = _video_stream(container, path)
        stream.thread_type = 'AUTO'
        for decoded, frame in enumerate(container.decode(stream), start=1):
            if decoded == target:
                yield target, to_rgb(frame)
                target = _next_request(wanted, target)
                if target is None:
                    return
    raise ValueError(f'UI frame {target} is past the end of {path} ({decoded} frames)')


def _next_request(wanted: Iterator[int], previous: int) -> int | None:
    frame = next(wanted, None)
    if frame is not None and frame <= previous:
        raise ValueError(f'UI frames must be increasing and 1-based: got {frame} after {previous}')
    return frame


def encode_jpeg(array: np.ndarray, quality: int = 90) -> bytes:
    """JPEG bytes of an RGB frame (for per-frame image exports)."""
    ok, data = cv2.imencode('.jpg', cv2.cvtColor(array, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise ValueError('JPEG encoding failed')
    return data.tobytes()


class VideoWriter:
    """Writes RGB frames into a browser-playable video (H.264/MP4 or VP9/WebM).

    Frame ``i`` gets timestamp ``i / fps`` exactly (MP4; WebM rounds to its 1 ms clock, far below
    the 2 ms step that Label Studio adds when seeking), so decoded frame i is written frame i. All
    frames must have the first frame's size. Where the codec needs even sizes, the last row/column is
    repeated at the bottom/right: pixel coordinates of the source stay valid, nothing is cut off.
    Colours are converted with BT.601 (limited range) and tagged so (`WRITTEN_COLOURS`): the one
    matrix that readers ignoring the tags (OpenCV) and readers honouring them (browsers) both get right.
    The file is written under a temporary name and moved onto ``path`` (replacing it) only when
    ``close()`` succeeds, so a failed or interrupted run never leaves a truncated video at ``path``.
    """

    def __init__(self, path: str | os.PathLike, fps: float | Fraction, codec: str = 'h264', crf: int | None = None):
        if codec not in CODECS:
            raise ValueError(f'unknown codec {codec!r}; choose from {sorted(CODECS)}')
        self.path = Path(path)
        self.fps = Fraction(fps).limit_denominator(1001)
        if self.fps <= 0:
            raise ValueError(f'fps must be positive, got {fps}')
        self.spec = CODECS[codec]
        self.options = dict(self.spec.options, g=str(max(1, round(self.fps))))
        if crf is not None:
            self.options['crf'] = str(crf)
        self.frame_count = 0
        self.width = self.height = None  # of the video, after padding
        self._source_shape = None
        self._tmp = self.path.with_name(f'.{self.path.name}.part')
        self._container = self._stream = None

    def write(self, image: np.ndarray) -> None:
        if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
            raise ValueError(f'expected an HxWx3 uint8 RGB array, got {image.dtype} {image.shape}')
        if self._container is None:
            self._open(image.shape)
        elif image.shape != self._source_shape:
            raise ValueError(f'frame {self.frame_count} is {image.shape}, expected {self._source_shape}')
        pad_h, pad_w = self.height - image.shape[0], self.width - image.shape[1]
        if pad_h or pad_w:
            image = np.pad(image, ((0, pad_h), (0, pad_w), (0, 0)), mode='edge')
        frame = av.VideoFrame.from_ndarray(image, format='rgb24').reformat(
            format='yuv420p',
            dst_colorspace=_SWS_MATRIX[WRITTEN_COLOURS.matrix],
            dst_color_range='MPEG',
            interpolation=_TO_YUV,
        )
        frame.pts = self.frame_count
        self._container.mux(self._stream.encode(frame))
        self.frame_count += 1

    def _open(self, shape: tuple[int, ...]) -> None:
        height, width = shape[:2]
        if self.spec.even_size:
            height, width = height + height % 2, width + width % 2
        self._source_shape, self.height, self.width = shape, height, width
        options = {'movflags': '+faststart'} if self.spec.container == 'mp4' else {}
        self._container = av.open(str(self._tmp), 'w', format=self.spec.container, options=options)
        self._stream = self._container.add_stream(self.spec.encoder, rate=self.fps, options=self.options)
        self._stream.width, self._stream.height, self._stream.pix_fmt = width, height, 'yuv420p'
        context = self._stream.codec_context
        context.colorspace = _code(_MATRICES, WRITTEN_COLOURS.matrix)
        context.color_primaries = _code(_PRIMARIES, WRITTEN_COLOURS.primaries)
        context.color_trc = _code(_TRANSFERS, WRITTEN_COLOURS.transfer)
        context.color_range = _code(_RANGES, WRITTEN_COLOURS.range)

    def close(self) -> None:
        """Flush the encoder and move the finished file onto ``path``."""
        if self._container is None:
            raise ValueError(f'no frames written to {self.path}')
        try:
            self._container.mux(self._stream.encode(None))
            self._container.close()
            self._container = None
            os.replace(self._tmp, self.path)
        except BaseException:
            self.abort()
            raise

    def abort(self) -> None:
        """Drop the partial file."""
        if self._container is not None:
            try:
                self._container.close()
            except av.FFmpegError:
                pass
            self._container = None
        self._tmp.unlink(missing_ok=True)

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


def encode_frames(
    images: Iterable[np.ndarray],
    out_path: str | os.PathLike,
    fps: float | Fraction,
    codec: str = 'h264',
    crf: int | None = None,
) -> int:
    """Encode RGB frames into ``out_path`` (see VideoWriter); returns the number of frames written."""
    with VideoWriter(out_path, fps, codec=codec, crf=crf) as writer:
        for image in images:
            writer.write(image)
    return writer.frame_count
