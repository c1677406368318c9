"""Our Data Manager columns only where they mean something: projects whose predictions are scored regions,
images (an ``Image`` tag) and video tracks (a ``VideoRectangle`` on a ``Video``)."""

import pytest

from ls_extensions.scoring import scope
from tests.conftest import make_project
from tests.label_configs import IMAGE_BOXES, VIDEO_TRACKING

OURS = {'uncertainty', 'uncertainty_model_version', 'mistake', 'mistake_kinds'}
TEXT_CLASSES = """<View>
  <Text name="text" value="$text"/>
  <Choices name="sentiment" toName="text"><Choice value="positive"/><Choice value="negative"/></Choices>
</View>"""
VIDEO_CLASSES = """<View>
  <Video name="video" value="$video"/>
  <Choices name="scene" toName="video"><Choice value="reef"/><Choice value="sand"/></Choices>
</View>"""
VIDEO_TIMELINE = """<View>
  <Video name="video" value="$video"/>
  <TimelineLabels name="events" toName="video"><Label value="feeding"/></TimelineLabels>
</View>"""


def column_ids(client, project):
    response = client.get(f'/api/dm/columns/?project={project.id}')
    assert response.status_code == 200
    return {column['id'] for column in response.json()['columns']}


def change_config(client, project, config):
    response = client.patch(
        f'/api/projects/{project.id}/', data={'label_config': config}, content_type='application/json'
    )
    assert response.status_code == 200, response.content


@pytest.mark.django_db
@pytest.mark.parametrize('config', [IMAGE_BOXES, VIDEO_TRACKING], ids=['image', 'video-tracks'])
def test_image_and_video_tracking_projects_have_them(client_owner, user, config):
    assert OURS <= column_ids(client_owner, make_project(user, config))


@pytest.mark.django_db
@pytest.mark.parametrize(
    'config', [TEXT_CLASSES, VIDEO_CLASSES, VIDEO_TIMELINE], ids=['text', 'video-classes', 'video-timeline']
)
def test_a_project_without_scored_regions_has_none(client_owner, user, config):
    ids = column_ids(client_owner, make_project(user, config))
    assert not OURS & ids
    assert 'data' in ids  # Label Studio's own columns are all still there


@pytest.mark.django_db
def test_they_follow_the_config_when_it_changes(client_owner, user):
    project = make_project(user, TEXT_CLASSES)
    assert not OURS & column_ids(client_owner, project)
    change_config(client_owner, project, IMAGE_BOXES)
    assert OURS <= column_ids(client_owner, project)
    video = make_project(user, VIDEO_TRACKING, 'videos')
    assert OURS <= column_ids(client_owner, video)
    change_config(client_owner, video, VIDEO_CLASSES)
    assert not OURS & column_ids(client_owner, video)


def test_malformed_config_maps_score_nothing_and_never_raise():
    """Label Studio's stored maps are JSON: a hand-edited or half-migrated one must not break the columns."""
    assert not scope.scores_config(None, None)
    assert not scope.scores_config({}, {'box': 'VideoRectangle', 'x': None, 'y': {'inputs': 'video'}})
    video_box = {'type': 'VideoRectangle', 'to_name': ['video'], 'inputs': [{'type': 'Video', 'value': 'video'}]}
    assert scope.scores_config({'video': 'Video'}, {'box': video_box})
    on_an_image = {**video_box, 'inputs': [{'type': 'Image', 'value': 'image'}]}
    assert not scope.scored_by_control({'box': on_an_image})
    assert scope.scores_config({'image': 'Image'}, None)
