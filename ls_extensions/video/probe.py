"""How a video's timing looks to Label Studio's player, and why its frame numbers would be wrong there.

Label Studio 1.23's UI seeks UI frame ``f`` to ``round((f - 1) / fps / 2 ms) * 2 ms + 2 ms``
(``goToFrame``/``frameSteppedTime`` in its frontend, ``fps`` = the project's ``<Video frameRate>``) and
the browser shows the last frame whose timestamp is at or before that time: the first frame before it
starts (Chromium keeps a positive first timestamp, LS issue #4714). Our export assumes UI frame ``f``
is decoded frame ``f - 1``. A camera file breaks that when its timestamps do not sit on that grid:
a variable frame rate, a first timestamp that is not zero, another fps than the project's.

``inspect_video`` reads every timestamp once (decoded frames, or packets through a small reorder
buffer when ``decode=False``) with bounded memory, and counts the UI frames that would show another
frame than the export assumes. Free of Django: the command, the importer and the tests share it.
"""

from __future__ import annotations

import heapq
import math
import os
from collections import Counter
from dataclasses import asdict, dataclass, field
from fractions import Fraction

from ls_extensions.video.frames import colour_tags, open_video

# What a folder is searched for and an upload is checked by (case-insensitive); files named on the command
# line are tried whatever their name, and anything not a plain video container is refused by open_video.
VIDEO_SUFFIXES = ('.mp4', '.m4v', '.mov', '.mkv', '.webm', '.avi', '.mts', '.m2ts', '.ts', '.mpg', '.mpeg', '.wmv')
SEEK_STEP = 0.002  # seconds; Label Studio's frontend rounds seeks to it and adds one step
MILLISECOND = Fraction(1, 1000)  # frame durations within it are one rate (1 ms clocks write 33, 34, 33 ms)
REORDER_DEPTH = 32  # packets held to put decode-order pts in presentation order (B-frame depth <= 16)
MAX_DISTINCT_DURATIONS = 256  # frame durations counted exactly; rarer ones only widen min/max
BROWSER_CODECS = {  # codec -> container families Chrome and Firefox play it in
    'h264': ('mov,mp4,m4a,3gp,3g2,mj2',),
    'av1': ('mov,mp4,m4a,3gp,3g2,mj2', 'matroska,webm'),
    'vp9': ('mov,mp4,m4a,3gp,3g2,mj2', 'matroska,webm'),
    'vp8': ('matroska,webm',),
}
BROWSER_PIXEL_FORMATS = ('yuv420p', 'yuvj420p')  # 10-bit or 4:2:2/4:4:4 H.264 does not play in browsers


def ui_seek_time(ui_frame: int, fps: float) -> float:
    """Where Label Studio's player seeks for 1-based UI frame ``ui_frame`` (JS ``Math.round``: halves up)."""
    return math.floor((ui_frame - 1) / fps / SEEK_STEP + 0.5) * SEEK_STEP + SEEK_STEP


def first_ui_frame_at_or_after(time: float, fps: float) -> int:
    """The smallest UI frame whose seek time is >= ``time`` (UI frames before it show earlier frames)."""
    f = max(1, math.floor((time - SEEK_STEP) * fps) + 1)
    while f > 1 and ui_seek_time(f - 1, fps) >= time:
        f -= 1
    while ui_seek_time(f, fps) < time:
        f += 1
    return f


@dataclass
class Misalignment:
    """UI frames that show another decoded frame than ``f - 1``, counted range by range (O(1) per frame)."""

    next_ui_frame: int = 1
    count: int = 0
    example: tuple[int, int] | None = None  # (UI frame, decoded frame it shows)

    def shown_until(self, end_ui_frame: int, shown: int) -> None:
        """UI frames ``next_ui_frame .. end_ui_frame - 1`` all show decoded frame ``shown``."""
        start, end = self.next_ui_frame, end_ui_frame
        if end <= start:
            return
        self.count += end - start - (1 if start <= shown + 1 < end else 0)
        if self.example is None:
            wrong = start if start - 1 != shown else start + 1
            if wrong < end:
                self.example = (wrong, shown)
        self.next_ui_frame = end


