"""Existing videos (camera files) made to line up with Label Studio's frame numbers; ``prepare_videos``.

A file that already lines up at the project's frame rate (``probe.verdict`` finds nothing) is copied
unchanged. Any other is re-encoded (``VideoWriter``: constant frame rate, H.264, first frame at 0):
output frame ``k`` is the source frame the UI would show at UI frame ``k + 1`` on the source's own
timeline counted from its first frame (the last frame at or before ``probe.ui_seek_time(k + 1)``), so
source frames are duplicated over gaps and dropped where they come faster than the project's fps;
both are counted. The first timestamp is removed: annotations made on the original file in a browser
that honoured it would be ``start_shift_frames`` later (the manifest says so). Outputs that exist
are kept unless ``overwrite``; ``manifest.json``/``manifest.csv`` are rewritten on every run.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import shutil
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from ls_extensions.video.frames import VideoWriter, probe, to_rgb
from ls_extensions.video.prepare import SEPARATOR, natural_key
from ls_extensions.video.probe import (
    VIDEO_SUFFIXES,
    check_alignment,
    first_ui_frame_at_or_after,
    playback_timeline,
)

KEPT_EXISTING = 'kept the existing output (pass overwrite to prepare it again)'

Progress = Callable[[int, int], None]


@dataclass
class PreparedVideo:
    """One input file's manifest row."""

    video: str  # file name in the output folder ('' when refused)
    source: str  # the input file, absolute
    status: str  # 'written', 'exists' (output kept, not redone) or 'failed'
    action: str  # 'copied' (it lined up), 're-encoded' or 'refused'
    reasons: list[str] = field(default_factory=list)  # why it was re-encoded (or would mis-align)
    notes: list[str] = field(default_factory=list)
    error: str = ''
    fps: float = 0.0  # of the output
    frame_count: int = 0  # of the output
    width: int = 0
    height: int = 0
    source_frames: int = 0  # decoded
    dropped_frames: int = 0  # source frames no output frame shows
    duplicated_frames: int = 0  # output frames that repeat the previous source frame
    start_shift_frames: float = 0.0  # UI frames the first timestamp moved the original's frames by
    misaligned_ui_frames: int = 0  # of the source, before preparing
    probe: dict = field(default_factory=dict)  # probe.VideoFacts of the source


def find_videos(inputs: Iterable[str | os.PathLike], exclude: Path | None = None) -> list[tuple[Path, str]]:
    """``(file, name key)`` for each input file and each video file under each input folder.

    The key is the path relative to the folder (``site/cam1.MOV`` -> ``site/cam1``), the stem for a
    file named directly; hidden files and the ``exclude`` folder (the output) are skipped. Missing
    paths come back too (their error is reported per file).
    """
    found = []
    excluded = exclude.resolve() if exclude is not None else None
    for item in map(Path, inputs):
        if not item.is_dir():
            found.append((item, item.stem or item.name))
            continue
        for dirpath, dirnames, filenames in os.walk(item):
            dirnames[:] = sorted(
                (d for d in dirnames if not d.startswith('.') and (Path(dirpath) / d).resolve() != excluded),
                key=natural_key,
            )
            for name in sorted(filenames, key=natural_key):
                path = Path(dirpath) / name
                if not name.startswith('.') and path.suffix.lower() in VIDEO_SUFFIXES:
                    found.append((path, path.relative_to(item).with_suffix('').as_posix()))
    return found


def output_names(keys: Sequence[str], sources: Sequence[str]) -> list[str]:
    """Output stems: ``a/b`` -> ``a__b``; names that clash (case-insensitive) get a hash of their source path.

    The same rule as frames_to_video's ``video_names``: deterministic for a given set of inputs.
    """
    plain = [key.replace('/', SEPARATOR) for key in keys]
    counts = Counter(name.casefold() for name in plain)
    names = [
        name if counts[name.casefold()] == 1 else f'{name}-{hashlib.sha1(source.encode()).hexdigest()[:8]}'
        for name, source in zip(plain, sources, strict=True)
    ]
    clashes = [name for name, n in Counter(name.casefold() for name in names).items() if n > 1]
    if clashes:
        raise ValueError(f'cannot name outputs uniquely: {clashes}')
    return names


