"""Registry of per-frame video export formats, in the style of CVAT's `@exporter`.

A writer is `write(out, export) -> ExportSummary`: it streams to the binary file-like `out` and
never holds the whole output. The flags tell the caller what to gather before calling it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import BinaryIO

from .model import ExportSummary, VideoExport

Writer = Callable[[BinaryIO, VideoExport], ExportSummary]


@dataclass(frozen=True)
class Exporter:
    name: str
    ext: str
    title: str
    description: str
    needs_pixels: bool  # every task needs width/height, else MissingVideoInfo
    needs_images: bool  # uses VideoTrackSet.frame_images
    write: Writer


_EXPORTERS: dict[str, Exporter] = {}


def exporter(*, name: str, ext: str, title: str, description: str, needs_pixels=False, needs_images=False):
    """Register the decorated writer under `name` (case-insensitive)."""

    def register(write: Writer) -> Writer:
        key = name.lower()
        if key in _EXPORTERS:
            raise ValueError(f'export format {name!r} is registered twice')
        _EXPORTERS[key] = Exporter(name, ext, title, description, needs_pixels, needs_images, write)
        return write

    return register


def get_exporter(name: str) -> Exporter:
    try:
        return _EXPORTERS[name.lower()]
    except KeyError:
        known = ', '.join(e.name for e in _EXPORTERS.values())
        raise KeyError(f'unknown video export format {name!r}; known: {known}') from None


def list_exporters() -> list[Exporter]:
    return list(_EXPORTERS.values())
