"""Diversity and warm-up in the uncertainty stream, through Label Studio's real next-task API.

Three scenes, three near-duplicates of each (the same image with a little noise, like neighbouring video
frames), as data URIs; the model is least sure about all of scene A, then B, then C. Plain uncertainty
serves A, A, A; the diverse stream serves A, B, C first, for one annotator and for several side by side.
"""

import numpy as np
import pytest

from ls_extensions.scoring import signatures
from tests.conftest import logged_in_client
from tests.ml_backend.support import png_data_uri
from tests.scoring.conftest import predict
from tests.scoring.test_next_task import annotators, label, next_task, next_tasks_at_once, stream_on

SCENES = 3
COPIES = 3


def scene(index, rng):
    """A 32x32 scene: a bright block whose place depends on ``index``, plus noise (a near-duplicate each call)."""
    image = np.full((32, 32, 3), 60, np.int16)
    row, col = divmod(index, 2)
    image[row * 16 : row * 16 + 16, col * 16 : col * 16 + 16] = 200
    image[: 8 * (index + 1), 28:] = 140
    return np.clip(image + rng.integers(-6, 7, image.shape), 0, 255).astype(np.uint8)


@pytest.fixture
def scenes(image_project):
    return make_scenes(image_project)


def make_scenes(image_project):
    """{scene: [task ids]}; uncertainty falls scene by scene (A's copies the most uncertain)."""
    from tasks.models import Task

    rng = np.random.default_rng(3)
    ids = {}
    for s in range(SCENES):
        for copy in range(COPIES):
            task = Task.objects.create(project=image_project, data={'image': png_data_uri(scene(s, rng))})
            predict(task, 'v1', scores=[0.1 + 0.1 * (s * COPIES + copy)])  # uncertainty 1 - score
            ids.setdefault(s, []).append(task.id)
    return ids


def set_policy(project, **fields):
    from ls_extensions.scoring.models import ScoringPolicy

    ScoringPolicy.objects.filter(project=project).update(**fields)


def test_near_duplicates_share_a_signature_and_scenes_do_not():
    rng = np.random.default_rng(0)
    signature = [[signatures.signature_of(signatures.thumbnail(scene(s, rng))) for _ in range(5)] for s in range(3)]
    assert all(len(set(copies)) == 1 for copies in signature)
    assert len({copies[0] for copies in signature}) == 3


@pytest.mark.django_db
def test_plain_uncertainty_serves_near_duplicates_in_a_row_and_diverse_does_not(
    client_owner, user, image_project, scenes
):
    stream_on(image_project)
    served = []
    for _ in range(2):
        served.append(next_task(client_owner, image_project))
        label(served[-1], user)
    assert served == scenes[0][:2]  # A, A: the plain ranking

    set_policy(image_project, diverse=True)
    order = []
    for _ in range(SCENES * COPIES - 2):
        order.append(next_task(client_owner, image_project))
        label(order[-1], user)
    # A's third copy waits until B and C each got one; then the rest by uncertainty
    assert order == [scenes[1][0], scenes[2][0], scenes[0][2], scenes[1][1], scenes[1][2], scenes[2][1], scenes[2][2]]


@pytest.mark.django_db
def test_annotators_side_by_side_get_different_scenes(organization, image_project, scenes):
    """A task locked by one annotator covers its scene for the next: no two people label copies of one scene."""
    stream_on(image_project)
    set_policy(image_project, diverse=True)
    _, clients = annotators(organization, 3)
    assert [next_task(c, image_project) for c in clients] == [scenes[0][0], scenes[1][0], scenes[2][0]]


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_next_task_requests_get_distinct_tasks(organization, image_project, scenes):
    """Six annotators at the same instant, clusters not computed yet: six different tasks (which scene each
    gets depends on who commits a lock first; one per scene is the sequential test's promise, above)."""
    stream_on(image_project)
    set_policy(image_project, diverse=True)
    _, clients = annotators(organization, 6)
    served, errors = next_tasks_at_once(clients, image_project)
    assert errors == [] and len(served) == 6 and len(set(served.values())) == 6


@pytest.mark.django_db
def test_the_warm_up_serves_random_tasks_then_the_ranking(client_owner, organization, user, image_project, scenes):
    from tasks.models import TaskLock

    stream_on(image_project)
    set_policy(image_project, warmup_annotations=2)
    policy_url = f'/api/projects/{image_project.id}/uncertainty/'
    report = client_owner.get(policy_url).json()
    assert (report['stream_mode'], report['labeled_tasks'], report['warmup_annotations']) == ('warm-up (random)', 0, 2)
    page = client_owner.get(f'/projects/{image_project.id}/retraining/').content.decode()
    assert '<dd id="stream-mode">warm-up (random)</dd>' in page and 'Warm-up: 0 of 2 labeled tasks' in page

    # one new annotator at a time, each lock released: the ranking would serve scenes[0][0] every time
    users, clients = annotators(organization, 12)
    seen = set()
    for client in clients:
        seen.add(next_task(client, image_project))
        TaskLock.objects.all().delete()
    assert len(seen) > 2

    label(scenes[2][2], user)
    label(scenes[2][1], user)
    report = client_owner.get(policy_url).json()
    assert (report['stream_mode'], report['labeled_tasks']) == ('uncertainty', 2)
    assert next_task(logged_in_client(users[0]), image_project) == scenes[0][0]
    assert 'id="stream-warmup"' not in client_owner.get(f'/projects/{image_project.id}/retraining/').content.decode()


@pytest.mark.django_db
def test_the_policy_api_sets_diversity_and_warm_up_and_refuses_bad_values(client_owner, image_project):
    url = f'/api/projects/{image_project.id}/uncertainty/'
    body = {'diverse': True, 'warmup_annotations': 5}
    answer = client_owner.patch(url, body, content_type='application/json').json()
    assert (answer['diverse'], answer['warmup_annotations'], answer['stream_mode']) == (True, 5, 'off')
    for bad in ({'warmup_annotations': -1}, {'warmup_annotations': 'many'}, {'diverse': 'perhaps'}):
        response = client_owner.patch(url, bad, content_type='application/json')
        assert response.status_code == 400 and list(bad) == list(response.json()['validation_errors'])