def reencode(
    source: Path,
    out_path: Path,
    fps: Fraction,
    span: float,
    frame_limit: int,
    crf: int | None = None,
) -> dict:
    """Resample ``source`` onto the UI's frame grid at ``fps`` (see the module docstring) into ``out_path``.

    ``span``: seconds from the first frame to the end of the last (``VideoFacts``); it sets the output's
    length as Label Studio computes it (``round(span * fps)`` frames). Decodes once, holding one frame.
    Returns the output's ``frame_count``, ``width``, ``height`` and the ``source_frames`` (with a usable
    timestamp), ``dropped_frames`` and ``duplicated_frames`` counts. Raises ValueError past ``frame_limit``.
    """
    dropped = duplicated = count = 0
    held = held_rgb = None  # the source frame on screen, and its RGB once it was written
    held_writes = 0
    first = None
    with VideoWriter(out_path, fps, crf=crf) as writer:

        def emit(until: int) -> None:
            nonlocal held_rgb, held_writes, duplicated
            if until > frame_limit:
                raise ValueError(f'its timestamps span {until} frames at {float(fps):g} fps, over {frame_limit}')
            while writer.frame_count < until - 1:
                if held_rgb is None:
                    held_rgb = _oriented(to_rgb(held), held.rotation)
                writer.write(held_rgb)
                held_writes += 1
                duplicated += held_writes > 1

        for time, frame in playback_timeline(source, decode=True):
            count += 1
            if first is None:
                first = time
            else:
                emit(first_ui_frame_at_or_after(time - first, float(fps)))
                dropped += held_writes == 0
            held, held_rgb, held_writes = frame, None, 0
        if held is None:
            raise ValueError('no frame with a timestamp')
        emit(max(1, round(span * fps)) + 1)
        dropped += held_writes == 0
    return dict(
        frame_count=writer.frame_count,
        width=writer.width,
        height=writer.height,
        source_frames=count,
        dropped_frames=dropped,
        duplicated_frames=duplicated,
    )


def _oriented(image: np.ndarray, rotation: int) -> np.ndarray:
    """Turn the pixels as the display matrix tells players to (FFmpeg's rotation is counter-clockwise)."""
    turns = (round(rotation / 90) % 4) if rotation else 0
    return np.ascontiguousarray(np.rot90(image, turns)) if turns else image


def prepare_existing_videos(
    inputs: Iterable[str | os.PathLike],
    out_dir: str | os.PathLike,
    fps: float | Fraction,
    *,
    overwrite: bool = False,
    crf: int | None = None,
    frame_limit: int = 1_000_000,
    progress: Progress | None = None,
) -> list[PreparedVideo]:
    """Probe each input video, copy the ones that line up at ``fps``, re-encode the others into ``out_dir``.

    A file that cannot be read (missing, not a video, a playlist, no video stream) gets action
    ``'refused'`` with its error and the others go on. ``progress(files_done, files_total)``.
    """
    fps = Fraction(fps).limit_denominator(1001)
    if fps <= 0:
        raise ValueError(f'fps must be positive, got {float(fps):g}')
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    found = list({path.resolve(): (path, key) for path, key in find_videos(inputs, exclude=out_dir)}.values())
    stems = output_names([key for _, key in found], [str(path.resolve()) for path, _ in found])
    previous = _previous_manifest(out_dir)
    records = []
    for done, ((source, _), stem) in enumerate(zip(found, stems, strict=True), start=1):
        records.append(_prepare_one(source, out_dir, stem, fps, overwrite, crf, frame_limit, previous))
        if progress:
            progress(done, len(found))
    write_manifest(records, out_dir)
    return records


def _prepare_one(source, out_dir, stem, fps, overwrite, crf, frame_limit, previous) -> PreparedVideo:
    record = PreparedVideo('', str(source.resolve()), 'failed', 'refused')
    if not source.is_file():
        record.error = f'{source}: no such file' if not source.exists() else f'{source}: not a regular file'
        return record
    try:
        facts, judged = check_alignment(source, float(fps))
    except (av.FFmpegError, ValueError, OSError) as exc:  # UnsafeVideo is a ValueError
        record.error = f'{source}: {_sniffed(source) or _reason(exc)}'
        return record
    if facts.first_timestamp is None:
        record.error = f'{source}: no frame has a timestamp'
        return record
    record.probe = facts.to_dict()
    record.reasons, record.notes = judged.reasons, judged.notes
    record.misaligned_ui_frames = judged.misaligned_ui_frames
    record.source_frames = facts.counted_frames
    record.start_shift_frames = round(max(facts.first_timestamp or 0.0, 0.0) * float(fps), 3)
    record.action = 're-encoded' if judged.needs_reencode else 'copied'
    out_path = out_dir / (stem + ('.mp4' if judged.needs_reencode else source.suffix.lower()))
    record.video = out_path.name
    if out_path.exists() and not overwrite:
        return _existing(record, out_path, previous.get(out_path.name), fps)
    span = facts.end_time - facts.first_timestamp
    if judged.needs_reencode and round(span * fps) > frame_limit:
        record.status, record.action = 'failed', 'refused'
        record.error = f'{source}: its timestamps span {span:.0f} s, {round(span * fps)} frames, over {frame_limit}'
        return record
    try:
        if judged.needs_reencode:
            for key, value in reencode(source, out_path, fps, span, frame_limit, crf).items():
                setattr(record, key, value)
        else:
            tmp = out_path.with_name(f'.{out_path.name}.part')
            try:
                shutil.copyfile(source, tmp)
                os.replace(tmp, out_path)
            finally:
                tmp.unlink(missing_ok=True)
            record.frame_count, record.width, record.height = facts.counted_frames, facts.width, facts.height
    except (av.FFmpegError, ValueError, OSError) as exc:
        record.status, record.action, record.error = 'failed', 'refused', f'{source}: {_reason(exc)}'
        return record
    record.status, record.fps = 'written', float(fps)
    return record


