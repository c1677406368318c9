"""The protocol layer with stub adapters, called in-process: no MMDetection, no Label Studio."""

import time

import numpy as np
import pytest

from ls_extensions.ml_backend import synthetic
from ls_extensions.ml_backend.adapters.base import AdapterError
from ls_extensions.ml_backend.server import ModelServer, build_server
from tests.label_configs import IMAGE_BOXES, VIDEO_TRACKING
from tests.ml_backend.support import FixedAdapter, SlowAdapter, call, png_data_uri

FIXED = 'tests.ml_backend.support.FixedAdapter'
SLOW = 'tests.ml_backend.support.SlowAdapter'


@pytest.fixture
def app(tmp_path):
    FixedAdapter.batches.clear()
    return ModelServer(adapter=FIXED, model_dir=tmp_path / 'models', score_threshold=0.3, batch_size=2)


def test_health_setup_versions(app):
    code, _, body = call(app, 'GET', '/health')
    assert code == 200 and body['status'] == 'UP' and body['model_version'] == 'fixed.v0'
    code, _, body = call(
        app,
        'POST',
        '/setup',
        {'project': '3.1700000000', 'schema': IMAGE_BOXES, 'hostname': 'http://localhost:1', 'access_token': 't'},
    )
    assert code == 200 and body['model_version'] == 'fixed.v0'
    assert body['labels'] == {'mapped': {'fish': 'fish', 'Crab': 'crab'}, 'unmapped_labels': []}
    assert app.projects[3]['hostname'] == 'http://localhost:1'
    assert call(app, 'GET', '/versions')[2]['versions'] == ['fixed.v0']


TEXT_CLASSES = (
    '<View><Text name="text" value="$text"/><Choices name="c" toName="text"><Choice value="a"/></Choices></View>'
)


def test_setup_refuses_a_config_without_rectanglelabels_with_a_readable_reason(app):
    code, reason, body = call(app, 'POST', '/setup', {'project': '1.1', 'schema': TEXT_CLASSES})
    assert code == 400 and 'RectangleLabels' in body['error'] and 'RectangleLabels' in reason
    # a video tracking config is served too (tracks, tests/ml_backend/test_video_predict.py)
    assert call(app, 'POST', '/setup', {'project': '1.1', 'schema': VIDEO_TRACKING})[0] == 200
    other = IMAGE_BOXES.replace('fish', 'tree').replace('crab', 'house')
    code, reason, body = call(app, 'POST', '/setup', {'project': '1.1', 'schema': other})
    assert code == 400 and 'predicted_values' in reason


def test_predict_every_task_batched_percent_boxes_scores_and_errors(app):
    img, _ = synthetic.make_image(np.random.default_rng(0), size=(200, 100))
    tasks = [
        {'id': 1, 'data': {'image': png_data_uri(img)}},
        {'id': 2, 'data': {'image': 'data:image/png;base64,AAAA'}},  # unreadable
        {'id': 3, 'data': {'image': png_data_uri(img)}},
        {'id': 4, 'data': {}},  # missing
        {'id': 5, 'data': {'image': png_data_uri(img)}},
        {'id': 6, 'data': {'image': 'http://169.254.169.254/x.png'}},  # host not allowed
        {'id': 7, 'data': {'image': png_data_uri(img)}},
        {'id': 8, 'data': {'image': png_data_uri(img)}},
    ]
    code, _, body = call(app, 'POST', '/predict', {'tasks': tasks, 'project': '1.1', 'label_config': IMAGE_BOXES})
    assert code == 200 and len(body['results']) == len(tasks)
    assert FixedAdapter.batches == [2, 2, 1]  # 5 readable images in batches of 2
    failed = {r['task']: r['error'] for r in body['results'] if 'error' in r}
    assert set(failed) == {2, 4, 6} and 'readable' in failed[2] and 'not allowed' in failed[6]
    assert all('result' not in r for r in body['results'] if 'error' in r)  # Label Studio saves no prediction
    good = body['results'][0]
    assert good['model_version'] == 'fixed.v0'
    fish, crab = good['result']
    assert fish['type'] == 'rectanglelabels' and fish['from_name'] == 'label' and fish['to_name'] == 'image'
    assert (fish['original_width'], fish['original_height']) == (200, 100)
    assert fish['value']['rectanglelabels'] == ['fish'] and crab['value']['rectanglelabels'] == ['crab']
    assert fish['value']['x'] == pytest.approx(10) and fish['value']['y'] == pytest.approx(20)
    assert fish['value']['width'] == pytest.approx(40) and fish['value']['height'] == pytest.approx(40)
    assert fish['score'] == 0.9 and crab['score'] == 0.5 and good['score'] == pytest.approx(0.7)
    assert body['dropped_unmapped'] == {'person': 5}
    assert call(app, 'GET', '/metrics')[2]['dropped_unmapped'] == {'person': 5}


