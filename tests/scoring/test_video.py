"""Video projects are scored like image ones: each ``videorectangle`` track is a region with its ``score``.

The model server writes one region per track (``score``: the track's mean detection score) and the
prediction's ``score`` (their mean). ``min_region`` stores 1 - the lowest track score, ``entropy`` the
mean binary entropy of the track scores; the Data Manager sorts and filters by it and the uncertainty
stream serves the least certain video first, through Label Studio's real APIs.
"""

import json

import numpy as np
import pytest

from ls_extensions.scoring.measures import EMPTY_VALUE, binary_entropy, uncertainty
from tests.scoring.conftest import create_view, number_filter, page, stored

ABSENT = object()  # a track region without a "score" key
# per video: its track scores (None: no prediction); min_region 0.2, 0.7, 0.4, none, 0.15
TRACK_SCORES = ((0.9, 0.8), (0.95, 0.3, 0.7), (0.6,), None, (0.85,))


def track(score, track_id, label='fish', frames=(1, 12, 25)):
    """One track as the model server writes it (``track_keyframes.track_region``): keyframes and a score."""
    shape = {'enabled': True, 'rotation': 0, 'x': 10.0, 'y': 10.0, 'width': 20.0, 'height': 20.0}
    sequence = [{'frame': f, 'time': f / 25, **shape} for f in frames]
    region = {
        'id': track_id,
        'type': 'videorectangle',
        'from_name': 'box',
        'to_name': 'video',
        'value': {'sequence': sequence, 'labels': [label], 'framesCount': 50, 'duration': 2.0},
    }
    if score is not ABSENT:
        region['score'] = score
    return region


def predict_tracks(task, version, scores, task_score=ABSENT):
    """A video prediction with one region per track score; the task score is their mean unless given."""
    from tasks.models import Prediction

    numbers = [s for s in scores if isinstance(s, float)]
    if task_score is ABSENT:
        task_score = sum(numbers) / len(numbers) if numbers else None
    result = [track(score, f'{task.id}-{i}') for i, score in enumerate(scores)]
    return Prediction.objects.create(
        task=task, project=task.project, model_version=version, score=task_score, result=result
    )


def make_videos(project, count):
    from tasks.models import Task

    return [Task.objects.create(project=project, data={'video': f'/data/upload/1/clip{i}.mp4'}) for i in range(count)]


@pytest.fixture
def videos(video_project):
    """Five videos, four with a prediction of tracks (``TRACK_SCORES``)."""
    tasks = make_videos(video_project, len(TRACK_SCORES))
    for task, scores in zip(tasks, TRACK_SCORES, strict=True):
        if scores is not None:
            predict_tracks(task, 'v1', scores)
    return tasks


def ids(body):
    return [task['id'] for task in body['tasks']]


def patch_policy(client, project, body):
    response = client.patch(
        f'/api/projects/{project.id}/uncertainty/', json.dumps(body), content_type='application/json'
    )
    assert response.status_code == 200, response.content
    return response.json()


# --- the measure on track regions (pure) ------------------------------------------------------------


def test_min_region_is_one_minus_the_lowest_track_score():
    outcome = uncertainty('min_region', [track(0.95, 'a'), track(0.3, 'b'), track(0.7, 'c')], 0.65)
    assert (outcome.value, outcome.regions, outcome.used) == (pytest.approx(0.7), 3, 3)


def test_entropy_is_the_mean_binary_entropy_of_the_track_scores():
    expected = (binary_entropy(0.9) + binary_entropy(0.8)) / 2
    assert uncertainty('entropy', [track(0.9, 'a'), track(0.8, 'b')]).value == pytest.approx(expected)


