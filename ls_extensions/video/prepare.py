"""Turn folders of image sequences into videos that Label Studio's video labeling can play.

Each folder under the root that directly holds matching images becomes one video; frame ``i`` of the
video is the folder's ``i``-th readable image in natural order, so UI frame ``f`` is readable image
``f - 1`` (the manifest lists skipped images). Existing videos are never replaced unless
``overwrite=True``: they are kept and reported with status ``'exists'``, so an interrupted run can
simply be repeated. ``manifest.json``/``manifest.csv`` describe the whole output folder and are
rewritten on every run.
"""

from __future__ import annotations

import csv
import fnmatch
import hashlib
import json
import os
import re
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field, fields
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np

from ls_extensions.video.frames import CODECS, VideoWriter, probe

DEFAULT_PATTERNS = ('*.jpg',)
SEPARATOR = '__'
SIZE_MISMATCH = ('resize', 'error')
BAD_IMAGE = ('skip', 'error')
KEPT = 'kept the existing video (pass overwrite to re-encode)'

Progress = Callable[[int, int], None]


class PrepareError(Exception):
    """A folder was refused; no video was written for it."""


@dataclass
class ImageFolder:
    folder: str  # path relative to the root, POSIX style; '.' for the root itself
    images: list[Path]


@dataclass
class VideoRecord:
    video: str  # file name inside the output folder
    source: str  # image folder; relative to the root in prepare_videos
    status: str  # 'written', 'exists' (kept, not overwritten) or 'failed'
    frame_count: int = 0
    fps: float = 0.0
    width: int = 0
    height: int = 0
    codec: str = ''
    skipped_images: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    error: str = ''


def natural_key(name: str) -> tuple:
    """Sort key that puts ``img2`` before ``img10`` (case-insensitive, ties broken by the exact name)."""
    parts = re.split(r'(\d+)', name.casefold())
    return tuple(int(part) if i % 2 else part for i, part in enumerate(parts)), name


def find_image_folders(
    root: str | os.PathLike, patterns: Iterable[str] = DEFAULT_PATTERNS, exclude: str | os.PathLike | None = None
) -> list[ImageFolder]:
    """Folders under ``root`` (itself included) that directly hold files matching any glob pattern.

    Matching ignores case (cameras write ``.JPG``); hidden files and folders (macOS ``._*`` files,
    ``.thumbnails``) and the ``exclude`` folder (the output, when it lies inside the root) are skipped.
    """
    root = Path(root)
    excluded = Path(exclude).resolve() if exclude is not None else None
    patterns = [pattern.casefold() for pattern in patterns]
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [
            name
            for name in dirnames
            if not name.startswith('.') and (excluded is None or (Path(dirpath) / name).resolve() != excluded)
        ]
        images = [
            name
            for name in filenames
            if not name.startswith('.') and any(fnmatch.fnmatchcase(name.casefold(), p) for p in patterns)
        ]
        if images:
            folder = Path(dirpath).relative_to(root).as_posix()
            found.append(ImageFolder(folder, [Path(dirpath) / name for name in sorted(images, key=natural_key)]))
    return sorted(found, key=lambda item: natural_key(item.folder))


def plain_name(folder: str, root_name: str) -> str:
    """``a/b/c`` -> ``a__b__c``; the root folder itself is named after the root."""
    return root_name if folder == '.' else folder.replace('/', SEPARATOR)


def video_names(folders: Sequence[str], root_name: str, suffix: str) -> dict[str, str]:
    """Output file name per folder, unique even on case-insensitive file systems.

    ``a/b__c`` and ``a__b/c`` would both be ``a__b__c``: every name in such a group gets a short hash
    of its folder path appended, which keeps names deterministic for a given tree.
    """
    plain = {folder: plain_name(folder, root_name) for folder in folders}
    counts = Counter(name.casefold() for name in plain.values())
    names = {
        folder: name if counts[name.casefold()] == 1 else f'{name}-{hashlib.sha1(folder.encode()).hexdigest()[:8]}'
        for folder, name in plain.items()
    }
    clashes = [name for name, n in Counter(name.casefold() for name in names.values()).items() if n > 1]
    if clashes:
        raise ValueError(f'cannot name videos uniquely: {clashes}')
    return {folder: name + suffix for folder, name in names.items()}


def read_image(path: Path) -> np.ndarray | None:
    """RGB array of an image, or None when it is missing, not an image, or truncated (OpenCV refuses those).

    EXIF orientation is applied, as browsers and image viewers do, so frames look as people saw the images.
    """
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    return None if image is None else cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def make_video(
    images: Sequence[Path],
    out_path: Path,
    fps: float | Fraction,
    *,
    codec: str = 'h264',
    crf: int | None = None,
    on_size_mismatch: str = 'resize',
    on_bad_image: str = 'skip',
    progress: Callable[[int], None] | None = None,
) -> VideoRecord:
    """Encode one folder's images (already in frame order) into ``out_path``; ``progress(images_done)``.

    The first readable image sets the size. Raises PrepareError (and leaves nothing at ``out_path``)
    when a policy says ``'error'`` or no image is readable.
    """
    skipped, resized = [], []
    size = None
    with VideoWriter(out_path, fps, codec=codec, crf=crf) as writer:
        for done, path in enumerate(images, start=1):
            image = read_image(path)
            if image is None:
                if on_bad_image == 'error':
                    raise PrepareError(f'unreadable image {path}')
                skipped.append(path.name)
            else:
                if size is None:
                    size = image.shape[1], image.shape[0]
                elif (image.shape[1], image.shape[0]) != size:
                    found = f'{path.name} is {image.shape[1]}x{image.shape[0]}'
                    if on_size_mismatch == 'error':
                        raise PrepareError(f'{found}, the first image is {size[0]}x{size[1]}')
                    resized.append(found)
                    image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
                writer.write(image)
            if progress:
                progress(done)
        if writer.frame_count == 0:
            raise PrepareError(f'no readable image among {len(images)}')
    warnings = []
    if resized:
        warnings.append(f'resized {len(resized)} image(s) to {size[0]}x{size[1]}: {"; ".join(resized)}')
    if (writer.width, writer.height) != size:
        warnings.append(
            f'padded {size[0]}x{size[1]} to {writer.width}x{writer.height} by repeating the last row/column'
            f' ({codec} needs even sizes); pixel coordinates are unchanged'
        )
    return VideoRecord(
        video=out_path.name,
        source=images[0].parent.as_posix(),
        status='written',
        frame_count=writer.frame_count,
        fps=float(writer.fps),
        width=writer.width,
        height=writer.height,
        codec=codec,
        skipped_images=skipped,
        warnings=warnings,
    )


