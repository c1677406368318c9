"""Hostile requests get a 4xx with a message on every route, never a 500, and the server stays up.

Sent as raw bytes over a real socket to the real wsgiref server (the HTTP layer is part of the fault:
Content-Length, truncated and chunked bodies, a client that stops mid-body). The route list comes
from ``ModelServer.ROUTES``, so a new route is covered without editing this file.
"""

import json
import time

import numpy as np
import pytest

from ls_extensions.ml_backend import synthetic
from ls_extensions.ml_backend.server import ModelServer
from ls_extensions.ml_backend.wsgi_app import _QuietHandler
from tests.label_configs import IMAGE_BOXES
from tests.ml_backend.support import call, http, png_data_uri, raw_request, served

FIXED = 'tests.ml_backend.support.FixedAdapter'
ROUTES = sorted(ModelServer.ROUTES)
LIMIT = 64 * 1024


@pytest.fixture
def app(tmp_path):
    return ModelServer(adapter=FIXED, model_dir=tmp_path / 'models', max_body=LIMIT)


@pytest.fixture
def server(app):
    with served(app) as running:
        yield running


def request_bytes(method, path, body=b'', headers=None):
    lines = [f'{method} {path} HTTP/1.1', 'Host: 127.0.0.1']
    lines += [f'{k}: {v}' for k, v in (headers or {}).items()]
    return ('\r\n'.join(lines) + '\r\n\r\n').encode('latin-1') + body


def error_of(body):
    payload = json.loads(body)
    assert isinstance(payload.get('error'), str) and payload['error'], payload
    return payload['error']


# (name, Content-Length header, body bytes, expected status, words of the message)
HTTP_FAULTS = [
    ('non-numeric length', 'abc', b'{}', 400, 'Content-Length'),
    ('negative length', '-1', b'{}', 400, 'Content-Length'),
    ('float length', '1e3', b'{}', 400, 'Content-Length'),
    ('signed length', '+2', b'{}', 400, 'Content-Length'),
    ('hex length', '0x10', b'{}', 400, 'Content-Length'),
    ('huge length', '9' * 40, b'{}', 413, 'over the limit'),
    ('over the limit', str(LIMIT + 1), b'', 413, 'over the limit'),
    ('truncated body', '100', b'{"project": 1', 400, 'truncated'),
    ('invalid JSON', '13', b'{"project": 1', 400, 'not valid JSON'),
    ('invalid UTF-8', '4', b'\xff\xfe\xfd\xfc', 400, 'not valid JSON'),
    ('a list', '6', b'[1, 2]', 400, 'must be a JSON object, not a list'),
    ('a string', '5', b'"abc"', 400, 'must be a JSON object, not a string'),
    ('a number', '2', b'42', 400, 'must be a JSON object, not a number'),
    ('deep nesting', '60000', b'[' * 30000 + b']' * 30000, 400, 'not valid JSON'),
]


@pytest.mark.parametrize(('method', 'path'), ROUTES)
def test_malformed_http_is_a_4xx_on_every_route(server, method, path):
    for name, length, body, expected, words in HTTP_FAULTS:
        status, answer = raw_request(server.port, request_bytes(method, path, body, {'Content-Length': length}))
        assert status == expected, (name, status, answer[:300])
        assert words in error_of(answer), (name, answer[:300])
    status, answer = raw_request(
        server.port, request_bytes(method, path, b'2\r\n{}\r\n0\r\n\r\n', {'Transfer-Encoding': 'chunked'})
    )
    assert status == 411 and 'Content-Length' in error_of(answer)
    assert http('GET', server.url + '/health')[0] == 200  # and the server is still up


def test_a_client_that_stops_mid_body_gets_a_408_and_frees_the_thread(app):
    class Impatient(_QuietHandler):
        timeout = 0.5  # the server's READ_TIMEOUT, shortened: the path is forced, not raced

    with served(app, Impatient) as running:
        started = time.monotonic()
        data = request_bytes('POST', '/predict', b'{"ta', {'Content-Length': '50'})
        status, answer = raw_request(running.port, data, close_write=False, timeout=30)
        assert status == 408 and 'did not arrive' in error_of(answer)
        assert time.monotonic() - started < 20
        assert http('GET', running.url + '/health')[0] == 200


def test_a_request_path_with_control_characters_answers_a_clean_status_line(server):
    status, answer = raw_request(server.port, request_bytes('GET', '/x%00%0d%0aSet-Cookie:%20a=b'))
    assert status == 404 and 'not served here' in error_of(answer)