def test_the_model_servers_own_track_region_is_scored_by_its_mean_detection_score():
    """``track_region`` is what ``/predict`` on a video writes: its ``score`` is what the measure reads."""
    from ls_extensions.video.track_keyframes import track_region

    def region(scores, region_id):
        frames = np.arange(1, len(scores) + 1)
        xyxy = np.array([[4.0 + i, 4.0, 24.0 + i, 20.0] for i in range(len(scores))])
        return track_region(
            frames, xyxy, 64, 48, 50, fps=25.0, label='fish', region_id=region_id,
            from_name='box', to_name='video', scores=np.array(scores),
        )  # fmt: skip

    weak, strong = region([0.4, 0.5, 0.6], 'weak'), region([0.9, 0.95, 1.0], 'strong')
    assert weak['type'] == 'videorectangle' and weak['score'] == pytest.approx(0.5)
    assert uncertainty('min_region', [strong, weak]).value == pytest.approx(0.5)
    entropy = (binary_entropy(0.5) + binary_entropy(0.95)) / 2
    assert uncertainty('entropy', [strong, weak]).value == pytest.approx(entropy)


def test_bad_track_scores_are_ignored_and_counted_never_raised():
    outcome = uncertainty('min_region', [track(ABSENT, 'a'), track(float('nan'), 'b'), track(0.7, 'c')])
    assert (outcome.value, outcome.used, outcome.ignored) == (pytest.approx(0.3), 1, 2)
    nothing = uncertainty('min_region', [track(float('nan'), 'a'), track(ABSENT, 'b')])
    assert (nothing.value, nothing.ignored, nothing.reason) == (None, 2, 'no valid region scores')
    assert uncertainty('entropy', [], None).value == EMPTY_VALUE  # no tracks, no task score: certain


# --- stored, shown, sorted, filtered, served ----------------------------------------------------------


@pytest.mark.django_db
def test_each_video_stores_one_minus_its_lowest_track_score_and_entropy_on_request(client_owner, video_project, videos):
    t = [task.id for task in videos]
    assert stored(video_project) == {
        t[0]: (pytest.approx(0.2), 'v1', 'min_region'),
        t[1]: (pytest.approx(0.7), 'v1', 'min_region'),
        t[2]: (pytest.approx(0.4), 'v1', 'min_region'),
        t[4]: (pytest.approx(0.15), 'v1', 'min_region'),
    }
    report = patch_policy(client_owner, video_project, {'measure': 'entropy'})
    assert report['tasks'] == {'ranked': 4, 'unranked': 0, 'clamped': 0, 'ignored': 0}
    values = {task_id: value for task_id, (value, _, _) in stored(video_project).items()}
    for task_id, scores in zip(t, TRACK_SCORES, strict=True):
        if scores is not None:
            assert values[task_id] == pytest.approx(sum(map(binary_entropy, scores)) / len(scores))


@pytest.mark.django_db
def test_the_data_manager_shows_sorts_and_filters_videos_by_uncertainty(client_owner, video_project, videos):
    t = [task.id for task in videos]
    response = client_owner.get(f'/api/dm/columns/?project={video_project.id}')
    assert response.status_code == 200
    columns = {c['id']: c for c in response.json()['columns']}
    assert columns['uncertainty']['type'] == 'Number' and 'video track' in columns['uncertainty']['help']
    assert 'uncertainty_model_version' in columns

    most_first = page(client_owner, create_view(client_owner, video_project, ['-tasks:uncertainty']))
    assert ids(most_first) == [t[1], t[2], t[0], t[4], t[3]]
    assert [task['uncertainty'] for task in most_first['tasks']] == [
        pytest.approx(0.7),
        pytest.approx(0.4),
        pytest.approx(0.2),
        pytest.approx(0.15),
        None,
    ]
    least_first = page(client_owner, create_view(client_owner, video_project, ['tasks:uncertainty']))
    assert ids(least_first) == [t[4], t[0], t[2], t[1], t[3]]
    doubtful = create_view(client_owner, video_project, ['-tasks:uncertainty'], number_filter('greater', 0.3))
    assert ids(page(client_owner, doubtful)) == [t[1], t[2]]