def prepare_videos(
    root: str | os.PathLike,
    out_dir: str | os.PathLike,
    fps: float | Fraction,
    *,
    patterns: Iterable[str] = DEFAULT_PATTERNS,
    codec: str = 'h264',
    crf: int | None = None,
    overwrite: bool = False,
    on_size_mismatch: str = 'resize',
    on_bad_image: str = 'skip',
    progress: Progress | None = None,
) -> list[VideoRecord]:
    """Encode every image folder under ``root`` into ``out_dir``; returns the manifest records.

    A refused folder (policy ``'error'``, nothing readable, encoder failure) gets status ``'failed'``
    with its reason and the others go on. ``progress(images_done, images_total)`` follows all folders.
    """
    if codec not in CODECS:
        raise ValueError(f'unknown codec {codec!r}; choose from {sorted(CODECS)}')
    if on_size_mismatch not in SIZE_MISMATCH or on_bad_image not in BAD_IMAGE:
        raise ValueError(f'on_size_mismatch must be one of {SIZE_MISMATCH}, on_bad_image one of {BAD_IMAGE}')
    if not fps > 0:
        raise ValueError(f'fps must be positive, got {fps}')
    root, out_dir = Path(root), Path(out_dir)
    if not root.is_dir():
        raise ValueError(f'{root} is not a folder')
    out_dir.mkdir(parents=True, exist_ok=True)
    folders = find_image_folders(root, patterns, exclude=out_dir)
    root_name = root.resolve().name
    names = video_names([item.folder for item in folders], root_name, CODECS[codec].suffix)
    previous = _previous_manifest(out_dir)
    total = sum(len(item.images) for item in folders)
    done = 0
    records = []
    for item in folders:
        out_path = out_dir / names[item.folder]
        if out_path.exists() and not overwrite:
            earlier = previous.get(out_path.name)
            record = _existing(out_path, earlier if earlier and earlier.get('source') == item.folder else None)
        else:
            try:
                record = make_video(
                    item.images,
                    out_path,
                    fps,
                    codec=codec,
                    crf=crf,
                    on_size_mismatch=on_size_mismatch,
                    on_bad_image=on_bad_image,
                    progress=(lambda n, base=done: progress(base + n, total)) if progress else None,
                )
            except (PrepareError, av.FFmpegError, OSError) as exc:
                record = VideoRecord(out_path.name, item.folder, 'failed', codec=codec, error=str(exc))
        record.source = item.folder
        renamed = f'named {out_path.name}: {plain_name(item.folder, root_name)} was ambiguous'
        if out_path.stem != plain_name(item.folder, root_name) and renamed not in record.warnings:
            record.warnings.insert(0, renamed)
        records.append(record)
        done += len(item.images)
        if progress:
            progress(done, total)
    write_manifest(records, out_dir)
    return records


def _existing(path: Path, earlier: dict | None) -> VideoRecord:
    """Record of a kept video; skipped images and warnings carry over from the manifest that wrote it."""
    try:
        info = probe(path)
    except (av.FFmpegError, ValueError) as exc:
        return VideoRecord(path.name, '', 'failed', error=f'exists and is not a readable video: {exc}')
    record = VideoRecord(path.name, '', 'exists', info.frame_count, info.fps, info.width, info.height, info.codec)
    if earlier and earlier.get('frame_count') == info.frame_count:
        record.skipped_images = list(earlier.get('skipped_images', []))
        record.warnings = [note for note in earlier.get('warnings', []) if note != KEPT]
    record.warnings.append(KEPT)
    return record


def _previous_manifest(out_dir: Path) -> dict[str, dict]:
    try:
        rows = json.loads((out_dir / 'manifest.json').read_text(encoding='utf-8'))
        return {row['video']: row for row in rows}
    except (OSError, ValueError, TypeError, KeyError):
        return {}


def write_manifest(records: Sequence[VideoRecord], out_dir: Path) -> None:
    """``manifest.json`` (records as objects) and ``manifest.csv`` (lists joined with ``' | '``)."""
    rows = [asdict(record) for record in records]
    (out_dir / 'manifest.json').write_text(json.dumps(rows, indent=2, ensure_ascii=False) + '\n', encoding='utf-8')
    with open(out_dir / 'manifest.csv', 'w', newline='', encoding='utf-8') as handle:
        writer = csv.DictWriter(handle, fieldnames=[f.name for f in fields(VideoRecord)])
        writer.writeheader()
        for row in rows:
            writer.writerow(
                {key: ' | '.join(value) if isinstance(value, list) else value for key, value in row.items()}
            )
