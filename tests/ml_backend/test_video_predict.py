"""`/predict` on video tasks: the real model server pre-annotates a generated video as `videorectangle` tracks.

The video (written by `frames.VideoWriter`, as `frames_to_video` writes them) shows solid coloured squares
moving on known paths: two red ones (one crossing the frame, one nearly still), a blue one turning once,
a green one visible on frames 21-60 only. The detector is `ColourSquareAdapter` (tests/ml_backend/
colour_adapter.py), a real adapter thresholding colours, served by `python -m ls_extensions.ml_backend.server`
in a subprocess that reads the videos from a stand-in Label Studio on loopback (`/data/upload/...`, with the
token). The answer's keyframes are expanded with our engine of the UI's rule (`expand_sequence`) and
compared with the true squares on every frame.
"""

import tempfile
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest

from ls_extensions.ml_backend.labels import parse_controls, parse_label_config
from ls_extensions.ml_backend.lifecycle import ModelServer
from ls_extensions.ml_backend.video_predict import VideoError, task_frame_rate
from ls_extensions.video.frames import VideoWriter, probe
from ls_extensions.video.interpolation import expand_sequence
from tests.label_configs import IMAGE_BOXES
from tests.ml_backend.colour_adapter import draw_squares
from tests.ml_backend.support import ModelServerProcess, ServedInThread, call, http, png_data_uri

pytest.importorskip('trackers', reason='ByteTrack lives in the `trackers` package')

ADAPTER = 'tests.ml_backend.colour_adapter.ColourSquareAdapter'
KEY = 'video-test-key'
WIDTH, HEIGHT, FRAMES, FPS = 320, 240, 75, 25
# (colour, size, first frame, last frame, [(frame, x, y), ...] top-left corner, linear between)
OBJECTS = [
    ('red', 48, 1, FRAMES, [(1, 10, 20), (FRAMES, 250, 60)]),
    ('red', 40, 1, FRAMES, [(1, 280, 5), (FRAMES, 278, 8)]),
    ('blue', 40, 1, FRAMES, [(1, 260, 170), (40, 150, 100), (FRAMES, 20, 160)]),
    ('green', 44, 21, 60, [(21, 140, 190), (60, 260, 190)]),
]
VIDEO_CONFIG = """<View>
  <Labels name="videoLabels" toName="video">
    <Label value="red"/><Label value="Green"/><Label value="navy" predicted_values="blue"/>
  </Labels>
  <Video name="video" value="$video" frameRate="25"/>
  <VideoRectangle name="box" toName="video"/>
</View>"""
IMAGE_AND_BARE_VIDEO = """<View>
  <Image name="image" value="$image"/>
  <RectangleLabels name="label" toName="image"><Label value="red"/><Label value="blue"/></RectangleLabels>
  <Video name="video" value="$video" frameRate="25"/>
  <Labels name="videoLabels" toName="video"><Label value="red"/></Labels>
</View>"""
LABELS = {'red': 'red', 'green': 'Green', 'blue': 'navy'}


def corner(frame, path):
    frames = [p[0] for p in path]
    x, y = np.interp(frame, frames, [p[1] for p in path]), np.interp(frame, frames, [p[2] for p in path])
    return round(float(x)), round(float(y))


def squares_on(frame):
    return [(colour, *corner(frame, path), size) for colour, size, a, b, path in OBJECTS if a <= frame <= b]


def truth(index):
    """{UI frame: pixel xyxy} of object `index` where it is visible."""
    colour, size, first, last, path = OBJECTS[index]
    boxes = {}
    for frame in range(first, last + 1):
        x, y = corner(frame, path)
        boxes[frame] = np.array([x, y, x + size, y + size], float)
    return boxes


def write_scene(path, fps=FPS):
    writer = VideoWriter(path, fps)
    for frame in range(1, FRAMES + 1):
        writer.write(draw_squares(WIDTH, HEIGHT, squares_on(frame)))
    writer.close()
    return path


def write_vfr(path):
    from tests.video.camera_files import vfr_times, write_camera_file

    return write_camera_file(path, vfr_times(), rate=FPS, size=(WIDTH, HEIGHT))