def _existing(record: PreparedVideo, out_path: Path, earlier: dict | None, fps: Fraction) -> PreparedVideo:
    """An output left from an earlier run: its counts carry over when the manifest describes this source."""
    try:
        info = probe(out_path)
    except (av.FFmpegError, ValueError) as exc:
        record.error = f'{out_path} exists and is not a readable video: {_reason(exc)}'
        return record
    record.status = 'exists'
    record.frame_count, record.width, record.height, record.fps = info.frame_count, info.width, info.height, info.fps
    if earlier and earlier.get('source') == record.source and earlier.get('frame_count') == info.frame_count:
        for key in ('dropped_frames', 'duplicated_frames'):
            setattr(record, key, earlier.get(key, 0))
    if abs(info.fps - float(fps)) > float(fps) / 1000:
        record.notes.append(f'the existing output plays at {info.fps:g} fps, not {float(fps):g}')
    record.notes.append(KEPT_EXISTING)
    return record


PLAYLIST_MAGIC = {b'#EXTM3U': 'an HLS playlist', b'ffconcat': 'an FFmpeg concat list', b'<?xml': 'an XML file (DASH?)'}


def _sniffed(source: Path) -> str:
    """Why a refused file is not a video, from its first bytes: playlists get their own sentence."""
    try:
        with open(source, 'rb') as handle:
            head = handle.read(64).lstrip(b'\xef\xbb\xbf \t\r\n')
    except OSError:
        return ''
    for magic, kind in PLAYLIST_MAGIC.items():
        if head.startswith(magic):
            return f'{kind}, not a video file: refused (the player would fetch the files it names)'
    return '' if head else 'an empty file, not a video'


def _reason(exc: BaseException) -> str:
    """One line for the manifest and the command's error line (never a traceback)."""
    if isinstance(exc, av.InvalidDataError):
        return 'FFmpeg cannot read it as a video (invalid data: not a video, or truncated)'
    return ' '.join(str(exc).split()) or type(exc).__name__


def _previous_manifest(out_dir: Path) -> dict[str, dict]:
    try:
        rows = json.loads((out_dir / 'manifest.json').read_text(encoding='utf-8'))
        return {row['video']: row for row in rows if isinstance(row, dict) and row.get('video')}
    except (OSError, ValueError, TypeError, KeyError):
        return {}


def write_manifest(records: Sequence[PreparedVideo], out_dir: Path) -> None:
    """``manifest.json`` (records as objects) and ``manifest.csv`` (probe facts as ``probe.*`` columns)."""
    rows = [asdict(record) for record in records]
    (out_dir / 'manifest.json').write_text(json.dumps(rows, indent=2, ensure_ascii=False) + '\n', encoding='utf-8')
    flat = [_flatten(row) for row in rows]
    columns = list(dict.fromkeys(key for row in flat for key in row)) or [
        k for k in PreparedVideo.__dataclass_fields__ if k != 'probe'
    ]
    with open(out_dir / 'manifest.csv', 'w', newline='', encoding='utf-8') as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        writer.writerows(flat)


def _flatten(row: dict, prefix: str = '') -> dict:
    flat = {}
    for key, value in row.items():
        if isinstance(value, dict):
            flat.update(_flatten(value, f'{prefix}{key}.'))
        else:
            flat[prefix + key] = ' | '.join(map(str, value)) if isinstance(value, list) else value
    return flat