def test_predicted_values_maps_model_classes_to_differently_named_labels(app):
    config = IMAGE_BOXES.replace('<Label value="crab"/>', '<Label value="Krabbe" predicted_values="crab"/>')
    img = np.zeros((10, 10, 3), np.uint8)
    body = call(
        app, 'POST', '/predict', {'tasks': [{'id': 1, 'data': {'image': png_data_uri(img)}}], 'label_config': config}
    )[2]
    assert [r['value']['rectanglelabels'] for r in body['results'][0]['result']] == [['fish'], ['Krabbe']]


def _annotated_task(i, rng):
    img, boxes = synthetic.make_image(rng, size=64)
    result = synthetic.to_ls_result(boxes, 64, 64)
    return {'id': i, 'data': {'image': png_data_uri(img)}, 'annotations': [{'id': i, 'result': result}]}


def test_training_runs_in_background_one_at_a_time_next_queued_once(tmp_path):
    SlowAdapter.release.clear()
    SlowAdapter.fitted.clear()
    app = ModelServer(adapter=SLOW, model_dir=tmp_path / 'models')
    rng = np.random.default_rng(0)
    tasks = [_annotated_task(i, rng) for i in range(4)]
    payload = {'project': '7.1', 'label_config': IMAGE_BOXES, 'annotations': tasks}
    started = time.monotonic()
    code, _, first = call(app, 'POST', '/train', payload)
    assert code == 201 and first['status'] == 'started'
    deadline = time.monotonic() + 10
    while app.trainer.running is None and time.monotonic() < deadline:
        time.sleep(0.02)
    second = call(app, 'POST', '/train', payload)[2]
    third = call(app, 'POST', '/train', payload)[2]
    assert time.monotonic() - started < 5  # the requests returned while training blocks
    assert second['status'] == 'queued' and third == {'status': 'already_queued', 'job': second['job']}
    status = call(app, 'GET', '/training')[2]
    assert status['state'] == 'training' and status['running']['id'] == first['job']
    assert status['running']['progress']['epochs'] == 1
    assert call(app, 'GET', '/health')[2]['model_version'] == 'fixed.v0'  # still serving the old model
    SlowAdapter.release.set()
    assert app.trainer.wait_idle(30)
    history = call(app, 'GET', '/training')[2]['history']
    assert [j['status'] for j in history] == ['succeeded', 'succeeded'] and history[0]['merged_requests'] == 1
    assert SlowAdapter.fitted == [4, 4]
    assert call(app, 'GET', '/versions')[2]['versions'] == ['fixed.v0', 'fixed.v1', 'fixed.v2']
    assert call(app, 'GET', '/health')[2]['model_version'] == 'fixed.v2'
    assert call(app, 'POST', '/job_status', {'job': first['job']})[2]['version'] == 'fixed.v1'
    # roll back to the previous version, then to a named one
    assert call(app, 'POST', '/rollback', {})[2] == {'model_version': 'fixed.v1'}
    assert call(app, 'POST', '/rollback', {'version': 'fixed.v0'})[2] == {'model_version': 'fixed.v0'}
    assert call(app, 'GET', '/health')[2]['model_version'] == 'fixed.v0'
    assert call(app, 'POST', '/rollback', {'version': 'nope'})[0] == 400


def test_training_without_usable_annotations_is_a_recorded_explained_noop(app):
    tasks = [{'id': 1, 'data': {'image': 'x'}, 'annotations': []}]
    app.trainer.request(1, 'test', IMAGE_BOXES, tasks=tasks)
    assert app.trainer.wait_idle(10)
    job = app.trainer.status()['history'][0]
    assert job['status'] == 'noop' and 'no usable annotations' in job['message']
    rng = np.random.default_rng(1)
    other = _annotated_task(2, rng)
    for region in other['annotations'][0]['result']:
        region['value']['rectanglelabels'] = ['octopus']
    app.trainer.request(1, 'test', IMAGE_BOXES, tasks=[other])
    assert app.trainer.wait_idle(10)
    job = app.trainer.status()['history'][0]
    assert job['status'] == 'noop' and 'octopus' in job['message']
    assert call(app, 'GET', '/versions')[2]['versions'] == ['fixed.v0']


