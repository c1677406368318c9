"""Training on video tracks: the model server trains on annotated videos' frames with the boxes the UI draws.

The videos are `test_video_predict`'s scene (coloured squares on known paths, one of them visible on
frames 21-60 only), written as `frames_to_video` writes them. Each is annotated the way Label Studio
stores a video annotation: one `videorectangle` per object with keyframes at its path's corners (the
partly visible one ends with a disabled keyframe: a hidden span). The adapter is a real one that records
what `fit` was given (`RecordingColourAdapter`): for each sample its image and boxes, and the squares its
colour detector finds on that image, so every frame handed to training can be checked against the boxes
that came with it: a frame off by one shows the crossing square 3 px away (IoU 0.88).
"""

import base64

import pytest

from ls_extensions.ml_backend.adapters.base import AdapterError
from ls_extensions.ml_backend.server import ModelServer
from ls_extensions.video.frame_sampling import DEFAULT_MAX_GAP, DEFAULT_STRIDE
from tests.ml_backend.colour_adapter import COLOURS, RecordingColourAdapter, draw_squares
from tests.ml_backend.support import call, png_data_uri
from tests.ml_backend.test_video_predict import (
    FPS,
    FRAMES,
    HEIGHT,
    LABELS,
    OBJECTS,
    VIDEO_CONFIG,
    WIDTH,
    iou,
    truth,
    write_scene,
    write_vfr,
)

ADAPTER = 'tests.ml_backend.colour_adapter.RecordingColourAdapter'
GOOD = [11, 12, 13, 14]
IMAGE_BOXES_TAGS = """
  <Image name="image" value="$image"/>
  <RectangleLabels name="label" toName="image"><Label value="red"/><Label value="navy" predicted_values="blue"/></RectangleLabels>"""
MIXED_CONFIG = VIDEO_CONFIG.replace('<View>', '<View>' + IMAGE_BOXES_TAGS, 1)  # images and videos in one project


def percent(x, y, size):
    return {'x': 100 * x / WIDTH, 'y': 100 * y / HEIGHT, 'width': 100 * size / WIDTH, 'height': 100 * size / HEIGHT}


def track_result(index, label=None, extra=()):
    """Object `index` as Label Studio stores a drawn track: keyframes at its path's corners, the last one
    disabled where the object leaves before the video ends."""
    colour, size, first, last, path = OBJECTS[index]
    sequence = [
        {'frame': frame, 'enabled': True, 'rotation': 0, 'time': (frame - 1) / FPS, **percent(x, y, size)}
        for frame, x, y in path
    ]
    if last < FRAMES:
        sequence[-1]['enabled'] = False
    return {
        'id': f'track{index}',
        'type': 'videorectangle',
        'from_name': 'box',
        'to_name': 'video',
        'origin': 'manual',
        'value': {
            'framesCount': FRAMES,
            'duration': FRAMES / FPS,
            'sequence': [*sequence, *extra],
            'labels': [label or LABELS[colour]],
        },
    }


def video_task(task_id, data_uri, results):
    return {'id': task_id, 'data': {'video': data_uri}, 'annotations': [{'id': task_id, 'result': results}]}


@pytest.fixture(scope='module')
def scene(tmp_path_factory):
    root = tmp_path_factory.mktemp('train-videos')
    uri = {
        name: 'data:video/mp4;base64,' + base64.b64encode(path.read_bytes()).decode()
        for name, path in (('fish', write_scene(root / 'fish.mp4')), ('vfr', write_vfr(root / 'vfr.mp4')))
    }
    uri['broken'] = 'data:video/mp4;base64,' + base64.b64encode(b'\x00\x00\x00\x18ftypmp42 not a video' * 40).decode()
    return uri


@pytest.fixture
def app(tmp_path):
    RecordingColourAdapter.fits.clear()
    return ModelServer(adapter=ADAPTER, model_dir=tmp_path / 'models', min_eval=10)


def train(app, tasks, config=VIDEO_CONFIG):
    code, _, body = call(app, 'POST', '/train', {'annotations': tasks, 'project': 1, 'label_config': config})
    assert code == 201, body
    assert app.trainer.wait_idle(120)
    return app.trainer.find(body['job'])


def frame_of(key):
    return int(key.rsplit('/', 1)[1])