@pytest.mark.django_db
def test_the_stream_serves_the_least_certain_video_first(client_owner, user, video_project, videos):
    """Chosen with the Data Manager action, served through Label Studio's own next-task API."""
    from tasks.models import Annotation, Task

    action = f'/api/dm/actions?id=label_most_uncertain_first&project={video_project.id}'
    selection = json.dumps({'selectedItems': {'all': True, 'excluded': []}})
    assert client_owner.post(action, selection, content_type='application/json').status_code == 200
    patch_policy(client_owner, video_project, {'warmup_annotations': 0})  # rank from the first task
    served = []
    for _ in videos:
        response = client_owner.get(f'/api/projects/{video_project.id}/next/')
        assert response.status_code == 200, response.content
        served.append(response.json()['id'])
        task = Task.objects.get(pk=served[-1])
        Annotation.objects.create(task=task, project=video_project, completed_by=user, result=[track(None, 'x')])
    t = [task.id for task in videos]
    assert served == [t[1], t[2], t[0], t[4], t[3]]  # by 1 - lowest track score, then the unscored one


@pytest.mark.django_db
def test_the_entropy_stream_follows_the_entropy_order(client_owner, video_project, videos):
    """Entropy ranks differently (a lone 0.6 track is the most doubtful): the stream follows the measure."""
    t = [task.id for task in videos]
    patch_policy(client_owner, video_project, {'measure': 'entropy', 'stream': True, 'warmup_annotations': 0})
    response = client_owner.get(f'/api/projects/{video_project.id}/next/')
    assert response.status_code == 200 and response.json()['id'] == t[2]  # H(0.6) = 0.97, the highest


@pytest.mark.django_db
def test_missing_nan_scores_and_empty_predictions_are_counted_never_a_500(client_owner, video_project):
    tasks = make_videos(video_project, 5)
    predict_tracks(tasks[0], 'v1', [ABSENT, 0.7])  # one track without a score: the other decides
    predict_tracks(tasks[1], 'v1', ['NaN', ABSENT], task_score=None)  # no usable score at all: no value
    predict_tracks(tasks[2], 'v1', [ABSENT], task_score=0.4)  # the task score stands in: 1 - 0.4
    predict_tracks(tasks[3], 'v1', [], task_score=None)  # no tracks, no task score: certain by convention
    assert stored(video_project) == {
        tasks[0].id: (pytest.approx(0.3), 'v1', 'min_region'),
        tasks[1].id: (None, 'v1', 'min_region'),
        tasks[2].id: (pytest.approx(0.6), 'v1', 'min_region'),
        tasks[3].id: (EMPTY_VALUE, 'v1', 'min_region'),
    }
    report = client_owner.get(f'/api/projects/{video_project.id}/uncertainty/')
    assert report.status_code == 200
    assert report.json()['tasks'] == {'ranked': 3, 'unranked': 1, 'clamped': 0, 'ignored': 3}
    body = page(client_owner, create_view(client_owner, video_project, ['-tasks:uncertainty']))
    assert ids(body) == [tasks[2].id, tasks[0].id, tasks[3].id, tasks[1].id, tasks[4].id]


@pytest.mark.django_db
def test_an_image_and_a_video_project_rank_side_by_side(client_owner, image_project, video_project, videos):
    from tests.scoring.conftest import make_tasks, predict

    images = make_tasks(image_project, 2)
    predict(images[0], 'v1', scores=[0.9, 0.2])
    predict(images[1], 'v1', scores=[0.6])
    image_page = page(client_owner, create_view(client_owner, image_project, ['-tasks:uncertainty']))
    assert ids(image_page) == [images[0].id, images[1].id]
    assert [task['uncertainty'] for task in image_page['tasks']] == [pytest.approx(0.8), pytest.approx(0.4)]
    video_page = page(client_owner, create_view(client_owner, video_project, ['-tasks:uncertainty']))
    assert ids(video_page)[0] == videos[1].id