def test_webhook_start_training_and_annotation_events(tmp_path):
    app = ModelServer(adapter=FIXED, model_dir=tmp_path / 'm', train_every=2)
    event = {'action': 'ANNOTATION_CREATED', 'project': {'id': 4, 'label_config': IMAGE_BOXES}, 'annotation': {}}
    assert call(app, 'POST', '/webhook', event)[2] == {'status': 'counted', 'events': 1}
    code, _, body = call(app, 'POST', '/webhook', event)
    assert code == 201 and body['status'] == 'started'
    assert call(app, 'POST', '/webhook', {'action': 'PROJECT_UPDATED', 'project': {'id': 4}})[2]['status'] == 'ignored'
    assert app.trainer.wait_idle(10)
    # no --ls-url (and a webhook names no host): the job fails with the option to set, nothing is served
    job = app.trainer.status()['history'][0]
    assert job['status'] == 'failed' and '--ls-url' in job['message']
    assert call(app, 'POST', '/webhook', {'action': 'START_TRAINING', 'project': {}})[0] == 400


def test_missing_checkpoint_or_config_is_a_start_up_error_naming_the_path(tmp_path):
    with pytest.raises(AdapterError, match=str(tmp_path / 'nope.pth')):
        build_server({'adapter': FIXED, 'checkpoint': str(tmp_path / 'nope.pth'), 'model_dir': str(tmp_path)})
    with pytest.raises(AdapterError, match='nope.py'):
        build_server({'adapter': FIXED, 'config': str(tmp_path / 'nope.py'), 'model_dir': str(tmp_path)})
    with pytest.raises(AdapterError, match='not an Adapter'):
        build_server({'adapter': 'ls_extensions.ml_backend.server.ModelServer', 'model_dir': str(tmp_path)})


def test_bad_requests(app):
    assert call(app, 'GET', '/nope')[0] == 404
    assert call(app, 'GET', '/predict')[0] == 405
    assert call(app, 'POST', '/predict', {'tasks': [], 'label_config': TEXT_CLASSES})[0] == 400


def test_restart_serves_the_latest_trained_version(tmp_path):
    app = ModelServer(adapter=FIXED, model_dir=tmp_path / 'm')
    app.trainer.request(1, 'test', IMAGE_BOXES, tasks=[_annotated_task(1, np.random.default_rng(2))])
    assert app.trainer.wait_idle(10)
    assert app.version == 'fixed.v1'
    again = ModelServer(adapter=FIXED, model_dir=tmp_path / 'm')
    assert again.version == 'fixed.v1'


def test_management_command_parses_the_documented_options():
    from ls_extensions.ml_backend.management.commands.serve_ml_backend import Command

    parser = Command().create_parser('manage.py', 'serve_ml_backend')
    options = parser.parse_args(
        ['--config', 'c.py', '--checkpoint', 'w.pth', '--device', 'cuda:0', '--port', '9090', '--adapter', FIXED]
        + ['--model-dir', 'd', '--score-threshold', '0.5', '--option', 'epochs=3']
    )
    assert (options.config, options.checkpoint, options.device, options.port) == ('c.py', 'w.pth', 'cuda:0', 9090)
    assert options.score_threshold == 0.5 and options.option == ['epochs=3'] and options.adapter == FIXED


def test_management_command_stops_with_the_missing_path(tmp_path):
    from django.core.management import CommandError, call_command

    from ls_extensions.ml_backend.management.commands.serve_ml_backend import Command

    missing = tmp_path / 'coco_faster_rcnn.pth'
    with pytest.raises(CommandError, match=f'checkpoint file not found: {missing}'):
        call_command(Command(), '--adapter', FIXED, '--checkpoint', str(missing), '--model-dir', str(tmp_path))


def test_basic_auth_as_label_studio_sends_it(tmp_path):
    import base64
    import io
    from wsgiref.util import setup_testing_defaults

    app = ModelServer(adapter=FIXED, model_dir=tmp_path / 'm', basic_auth='ls:s3cret')

    def status(header):
        environ = {'REQUEST_METHOD': 'GET', 'PATH_INFO': '/health', 'wsgi.input': io.BytesIO()}
        if header:
            environ['HTTP_AUTHORIZATION'] = header
        setup_testing_defaults(environ)
        seen = {}
        app(environ, lambda s, h: seen.setdefault('status', s))
        return int(seen['status'].split()[0])

    assert status(None) == 401
    assert status('Basic ' + base64.b64encode(b'ls:wrong').decode()) == 401
    assert status('Basic ' + base64.b64encode(b'ls:s3cret').decode()) == 200
