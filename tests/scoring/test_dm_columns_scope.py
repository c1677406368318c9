"""Our Data Manager columns only where they mean something: projects with an object tag we score (images)."""

import pytest

from tests.conftest import make_project
from tests.label_configs import IMAGE_BOXES, VIDEO_TRACKING

pytestmark = pytest.mark.django_db

OURS = {'uncertainty', 'uncertainty_model_version'}
TEXT_CLASSES = """<View>
  <Text name="text" value="$text"/>
  <Choices name="sentiment" toName="text"><Choice value="positive"/><Choice value="negative"/></Choices>
</View>"""


def column_ids(client, project):
    response = client.get(f'/api/dm/columns/?project={project.id}')
    assert response.status_code == 200
    return {column['id'] for column in response.json()['columns']}


def test_an_image_project_has_them(client_owner, image_project):
    assert OURS <= column_ids(client_owner, image_project)


@pytest.mark.parametrize('config', [VIDEO_TRACKING, TEXT_CLASSES], ids=['video', 'text'])
def test_a_project_without_an_image_tag_has_none(client_owner, user, config):
    ids = column_ids(client_owner, make_project(user, config))
    assert not OURS & ids
    assert 'data' in ids  # Label Studio's own columns are all still there


def test_they_follow_the_config_when_it_changes(client_owner, user):
    project = make_project(user, VIDEO_TRACKING)
    assert not OURS & column_ids(client_owner, project)
    response = client_owner.patch(
        f'/api/projects/{project.id}/', data={'label_config': IMAGE_BOXES}, content_type='application/json'
    )
    assert response.status_code == 200, response.content
    assert OURS <= column_ids(client_owner, project)