@dataclass
class VideoFacts:
    """What a probe found; times in seconds, frame counts of the first video stream."""

    path: str
    container: str = ''
    codec: str = ''
    pixel_format: str = ''
    width: int = 0
    height: int = 0
    rotation: int = 0  # degrees (display matrix of phones; decoded probes only): browsers apply it, we do not
    average_fps: float = 0.0
    real_fps: float = 0.0  # FFmpeg's r_frame_rate: the lowest rate all timestamps fit
    measured_fps: float = 0.0  # frames / (end_time - first_timestamp): what the timestamps say
    header_frame_count: int = 0  # 0 when the container has none (WebM)
    counted_frames: int = 0  # decoded frames, or packets when not decoded
    counted_by: str = 'decode'  # 'decode' or 'packets'
    first_timestamp: float | None = None
    end_time: float | None = None  # last timestamp + its duration: the duration a browser reports
    frame_duration: float | None = None  # the most common one
    min_frame_duration: float | None = None
    max_frame_duration: float | None = None
    irregular_durations: int = 0  # frame durations off the most common one by more than 1 ms, a tick and 1 %
    backwards_timestamps: int = 0
    missing_timestamps: int = 0
    variable_frame_rate: bool = False
    colour: dict = field(default_factory=dict)  # primaries, transfer, matrix, range as ffprobe names them

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class Verdict:
    """Whether a file lines up with a project's frame rate in Label Studio, and each reason it does not."""

    fps: float
    ui_length: int = 0  # Label Studio's round(duration * fps)
    misaligned_ui_frames: int = 0
    reasons: list[str] = field(default_factory=list)  # each one short sentence
    notes: list[str] = field(default_factory=list)  # facts that do not move frames (colour tags)

    @property
    def needs_reencode(self) -> bool:
        return bool(self.reasons)


class _Durations:
    """Frame durations in timebase ticks: exact counts of the common ones, min/max of all (bounded)."""

    def __init__(self):
        self.counts, self.min, self.max, self.total = Counter(), None, None, 0

    def add(self, ticks: int) -> None:
        if ticks in self.counts or len(self.counts) < MAX_DISTINCT_DURATIONS:
            self.counts[ticks] += 1
        self.min = ticks if self.min is None else min(self.min, ticks)
        self.max = ticks if self.max is None else max(self.max, ticks)
        self.total += 1


def _presentation_pts(container, stream, decode: bool):
    """``(pts, frame)`` in presentation order: pts None for a frame without one, frame None for packets."""
    if decode:
        stream.thread_type = 'AUTO'
        for frame in container.decode(stream):
            yield frame.pts, frame
        return
    pending = []
    for packet in container.demux(stream):
        if packet.size == 0 or packet.is_discard:
            continue  # the flush packet, or one an edit list drops
        if packet.pts is None:
            yield None, None
            continue
        heapq.heappush(pending, packet.pts)
        if len(pending) > REORDER_DEPTH:
            yield heapq.heappop(pending), None
    while pending:
        yield heapq.heappop(pending), None


def inspect_video(path: str | os.PathLike, decode: bool = True) -> VideoFacts:
    """Probe the first video stream of ``path`` (raises ``UnsafeVideo``/``ValueError``/``av.FFmpegError``).

    ``decode=False`` reads packets only (10x faster at 640x480, more for larger frames; the count is of
    packets and the rotation is not read): enough for the timing verdict, used where a probe must stay
    cheap (imports).
    """
    with open_video(path) as container:
        if not container.streams.video:
            raise ValueError(f'{path} has no video stream')
        stream = container.streams.video[0]
        context = stream.codec_context
        facts = VideoFacts(
            path=str(path),
            container=container.format.name,
            codec=context.name,
            pixel_format=context.format.name if context.format else '',
            width=context.width,
            height=context.height,
            average_fps=float(stream.average_rate or 0),
            real_fps=float(stream.base_rate or 0),
            header_frame_count=max(stream.frames, 0),
            counted_by='decode' if decode else 'packets',
        )
        _read_timing(facts, container, stream, decode)
        facts.colour = asdict(colour_tags(context))
    return facts


def _read_timing(facts: VideoFacts, container, stream, decode: bool) -> None:
    tick = stream.time_base or Fraction(1, 90000)
    durations = _Durations()
    first = previous = None
    for pts, frame in _presentation_pts(container, stream, decode):
        facts.counted_frames += 1
        if frame is not None and facts.counted_frames == 1:
            facts.rotation = int(frame.rotation or 0)
        if pts is None:
            facts.missing_timestamps += 1
            continue
        if first is None:
            first = pts
        elif pts <= previous:
            facts.backwards_timestamps += 1
            continue
        else:
            durations.add(pts - previous)
        previous = pts
    if first is None:
        return
    facts.first_timestamp = float(first * tick)
    if durations.total:
        nominal = durations.counts.most_common(1)[0][0]
        tolerance = max(1, nominal / 100, MILLISECOND / tick)
        facts.frame_duration = float(nominal * tick)
        facts.min_frame_duration, facts.max_frame_duration = float(durations.min * tick), float(durations.max * tick)
        facts.irregular_durations = sum(n for ticks, n in durations.counts.items() if abs(ticks - nominal) > tolerance)
        if durations.min < nominal - tolerance or durations.max > nominal + tolerance:
            facts.irregular_durations = max(facts.irregular_durations, 1)  # an uncounted rare one
        facts.variable_frame_rate = facts.irregular_durations > 0
        last_duration = nominal
    else:
        last_duration = 1 / Fraction(facts.average_fps or 25).limit_denominator(1001) / tick
    facts.end_time = float((previous + last_duration) * tick)
    span = facts.end_time - facts.first_timestamp
    facts.measured_fps = (durations.total + 1) / span if span > 0 else 0.0