# bodies of the right kind (a JSON object) with fields of the wrong type: (route, body, words of the message)
WRONG_SHAPES = [
    ('/predict', {'tasks': 'all'}, '"tasks" must be a list of objects, not a string'),
    ('/predict', {'tasks': {'id': 1}}, '"tasks" must be a list of objects, not an object'),
    ('/predict', {'tasks': ['x'], 'label_config': IMAGE_BOXES}, '"tasks[0]" must be an object'),
    ('/predict', {'tasks': [{'id': 1, 'data': 'img.png'}]}, 'tasks[0]: "data" must be an object'),
    ('/predict', {'tasks': [], 'label_config': 5}, '"label_config" must be a string, not a number'),
    ('/predict', {'tasks': [], 'label_config': IMAGE_BOXES, 'project': [1]}, '"project" must be a string or a number'),
    ('/predict', {'tasks': [], 'label_config': '<View'}, 'not valid XML'),
    ('/predict', {'tasks': []}, 'empty label config'),
    ('/setup', {'project': '1.1', 'schema': ['x']}, '"schema" must be a string, not a list'),
    ('/setup', {'project': '1.1', 'schema': IMAGE_BOXES, 'hostname': 5}, '"hostname" must be a string'),
    ('/setup', {'project': '1.1', 'schema': IMAGE_BOXES, 'access_token': {}}, '"access_token" must be a string'),
    ('/setup', {'project': True, 'schema': IMAGE_BOXES}, '"project" must be a string or a number, not a boolean'),
    ('/setup', {'project': '1.1', 'schema': IMAGE_BOXES, 'hostname': 'file:///etc'}, 'must be an http(s) URL'),
    ('/setup', {'project': '1.1', 'schema': IMAGE_BOXES, 'hostname': 'http://[::1'}, 'must be an http(s) URL'),
    ('/setup', {'project': '1.1', 'schema': IMAGE_BOXES + '\x00'}, 'NUL'),
    ('/webhook', {'action': 5}, '"action" must be a string'),
    ('/webhook', {'action': 'START_TRAINING', 'project': 'x'}, 'START_TRAINING without a project id'),
    ('/webhook', {'action': 'START_TRAINING', 'project': {'id': [1]}}, 'START_TRAINING without a project id'),
    ('/webhook', {'action': 'START_TRAINING', 'project': {'id': 1, 'label_config': 7}}, '"label_config" must be'),
    ('/train', {'project': 1, 'annotations': {}}, '"annotations" must be a list of objects'),
    ('/train', {'project': 1, 'annotations': [{'annotations': 'x'}]}, 'annotations[0]: "annotations" must be'),
    ('/train', {'project': 1, 'annotations': [{'annotations': [{'result': 'x'}]}]}, '"result" must be a list'),
    ('/job_status', {}, '"job" is required'),
    ('/job_status', {'job': {'id': 1}}, '"job" must be a string or a number, not an object'),
    ('/rollback', {'version': 0}, '"version" must be a string, not a number'),
    ('/rollback', {'version': ['fixed.v0']}, '"version" must be a string, not a list'),
]


@pytest.mark.parametrize(('path', 'body', 'words'), WRONG_SHAPES, ids=[f'{p} {w[:30]}' for p, _, w in WRONG_SHAPES])
def test_fields_of_the_wrong_type_are_a_400_naming_the_field(server, path, body, words):
    status, answer, reason = http('POST', server.url + path, body)
    assert status == 400 and words in answer['error'], (status, answer)
    assert '\x00' not in reason


@pytest.mark.parametrize(('method', 'path'), ROUTES)
def test_every_wrong_shape_on_every_route_is_below_500(server, method, path):
    """The table above sent to every route, not only its own: never a 5xx, and GET routes ignore bodies."""
    for _, body, _ in WRONG_SHAPES:
        status, answer, _ = http(method, server.url + path, body)
        assert status < 500, (body, status, answer)


def test_strings_where_numbers_belong_in_a_train_body_are_dropped_and_counted(app):
    rng = np.random.default_rng(0)
    image, boxes = synthetic.make_image(rng, size=48)
    good = synthetic.to_ls_result(boxes, 48, 48)
    bad = [
        {**good[0], 'value': {**good[0]['value'], 'x': '10'}},
        {**good[0], 'value': {**good[0]['value'], 'width': None}},
        {**good[0], 'value': {**good[0]['value'], 'rotation': 'left'}},
        {**good[0], 'value': {**good[0]['value'], 'rectanglelabels': 'fish'}},
        {**good[0], 'value': 'x'},
    ]
    task = {'id': 'one', 'data': {'image': png_data_uri(image)}, 'annotations': [{'id': 'a', 'result': bad}]}
    code, _, answer = call(app, 'POST', '/train', {'project': 1, 'label_config': IMAGE_BOXES, 'annotations': [task]})
    assert code == 201, answer
    assert app.trainer.wait_idle(10)
    job = app.trainer.status()['history'][0]
    assert job['status'] == 'noop' and job['dataset']['malformed_regions'] == len(bad), job


def test_malformed_image_urls_are_that_tasks_error(server):
    urls = ['http://[::1', 'http://127.0.0.1:99999/a.png', 'http://\x00/a.png', 'ftp://x/a.png', 'data:', 5, None]
    tasks = [{'id': i, 'data': {'image': url}} for i, url in enumerate(urls)]
    status, answer, _ = http('POST', server.url + '/predict', {'tasks': tasks, 'label_config': IMAGE_BOXES})
    assert status == 200, answer
    assert [r['task'] for r in answer['errors']] == list(range(len(urls))), answer


# --- /rollback: only versions the registry holds


def test_rollback_refuses_paths_and_unknown_names(app, tmp_path):
    trained = tmp_path / 'trained.pth'
    trained.write_bytes(b'x')
    app.registry.register(trained, make_current=False)
    app.rollback('fixed.v1')  # served
    outside = tmp_path / 'outside'  # ../../outside from versions/: what a traversal would load
    outside.mkdir()
    (outside / 'meta.json').write_text(json.dumps({'version': 'outside', 'number': 99, 'checkpoint': None}))
    current = app.registry.current_version()
    hostile = [
        '../../outside',
        str(outside),
        'fixed.v0/../../../outside',
        'fixed.v0\x00',
        '.',
        '..',
        'nope',
        'x' * 5000,
    ]
    for version in hostile:
        code, reason, answer = call(app, 'POST', '/rollback', {'version': version})
        assert code == 400, (version, answer)
        assert 'unknown model version' in answer['error'] or 'NUL' in answer['error'], (version, answer)
        assert 'NUL' in answer['error'] or 'known versions: fixed.v0, fixed.v1' in answer['error'], answer
        assert '\x00' not in reason
        assert app.registry.current_version() == current and app.version == current
    assert call(app, 'POST', '/rollback', {'version': 'fixed.v0'})[2] == {'model_version': 'fixed.v0'}