class FakeLabelStudio(ServedInThread):
    """Serves `files` {name: bytes} at /data/upload/1/<name> (404 otherwise); records the Authorization sent."""

    def __init__(self, files):
        served, seen = files, []
        self.seen = seen

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                seen.append((self.path, self.headers.get('Authorization')))
                body = served.get(self.path.removeprefix('/data/upload/1/'))
                self.send_response(200 if body is not None else 404)
                self.send_header('Content-Type', 'video/mp4' if body is not None else 'application/json')
                body = body if body is not None else b'{}'
                self.send_header('Content-Length', str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.httpd = ThreadingHTTPServer(('127.0.0.1', 0), Handler)
        self.url = f'http://127.0.0.1:{self.httpd.server_address[1]}'


@pytest.fixture(scope='module')
def videos(tmp_path_factory):
    root = tmp_path_factory.mktemp('videos')
    paths = {
        'fish.mp4': write_scene(root / 'fish.mp4'),
        'phone30.mp4': write_scene(root / 'phone30.mp4', fps=30),
        'camera-vfr.mp4': write_vfr(root / 'camera-vfr.mp4'),
    }
    files = {name: path.read_bytes() for name, path in paths.items()}
    files['broken.mp4'] = b'\x00\x00\x00\x18ftypmp42 this is not a video at all' * 50
    return paths, files


@pytest.fixture(scope='module')
def server(videos, tmp_path_factory):
    _, files = videos
    workdir = tmp_path_factory.mktemp('video-ms')
    with FakeLabelStudio(files) as ls:
        model = ModelServerProcess(
            workdir,
            ['--adapter', ADAPTER, '--model-dir', str(workdir / 'models'), '--batch-size', '8'],
            env={'LABEL_STUDIO_API_KEY': KEY},
            ls_url=ls.url,
        )
        with model:
            yield model, ls


def predict(model, tasks, config=VIDEO_CONFIG, params=None):
    payload = {'tasks': tasks, 'project': '1.1700000000', 'label_config': config}
    if params is not None:
        payload['params'] = params
    status, body, _ = http('POST', model.url + '/predict', payload, timeout=120)
    assert status == 200, body
    assert len(body['results']) == len(tasks)
    return body


def video_task(task_id, name):
    return {'id': task_id, 'data': {'video': f'/data/upload/1/{name}'}}


def drawn(region):
    """{UI frame: pixel xyxy} of what the UI draws of a region (our engine of its interpolation rule)."""
    boxes = expand_sequence(region['value']['sequence'], region['value']['framesCount'])
    x, y = boxes.x * WIDTH / 100, boxes.y * HEIGHT / 100
    xyxy = np.column_stack([x, y, x + boxes.width * WIDTH / 100, y + boxes.height * HEIGHT / 100])
    return dict(zip(boxes.frame.tolist(), xyxy, strict=True))


def iou(a, b):
    width = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    height = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = width * height
    return inter / ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter)


def match(regions):
    """Object index -> the region drawn on it (its label, and the best overlap on its first visible frame)."""
    found = {}
    for index, (colour, *_rest) in enumerate(OBJECTS):
        boxes = truth(index)
        candidates = [r for r in regions if r['value']['labels'] == [LABELS[colour]]]
        overlap = [
            max((iou(box, drawn(r)[f]) for f, box in boxes.items() if f in drawn(r)), default=0.0) for r in candidates
        ]
        assert overlap and max(overlap) > 0.5, f'no region on object {index}'
        found[index] = candidates[int(np.argmax(overlap))]
    assert len({id(r) for r in found.values()}) == len(OBJECTS) == len(regions)
    return found