def playback_timeline(path: str | os.PathLike, decode: bool = True):
    """Yield ``(time, frame)`` in presentation order as Chromium places them: a negative start moves to 0.

    ``frame`` is the decoded ``av.VideoFrame`` (None with ``decode=False``); frames without a timestamp
    or with one not after the previous frame's are skipped (browsers do not show them in order).
    """
    with open_video(path) as container:
        if not container.streams.video:
            raise ValueError(f'{path} has no video stream')
        stream = container.streams.video[0]
        tick = stream.time_base or Fraction(1, 90000)
        shift = previous = None
        for pts, frame in _presentation_pts(container, stream, decode):
            if pts is None or (previous is not None and pts <= previous):
                continue
            if shift is None:
                shift = -pts if pts < 0 else 0
            previous = pts
            yield float((pts + shift) * tick), frame


def count_misaligned(times, fps: float, ui_length: int) -> Misalignment:
    """Misalignment over presentation ``times`` (seconds, increasing) for UI frames 1..ui_length."""
    tally = Misalignment()
    index = -1
    for index, time in enumerate(times):
        end = min(first_ui_frame_at_or_after(time, fps), ui_length + 1)
        tally.shown_until(end, max(index - 1, 0))
    if index >= 0:
        tally.shown_until(ui_length + 1, index)
    return tally


def verdict(facts: VideoFacts, fps: float, times=None) -> Verdict:
    """What would mis-align in Label Studio at project frame rate ``fps``, each reason one sentence.

    ``times``: the file's presentation times (``playback_timeline``); without them the UI frames are
    not counted and the reasons come from the facts alone.
    """
    result = Verdict(fps=float(fps))
    if facts.end_time is not None:
        result.ui_length = max(1, round(facts.end_time * fps))
    reasons = result.reasons
    playable = BROWSER_CODECS.get(facts.codec, ())
    if facts.container not in playable:
        reasons.append(f'{facts.codec} in a {facts.container.split(",")[0]} file does not play in common browsers.')
    elif facts.codec == 'h264' and facts.pixel_format not in BROWSER_PIXEL_FORMATS:
        reasons.append(f'H.264 in {facts.pixel_format} does not play in common browsers (they need yuv420p).')
    if facts.first_timestamp is None:
        reasons.append('no frame has a timestamp.')
        return result
    rate = facts.measured_fps or facts.average_fps
    if rate and abs(rate - fps) > fps / 1000:
        reasons.append(f'it plays at {rate:.4g} fps, the project at {float(fps):g} fps.')
    if facts.variable_frame_rate:
        reasons.append(
            f'variable frame rate: {facts.irregular_durations} frame durations differ from '
            f'{facts.frame_duration * 1000:.1f} ms (from {facts.min_frame_duration * 1000:.1f} '
            f'to {facts.max_frame_duration * 1000:.1f} ms).'
        )
    if facts.first_timestamp > SEEK_STEP:
        frames = facts.first_timestamp * fps
        reasons.append(
            f'the first frame is at {facts.first_timestamp:.3f} s, not 0: browsers show it until then, '
            f'{frames:.3g} UI frame(s) too late.'
        )
    if facts.backwards_timestamps or facts.missing_timestamps:
        reasons.append(
            f'{facts.backwards_timestamps + facts.missing_timestamps} frame(s) have no timestamp or one '
            'before the previous frame (browsers skip or reorder them).'
        )
    if facts.counted_by == 'decode' and facts.header_frame_count and facts.header_frame_count != facts.counted_frames:
        reasons.append(f'the header says {facts.header_frame_count} frames, decoding gives {facts.counted_frames}.')
    if facts.rotation:
        reasons.append(
            f'rotated {facts.rotation} degrees by metadata: browsers turn it, our decoder does not (boxes would not match).'
        )
    if times is not None:
        tally = count_misaligned(times, fps, result.ui_length)
        result.misaligned_ui_frames = tally.count
        if tally.count:
            ui_frame, shown = tally.example
            reasons.append(
                f'{tally.count} of {result.ui_length} UI frames show another frame than the export assumes '
                f'(UI frame {ui_frame} shows decoded frame {shown}, not {ui_frame - 1}).'
            )
    counted = facts.counted_frames - facts.backwards_timestamps - facts.missing_timestamps
    if result.ui_length != counted and not any('UI frames' in r for r in reasons) and times is not None:
        reasons.append(f'Label Studio counts {result.ui_length} frames, the file has {counted}.')
    if facts.colour.get('matrix') in ('unknown', None):
        result.notes.append('no colour matrix tag: players have to guess how to convert its colours.')
    return result


def check_alignment(path: str | os.PathLike, fps: float, decode: bool = True) -> tuple[VideoFacts, Verdict]:
    """Probe and judge ``path`` for a project playing at ``fps`` (two passes over the file's timestamps)."""
    facts = inspect_video(path, decode=decode)
    times = (time for time, _ in playback_timeline(path, decode=False))
    return facts, verdict(facts, fps, times)
