"""Browser fixtures: a migrated database template and synthetic media, shared by the session."""

import pytest

from tests.support.media import write_image, write_video
from tests.support.server import migrated_database


@pytest.fixture(scope='session')
def template_db(tmp_path_factory):
    return migrated_database(tmp_path_factory)


@pytest.fixture(scope='session')
def media(tmp_path_factory):
    folder = tmp_path_factory.mktemp('media')
    return {'image': write_image(folder / 'fish.png'), 'video': write_video(folder / 'fish.mp4', frames=50)}
