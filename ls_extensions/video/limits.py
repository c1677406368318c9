"""Bounds on what one export may ask for, so hostile or broken input gets a 4xx instead of running for ever.

A video's frame count can come from an annotation (`framesCount`, or the last keyframe when no video
file is readable): a stored 10^12 would make the writers loop over 10^12 frames. The request
parameters are bounded so that no value reaches NumPy or the database outside their ranges.
"""

from __future__ import annotations

from ls_extensions.video import conf

MAX_FRAMES_SETTING = conf.MAX_FRAMES.name
MAX_IDS = 100_000  # task ids in one request (`ids=`); more: export all tasks or several times
MAX_TASK_ID = 2**63 - 1  # what SQLite and PostgreSQL's bigint hold
MAX_SIDE = 100_000  # `width`/`height` in pixels
MAX_URL_CHARS = 4096  # a task's video URL; longer ones cannot name a file (PATH_MAX)


def max_frames() -> int:
    """The most frames one video may export (`LS_EXT_VIDEO_MAX_FRAMES`); also bounds `frame_stride`."""
    return conf.MAX_FRAMES.get()
