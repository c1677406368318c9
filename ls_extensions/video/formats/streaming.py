"""Shared plumbing of the writers: validation up front, lazy per-track chunks, streamed zip members."""

from __future__ import annotations

import json
import re
import time
import zipfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, fields, replace
from typing import BinaryIO

import numpy as np

from ..interpolation import ExpansionPlan, FrameBoxes, MalformedSequence, iter_expanded
from .model import ExportSummary, MissingVideoInfo, TaskSummary, Track, VideoExport, VideoTrackSet


@dataclass
class PreparedTask:
    """A task whose tracks passed validation, with the summary entry its writer fills in.

    With `frame_stride` > 1 only frames 1, 1 + stride, ... are exported (`frames()`), and a box's
    `continues` tells whether the box is on the next exported frame.
    """

    track_set: VideoTrackSet
    tracks: list[tuple[Track, ExpansionPlan | FrameBoxes]]
    summary: TaskSummary
    chunk_frames: int
    frame_stride: int = 1

    def frames(self, lo: int, hi: int) -> range:
        """The exported frames among lo..hi (1-based, inclusive)."""
        return range(lo + (1 - lo) % self.frame_stride, hi + 1, self.frame_stride)

    def _sampled(self, source: ExpansionPlan | FrameBoxes, boxes: FrameBoxes) -> FrameBoxes:
        stride = self.frame_stride
        if stride == 1 or not len(boxes):
            return boxes
        keep = np.flatnonzero((boxes.frame - 1) % stride == 0)
        kept = FrameBoxes(*(getattr(boxes, f.name)[keep] for f in fields(FrameBoxes)))
        if len(kept):
            frame = kept.frame
            continues = np.append(frame[1:] == frame[:-1] + stride, False)
            after = int(frame[-1]) + stride
            continues[-1] = source.next_visible(after) == after
            kept = replace(kept, continues=continues)
        return kept

    def chunks(self, source: ExpansionPlan | FrameBoxes) -> Iterator[FrameBoxes]:
        """The track's boxes over the whole video, chunk by chunk, counted in the summary."""
        for chunk in iter_expanded(source, self.track_set.frame_count, self.chunk_frames):
            chunk = self._sampled(source, chunk)
            if len(chunk):
                self.summary.boxes += len(chunk)
                yield chunk

    def windows(self) -> Iterator[tuple[int, int, list[tuple[Track, FrameBoxes]]]]:
        """Frame windows with every track's boxes in them, for formats written frame by frame."""
        count = self.track_set.frame_count
        for lo in range(1, count + 1, self.chunk_frames):
            hi = min(lo + self.chunk_frames - 1, count)
            boxes = [(track, self._sampled(source, source.expand(lo, hi))) for track, source in self.tracks]
            self.summary.boxes += sum(len(b) for _, b in boxes)
            yield lo, hi, boxes


def prepare(export: VideoExport, format_name: str, needs_pixels: bool) -> tuple[ExportSummary, list[PreparedTask]]:
    """Check every task before the first byte is written; malformed tracks are skipped with a warning."""
    version = export.model_version if export.predicted else None
    summary = ExportSummary(
        format_name, frame_stride=export.frame_stride, skipped=list(export.skipped), model_version=version
    )
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
        tasks.append(PreparedTask(track_set, tracks, task_summary, export.chunk_frames, export.frame_stride))
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


Column = str | tuple[np.ndarray, int]  # literal text, or (numbers, decimals): '%d' for 0, else '%.<decimals>f'
_DIGITS_EXACT = 2.0**52  # below this, a scaled double's integer part and the rounding are exact


def _template(parts: list[Column]) -> str:
    return ''.join(p.replace('%', '%%') if isinstance(p, str) else '%d' if p[1] == 0 else f'%.{p[1]}f' for p in parts)