def test_a_video_task_becomes_one_few_keyframe_track_per_object_drawn_on_the_true_squares(server, videos):
    model, ls = server
    body = predict(model, [video_task(1, 'fish.mp4')])
    assert body['errors'] == []
    prediction = body['results'][0]
    regions = prediction['result']
    assert {r['type'] for r in regions} == {'videorectangle'}
    assert {(r['from_name'], r['to_name']) for r in regions} == {('box', 'video')}
    frames_count = probe(videos[0]['fish.mp4']).frame_count
    assert frames_count == FRAMES
    for r in regions:
        assert r['value']['framesCount'] == frames_count and r['value']['duration'] == pytest.approx(FRAMES / FPS)
        assert 0.9 <= r['score'] <= 1.0
    assert prediction['score'] == pytest.approx(np.mean([r['score'] for r in regions]), abs=1e-3)
    keyframes = visible = 0
    for index, region in match(regions).items():
        boxes, shown = truth(index), drawn(region)
        ious = [iou(shown[f], box) if f in shown else 0.0 for f, box in boxes.items()]
        assert min(ious) >= 0.9, (index, min(ious), [f for f, v in zip(boxes, ious, strict=True) if v < 0.9])
        assert set(shown) == set(boxes)  # nothing drawn where the square is not (green: frames 21-60 only)
        keyframes += len(region['value']['sequence'])
        visible += len(boxes)
    assert keyframes <= visible / 20  # measured: 9 keyframes for 265 boxes
    assert {auth for _, auth in ls.seen} == {f'Token {KEY}'}


def test_a_frame_stride_detects_on_every_third_frame_and_the_ui_fills_in_between(server):
    model, _ = server
    body = predict(model, [video_task(1, 'fish.mp4')], params={'video_stride': 3})
    regions = body['results'][0]['result']
    for index, region in match(regions).items():
        boxes, shown = truth(index), drawn(region)
        detected = [f for f in boxes if (f - 1) % 3 == 0]
        inside = [f for f in boxes if detected[0] <= f <= detected[-1]]
        assert min(iou(shown[f], boxes[f]) for f in inside) >= 0.9
        assert {k['frame'] for k in region['value']['sequence']} <= set(detected)


def test_videos_with_the_wrong_timing_or_no_pictures_are_refused_per_task_and_the_others_predicted(server):
    model, _ = server
    tasks = [
        video_task(1, 'phone30.mp4'),
        video_task(2, 'fish.mp4'),
        video_task(3, 'camera-vfr.mp4'),
        video_task(4, 'broken.mp4'),
        video_task(5, 'missing.mp4'),
        {'id': 6, 'data': {'video': 'http://169.254.169.254/latest/x.mp4'}},
    ]
    body = predict(model, tasks)
    results = body['results']
    assert len(results[1]['result']) == len(OBJECTS)
    assert [e['task'] for e in body['errors']] == [1, 3, 4, 5, 6]
    assert '30 fps' in results[0]['error'] and 'frameRate> is 25' in results[0]['error']
    assert 'variable frame rate' in results[2]['error']
    for refused in (results[0], results[2]):
        assert 'manage.py prepare_videos' in refused['error']
    assert 'cannot be decoded' in results[3]['error']
    assert '404' in results[4]['error']
    assert 'not allowed' in results[5]['error']


def test_a_video_without_a_videorectangle_is_refused_per_task_while_images_are_predicted(server):
    model, _ = server
    image = draw_squares(200, 100, [('red', 20, 30, 40)])
    tasks = [{'id': 1, 'data': {'video': '/data/upload/1/fish.mp4'}}, {'id': 2, 'data': {'image': png_data_uri(image)}}]
    body = predict(model, tasks, config=IMAGE_AND_BARE_VIDEO)
    video, picture = body['results']
    assert 'no <VideoRectangle toName="video">' in video['error'] and video['task'] == 1
    (region,) = picture['result']
    assert region['type'] == 'rectanglelabels' and region['value']['rectanglelabels'] == ['red']
    assert region['value']['x'] == pytest.approx(10.0) and region['value']['width'] == pytest.approx(20.0)


def test_a_bad_stride_is_a_400_naming_it(server):
    model, _ = server
    payload = {'tasks': [video_task(1, 'fish.mp4')], 'label_config': VIDEO_CONFIG, 'params': {'video_stride': 0}}
    status, body, _ = http('POST', model.url + '/predict', payload)
    assert status == 400 and 'video_stride' in body['error']


def test_setup_accepts_a_video_config_and_explains_one_it_cannot_serve(tmp_path):
    app = ModelServer(adapter=ADAPTER, model_dir=tmp_path / 'models')
    code, _, body = call(app, 'POST', '/setup', {'project': '1.1', 'schema': VIDEO_CONFIG})
    assert code == 200, body
    assert body['labels'] == {'mapped': {'red': 'red', 'green': 'Green', 'blue': 'navy'}, 'unmapped_labels': []}
    bare = VIDEO_CONFIG.replace('<VideoRectangle name="box" toName="video"/>', '')
    code, reason, body = call(app, 'POST', '/setup', {'project': '1.1', 'schema': bare})
    assert code == 400 and 'no <VideoRectangle toName="video">' in body['error']
    code, _, body = call(app, 'POST', '/setup', {'project': '1.1', 'schema': IMAGE_AND_BARE_VIDEO})
    assert code == 200 and body['warnings'] and 'VideoRectangle' in body['warnings'][0]


