"""Fixtures of the reader tests: the hostile track set (tracks.py) in a real project."""

import pytest

from .tracks import CLIPS, make_project_with_clips


@pytest.fixture
def hostile_project(user):
    """(project, tasks): one task per clip of tracks.CLIPS, each playing its real video."""
    return make_project_with_clips(user, CLIPS)
