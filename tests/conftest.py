"""Fixtures on Label Studio's own models: organization, users, projects, tasks, predictions, annotations."""

import time

import pytest
from django.conf import settings

from tests.label_configs import IMAGE_BOXES, VIDEO_TRACKING


@pytest.fixture(autouse=True)
def _clear_label_studio_context():
    """Label Studio keeps a per-request context in a thread local; its own conftest clears it too."""
    from core.current_request import CurrentContext

    yield
    CurrentContext.clear()


def make_user(email, organization=None):
    from organizations.models import Organization
    from users.models import User

    user = User.objects.create_user(email=email, password='secret-pass-123', username=email.split('@')[0])
    if organization is None:
        organization = Organization.create_organization(created_by=user, title=f'org of {email}')
    else:
        organization.add_user(user)
    user.active_organization = organization
    user.save(update_fields=['active_organization'])
    return user


@pytest.fixture
def user(db):
    return make_user('owner@example.org')


@pytest.fixture
def organization(user):
    return user.active_organization


@pytest.fixture
def other_user(db):
    """A user of another organization: must never see our projects."""
    return make_user('stranger@example.org')


def logged_in_client(user):
    """A test client the way a browser is: Label Studio logs out sessions without ``last_login``."""
    from django.test import Client

    client = Client()
    client.force_login(user)
    session = client.session
    session['last_login'] = time.time()
    session.save()
    client.cookies[settings.SESSION_COOKIE_NAME] = session.session_key
    return client


@pytest.fixture
def client_owner(user):
    return logged_in_client(user)


@pytest.fixture
def client_stranger(other_user):
    return logged_in_client(other_user)


def make_project(user, label_config, title='project'):
    from projects.models import Project

    return Project.objects.create(
        title=title, created_by=user, organization=user.active_organization, label_config=label_config
    )


@pytest.fixture
def image_project(user):
    return make_project(user, IMAGE_BOXES, 'images')


@pytest.fixture
def video_project(user):
    return make_project(user, VIDEO_TRACKING, 'videos')


@pytest.fixture
def image_tasks(image_project):
    from tasks.models import Task

    return [Task.objects.create(project=image_project, data={'image': f'/data/upload/1/img{i}.jpg'}) for i in range(5)]


def box(x, y, w, h, label='fish', score=None):
    result = {
        'from_name': 'label',
        'to_name': 'image',
        'type': 'rectanglelabels',
        'original_width': 640,
        'original_height': 480,
        'value': {'x': x, 'y': y, 'width': w, 'height': h, 'rotation': 0, 'rectanglelabels': [label]},
    }
    if score is not None:
        result['score'] = score
    return result


@pytest.fixture
def predictions(image_tasks):
    from tasks.models import Prediction

    return [
        Prediction.objects.create(
            task=task,
            project=task.project,
            model_version='v1',
            score=0.1 + 0.2 * i,
            result=[box(10, 10, 20, 20, score=0.1 + 0.2 * i)],
        )
        for i, task in enumerate(image_tasks)
    ]


@pytest.fixture
def annotations(image_tasks, user):
    from tasks.models import Annotation

    return [
        Annotation.objects.create(task=task, project=task.project, completed_by=user, result=[box(5, 5, 10, 10)])
        for task in image_tasks[:2]
    ]


@pytest.fixture
def broker_at(monkeypatch):
    """Point the Celery app at a broker URL for this test (the app reads its settings once)."""
    from ls_extensions.celery import app

    def reset():
        if app._pool is not None:
            app._pool.force_close_all()
        app._pool = None
        app.amqp._producer_pool = None

    def use(url):
        for key in ('broker_url', 'broker_write_url', 'broker_read_url'):  # celery 5.5 resolves all three
            monkeypatch.setattr(app.conf, key, url)
        reset()

    yield use
    reset()
