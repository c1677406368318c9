"""Writing an export out: as an iterator of byte chunks for an HTTP response, or into a file for a snapshot.

`stream_export` runs the writer in a thread behind a bounded queue, so a response streams while memory
stays flat; both close the track sets' frame readers when done.
"""

from __future__ import annotations

import io
import logging
import queue
import threading
from collections.abc import Iterator
from dataclasses import dataclass

from ..formats import Exporter, VideoExport
from .reader import FrameReader

logger = logging.getLogger(__package__)  # `ls_extensions.video.export`, the name it logged under as one module


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