def test_every_video_file_is_removed_after_its_prediction(server):
    """Downloads live in temporary files (`ls-ext-video-*` in the server's temporary folder, this one's):
    none is left behind, whatever the outcome."""
    model, _ = server

    def downloads():
        return sorted(Path(tempfile.gettempdir()).glob('ls-ext-video-*'))

    before = downloads()
    predict(model, [video_task(1, 'fish.mp4'), video_task(2, 'broken.mp4'), video_task(3, 'phone30.mp4')])
    assert downloads() == before


@pytest.mark.parametrize(
    ('attribute', 'rate'),
    [
        ('frameRate="25"', 25.0),
        ('framerate="29.97"', 29.97),
        ('', 24.0),
        ('frameRate="0"', 24.0),
        ('frameRate="0.04"', 25.0),
        ('frameRate="fast"', 24.0),
    ],
)
def test_the_video_plays_at_the_frame_rate_the_ui_reads(attribute, rate):
    controls = parse_controls(VIDEO_CONFIG.replace('frameRate="25"', attribute))
    assert controls.image is None and controls.video.frame_rate == pytest.approx(rate)
    assert (controls.video.from_name, controls.video.to_name, controls.video.value_key) == ('box', 'video', 'video')
    assert controls.video.labels == ['red', 'Green', 'navy'] and controls.video.predicted_values == {'navy': ['blue']}


def test_a_frame_rate_per_task_is_read_from_the_task():
    video = parse_controls(VIDEO_CONFIG.replace('frameRate="25"', 'frameRate="$fps"')).video
    assert video.frame_rate is None and task_frame_rate(video, {'fps': '25'}) == 25.0
    with pytest.raises(VideoError, match='"fps"'):
        task_frame_rate(video, {'video': 'x.mp4'})


def test_image_configs_parse_as_before():
    controls = parse_controls(IMAGE_BOXES)
    assert controls.image == parse_label_config(IMAGE_BOXES)
    assert (controls.video, controls.video_key, controls.video_error) == (None, None, None)
    assert not controls.is_video_task({'image': 'a.png'})


def test_training_shows_how_far_each_video_being_predicted_is(tmp_path):
    """`/training` lists the videos a `/predict` is working on, with frames done of all, while it runs."""
    import base64
    import threading

    from tests.ml_backend.colour_adapter import GatedColourAdapter
    from tests.ml_backend.support import call

    GatedColourAdapter.gate.clear()
    GatedColourAdapter.batches = 0
    app = ModelServer(
        adapter='tests.ml_backend.colour_adapter.GatedColourAdapter', model_dir=tmp_path / 'm', batch_size=8
    )
    uri = 'data:video/mp4;base64,' + base64.b64encode(write_scene(tmp_path / 'fish.mp4').read_bytes()).decode()
    payload = {'tasks': [{'id': 9, 'data': {'video': uri}}], 'project': '1.1', 'label_config': VIDEO_CONFIG}
    answers = []
    request = threading.Thread(target=lambda: answers.append(call(app, 'POST', '/predict', payload)))
    request.start()
    try:
        deadline = time.monotonic() + 30
        shown = []
        while not (shown and shown[0]['frames_done']) and time.monotonic() < deadline:  # the first batch done
            shown = call(app, 'GET', '/training')[2]['predicting']
            time.sleep(0.05)
        # the second batch waits at the gate: the first 8 frames are done, of the video's 75
        assert shown == [{'task': 9, 'frames_done': 8, 'frames': FRAMES, 'since': shown[0]['since']}]
    finally:
        GatedColourAdapter.gate.set()
        request.join(60)
    assert answers[0][0] == 200 and answers[0][2]['results'][0]['result']
    assert call(app, 'GET', '/training')[2]['predicting'] == []
