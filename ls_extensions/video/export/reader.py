"""Reading an exported video file: its probe (remembered per file version) and its frames as JPEGs.

`FrameReader` is what the image formats (YOLO, MOT with images) get as a track set's `frame_images`.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Iterator
from functools import lru_cache
from pathlib import Path

from ..frames import encode_jpeg, iter_frames, probe


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