def _scaled(values: np.ndarray, decimals: int) -> tuple[np.ndarray, np.ndarray] | None:
    """(negative, magnitude) with `'%.<decimals>f' % value` == sign + magnitude / 10**decimals; None: too large."""
    if decimals == 0:
        if values.dtype.kind not in 'iu':
            raise TypeError('a column with 0 decimals must hold integers (as with %d)')
        values = values.astype(np.int64)
        if len(values) and np.abs(values).max() >= _DIGITS_EXACT:
            return None
        return values < 0, np.abs(values)
    values = values.astype(np.float64)
    scaled = np.abs(values) * 10.0**decimals
    if len(values) and not (scaled.max() < _DIGITS_EXACT):  # also catches NaN and infinities
        return None
    magnitude = np.rint(scaled)  # half to even, as printf on exact ties
    # printf rounds the double's exact decimal value; near a tie the product above may have rounded
    # to the other side, so those few values (within a few ulps of a tie) are formatted by Python itself
    near_tie = np.abs(np.abs(scaled - magnitude) - 0.5) <= scaled * 1e-15 + 1e-300
    for index in np.flatnonzero(near_tie).tolist():
        magnitude[index] = int(f'{abs(values[index]):.{decimals}f}'.replace('.', ''))
    return np.signbit(values), magnitude.astype(np.int64)


def format_rows(parts: list[Column]) -> bytes:
    """Text rows from numeric columns in one go with NumPy, byte for byte what `template % row` gives.

    `parts` alternates literal text (the same on every row, e.g. ',' or '\\n'; no NUL bytes) and
    `(array, decimals)` columns of equal length. Each column is written as right-aligned digits into
    one byte matrix whose unused leading positions stay NUL and are dropped at the end; a few times
    faster than formatting row by row in Python.
    """
    columns = [p for p in parts if not isinstance(p, str)]
    rows = len(columns[0][0]) if columns else 0
    if not rows:
        return b''
    fields = []
    for part in parts:
        if isinstance(part, str):
            fields.append(part.encode())
            continue
        scaled = _scaled(np.asarray(part[0]), part[1])
        if scaled is None:  # beyond exact doubles: plain Python formatting
            template = _template(parts)
            arrays = [np.asarray(p[0]).tolist() for p in columns]
            return ''.join(template % row for row in zip(*arrays, strict=True)).encode()
        negative, magnitude = scaled
        most = max(len(str(int(magnitude.max()))), part[1] + 1)
        signed = bool(negative.any())
        fields.append((negative if signed else None, magnitude, part[1], most, signed + most + (part[1] > 0)))
    width = sum(len(f) if isinstance(f, bytes) else f[4] for f in fields)
    columns_first = np.zeros((width, rows), np.uint8)  # written a text column at a time: contiguous
    at = 0
    for field in fields:
        if isinstance(field, bytes):
            columns_first[at : at + len(field)] = np.frombuffer(field, np.uint8)[:, None]
            at += len(field)
        else:
            _digits(columns_first[at : at + field[4]], *field)
            at += field[4]
    flat = columns_first.T.ravel()  # row after row
    return flat[flat != 0].tobytes()


_ONES = np.array([48 + i % 10 for i in range(100)], np.uint8)  # last digit of 0..99, as text
_TENS = np.array([48 + i // 10 for i in range(100)], np.uint8)


def _digits(out: np.ndarray, negative, magnitude: np.ndarray, decimals: int, most: int, width: int) -> None:
    """Right-aligned digits, decimal point and minus sign into `out` (width x rows, NUL = unused)."""
    count = np.full(len(magnitude), decimals + 1, np.int8)  # digits shown: at least "0.<decimals>"
    for k in range(decimals + 1, most):
        count += magnitude >= 10**k
    point = 1 if decimals else 0
    rest = magnitude.astype(np.uint32) if most <= 9 else magnitude.copy()
    for k in range(0, most, 2):  # two digits per division
        pair = rest % 100
        rest //= 100
        for place, table in ((k, _ONES), (k + 1, _TENS)):
            if place >= most:
                break
            text = table.take(pair)
            if place >= decimals + 1:  # may be a leading zero: not shown
                text[count <= place] = 0
            out[width - 1 - place - (point if place >= decimals else 0)] = text
    if point:
        out[width - 1 - decimals] = ord('.')
    if negative is not None:
        rows = np.flatnonzero(negative)
        out[width - 1 - count[rows].astype(np.int64) - point, rows] = ord('-')


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
