"""Why a video export request fails: the errors it answers with, each carrying its HTTP status.

One place for them, so the API, the Export dialog hooks and the snapshot conversions answer alike.
"""

from __future__ import annotations


class VideoExportError(Exception):
    """A request the export cannot serve; `status` is the HTTP status to answer with."""

    status = 400

    def __init__(self, message: str, **extra):
        super().__init__(message)
        self.message = message
        self.extra = extra


class NoVideoTracking(VideoExportError):
    pass


class UnknownFormat(VideoExportError):
    pass


class NoPredictions(VideoExportError):
    """Predictions were asked for and the project has none of the model version (or none at all)."""


class MissingVideo(VideoExportError):
    """An image format met a task whose video file cannot be read; names the tasks."""

    status = 422


class MissingPixelSize(VideoExportError):
    status = 422


class TooManyFrames(VideoExportError):
    """A video whose frame count is beyond `LS_EXT_VIDEO_MAX_FRAMES`; names the tasks and the setting."""

    status = 422


class MalformedVideoUrl(ValueError):
    """A task's video URL that no file can have: the task is skipped with this reason."""