def test_annotated_videos_train_on_sampled_frames_whose_boxes_are_the_tracks_as_the_ui_draws_them(app, scene):
    tasks = [video_task(t, scene['fish'], [track_result(i) for i in range(len(OBJECTS))]) for t in GOOD]
    job = train(app, tasks)
    assert job['status'] == 'succeeded', job
    assert job['dataset']['annotated_videos'] == 4 and job['dataset']['errors'] == []
    assert (job['train_videos'], job['eval_videos']) == (3, 1)  # task ids 3 mod 4 are held out, whole
    assert set(job['metrics']) >= {'map_before', 'map_after'} and job['metrics']['map_after'] >= 0.9
    seen = RecordingColourAdapter.fits[-1]
    assert len(seen) == job['train_images'] and len({s.group for s in seen}) == 3
    assert str(GOOD[0]) not in {s.group for s in seen}  # the held-out video: no frame of it trained on
    classes = list(COLOURS)
    for sample in seen:
        frame = frame_of(sample.key)
        assert sample.shape == (HEIGHT, WIDTH, 3)
        expected = {i: truth(i)[frame] for i in range(len(OBJECTS)) if frame in truth(i)}
        assert sorted(sample.labels.tolist()) == sorted(classes.index(OBJECTS[i][0]) for i in expected), sample.key
        for box, k in zip(sample.boxes, sample.labels, strict=True):
            # the box is the object's true square on this frame, and the frame shows that square there
            assert max(iou(box, truth_box) for truth_box in expected.values()) >= 0.95, sample.key
            assert max(iou(box, found[:4]) for found in sample.found if found[4] == k) >= 0.9, sample.key
        assert len(sample.found) == len(sample.boxes), sample.key  # a frame of the video is fully labelled
    for group in {s.group for s in seen}:
        frames = sorted(frame_of(s.key) for s in seen if s.group == group)
        assert frames[0] == 1 and all(
            DEFAULT_STRIDE <= b - a <= DEFAULT_MAX_GAP for a, b in zip(frames, frames[1:], strict=False)
        )
        assert 2 <= len(frames) <= FRAMES // DEFAULT_STRIDE + 1
        green = [frame_of(s.key) for s in seen if s.group == group and classes.index('green') in s.labels]
        assert green and all(21 <= f <= 60 for f in green)  # the hidden span gives no box
    assert not (app.registry.root / 'work').exists() or not any((app.registry.root / 'work').iterdir())


def test_a_mixed_project_trains_on_images_and_video_frames_and_names_every_video_it_could_not_use(app, scene):
    image = draw_squares(WIDTH, HEIGHT, [('red', 30, 40, 50), ('blue', 200, 120, 40)])
    image_result = [
        {
            'type': 'rectanglelabels',
            'from_name': 'label',
            'to_name': 'image',
            'value': {**percent(30, 40, 50), 'rotation': 0, 'rectanglelabels': ['red']},
        },
        {
            'type': 'rectanglelabels',
            'from_name': 'label',
            'to_name': 'image',
            'value': {**percent(200, 120, 40), 'rotation': 0, 'rectanglelabels': ['navy']},
        },
    ]
    past_end = {'frame': FRAMES + 40, 'enabled': True, 'rotation': 0, **percent(10, 10, 40)}
    tasks = [
        *(
            {'id': t, 'data': {'image': png_data_uri(image)}, 'annotations': [{'id': t, 'result': image_result}]}
            for t in (1, 2)
        ),
        video_task(12, scene['fish'], [track_result(0, extra=[past_end]), track_result(2), track_result(1, 'eel')]),
        video_task(20, scene['broken'], [track_result(0)]),
        video_task(21, scene['vfr'], [track_result(0)]),
    ]
    job = train(app, tasks, MIXED_CONFIG)
    assert job['status'] == 'succeeded', job
    dataset = job['dataset']
    assert (dataset['annotated_tasks'], dataset['annotated_videos'], dataset['unreadable_videos']) == (2, 1, 2)
    assert dataset['dropped_labels'] == {'eel': 1} and dataset['keyframes_past_end'] == 1
    errors = {e['task']: e['error'] for e in dataset['errors']}
    assert set(errors) == {20, 21}
    assert 'cannot be decoded' in errors[20]
    assert 'variable frame rate' in errors[21] and 'prepare_videos' in errors[21]
    seen = RecordingColourAdapter.fits[-1]
    images = [s for s in seen if s.key == s.group]
    frames = [s for s in seen if s.key != s.group]
    assert sorted(s.key for s in images) == ['1', '2'] and all(len(s.boxes) == 2 for s in images)
    assert frames and {s.group for s in frames} == {'12'}
    for sample in frames:  # a keyframe past the last frame changes nothing the UI draws inside the video
        red = [box for box, k in zip(sample.boxes, sample.labels, strict=True) if k == list(COLOURS).index('red')]
        assert len(red) == 1 and iou(red[0], truth(0)[frame_of(sample.key)]) >= 0.95


def test_videos_without_anything_usable_end_the_job_with_the_reason_not_an_error(app, scene):
    job = train(app, [video_task(20, scene['broken'], [track_result(0)]), video_task(21, scene['vfr'], [])])
    assert job['status'] == 'noop', job
    assert '2 videos could not be used' in job['message'] and 'task 20' in job['message']
    bare = VIDEO_CONFIG.replace('<VideoRectangle name="box" toName="video"/>', '')
    job = train(app, [video_task(11, scene['fish'], [track_result(0)])], bare)
    assert job['status'] == 'noop' and 'no <VideoRectangle toName="video">' in job['message'], job
    assert RecordingColourAdapter.fits == []


@pytest.mark.parametrize(
    ('option', 'value'),
    [
        ('video_train_stride', 'five'),
        ('video_train_stride', '0'),
        ('video_train_motion_iou', '1.5'),
        ('video_train_max_gap', '0'),
        ('video_max_mb', 'nan'),
        ('video_smooth', '-1'),
    ],
)
def test_a_bad_video_option_stops_the_server_at_start_with_its_name(tmp_path, option, value):
    with pytest.raises(AdapterError, match=option):
        ModelServer(adapter=ADAPTER, model_dir=tmp_path / 'models', options={option: value})
