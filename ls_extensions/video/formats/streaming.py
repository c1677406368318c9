"""Shared plumbing of the writers: validation up front, lazy per-track chunks, streamed zip members."""

from __future__ import annotations

import json
import re
import time
import zipfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import BinaryIO

from ..interpolation import ExpansionPlan, FrameBoxes, MalformedSequence, iter_expanded
from .model import ExportSummary, MissingVideoInfo, TaskSummary, Track, VideoExport, VideoTrackSet


@dataclass
class PreparedTask:
    """A task whose tracks passed validation, with the summary entry its writer fills in."""

    track_set: VideoTrackSet
    tracks: list[tuple[Track, ExpansionPlan | FrameBoxes]]
    summary: TaskSummary
    chunk_frames: int

    def chunks(self, source: ExpansionPlan | FrameBoxes) -> Iterator[FrameBoxes]:
        """The track's boxes over the whole video, chunk by chunk, counted in the summary."""
        for chunk in iter_expanded(source, self.track_set.frame_count, self.chunk_frames):
            self.summary.boxes += len(chunk)
            yield chunk

    def windows(self) -> Iterator[tuple[int, int, list[tuple[Track, FrameBoxes]]]]:
        """Frame windows with every track's boxes in them, for formats written frame by frame."""
        count = self.track_set.frame_count
        for lo in range(1, count + 1, self.chunk_frames):
            hi = min(lo + self.chunk_frames - 1, count)
            boxes = [(track, source.expand(lo, hi)) for track, source in self.tracks]
            self.summary.boxes += sum(len(b) for _, b in boxes)
            yield lo, hi, boxes


def prepare(export: VideoExport, format_name: str, needs_pixels: bool) -> tuple[ExportSummary, list[PreparedTask]]:
    """Check every task before the first byte is written; malformed tracks are skipped with a warning."""
    summary = ExportSummary(format_name)
    tasks = []
    for track_set in export.track_sets:
        if needs_pixels and not track_set.has_size:
            raise MissingVideoInfo(track_set.task_id, track_set.video)
        task_summary = TaskSummary(
            track_set.task_id,
            track_set.video,
            track_set.frame_count,
            track_set.frame_count_source,
            warnings=list(track_set.warnings),
        )
        tracks = []
        for track in track_set.tracks:
            if not 0 <= track.label_id < len(export.labels):
                raise ValueError(
                    f'task {track_set.task_id}, track {track.track_id}: label_id {track.label_id} '
                    f'is not an index of the {len(export.labels)} labels'
                )
            try:
                tracks.append((track, track.source()))
            except MalformedSequence as error:
                task_summary.warnings.append(f'track {track.track_id} ({track.label}) skipped: {error}')
        task_summary.tracks = len(tracks)
        summary.tasks.append(task_summary)
        tasks.append(PreparedTask(track_set, tracks, task_summary, export.chunk_frames))
    return summary, tasks


def video_stems(tasks: list[PreparedTask]) -> list[str]:
    """Folder-safe, unique names per video (file stem; the task id is added on a clash)."""
    stems, seen = [], set()
    for task in tasks:
        name = task.track_set.video.split('?')[0].rstrip('/').rsplit('/', 1)[-1]
        stem = re.sub(r'[^A-Za-z0-9._-]+', '_', name.rsplit('.', 1)[0] if '.' in name else name).strip('._')
        stem = stem or f'task_{task.track_set.task_id}'
        if stem in seen:
            stem = f'{stem}_{task.track_set.task_id}'
        seen.add(stem)
        stems.append(stem)
    return stems


def open_zip(out: BinaryIO) -> zipfile.ZipFile:
    """Deflate level 1: exports are written while the user waits, and text shrinks well enough at it."""
    return zipfile.ZipFile(out, 'w', compression=zipfile.ZIP_DEFLATED, compresslevel=1)


def write_member(archive: zipfile.ZipFile, name: str, pieces: Iterable[str | bytes], compress: bool = True) -> None:
    """Stream one zip member piece by piece (zip64 since its size is not known in advance)."""
    member = name if compress else zipfile.ZipInfo(name, time.localtime()[:6])  # JPEGs are stored as they are
    with archive.open(member, 'w', force_zip64=True) as stream:
        for piece in pieces:
            stream.write(piece.encode() if isinstance(piece, str) else piece)


def write_summary(archive: zipfile.ZipFile, summary: ExportSummary) -> None:
    write_member(archive, 'summary.json', [json.dumps(summary.to_dict(), indent=2)])


def px(value: float) -> str:
    """Pixels with two decimals, as CVAT writes them."""
    return f'{value:.2f}'


class JsonArray:
    """A JSON array written as it is produced: `parts` yields runs of already-encoded items, comma-joined."""

    def __init__(self, parts: Iterable[str]):
        self.parts = parts


def dump_json(value, write) -> None:
    """`json.dump` that writes `JsonArray`s lazily, so the large arrays never sit in memory.

    A callable value is called when reached, for what is only known after what precedes it.
    """
    if callable(value):
        dump_json(value(), write)
    elif isinstance(value, JsonArray):
        write('[')
        separator = ''
        for part in value.parts:
            if part:
                write(separator + part)
                separator = ', '
        write(']')
    elif isinstance(value, dict):
        write('{')
        for index, (key, item) in enumerate(value.items()):
            write((', ' if index else '') + json.dumps(str(key)) + ': ')
            dump_json(item, write)
        write('}')
    elif isinstance(value, (list, tuple)):
        write('[')
        for index, item in enumerate(value):
            write(', ' if index else '')
            dump_json(item, write)
        write(']')
    else:
        write(json.dumps(value))


def text_writer(out: BinaryIO):
    """`write(str)` onto a binary stream."""
    return lambda text: out.write(text.encode())
