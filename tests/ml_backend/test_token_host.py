"""A Label Studio token goes only where the operator pointed the server, never to a host a request named.

Label Studio's ``/setup`` POST carries ``hostname`` and ``access_token``; anybody who can reach the
server can send one. The real server process runs on loopback with a configured key
(``LABEL_STUDIO_API_KEY``); a rogue ``/setup`` names another loopback port this test listens on. Every
way the server reads from Label Studio is exercised (an upload path and an absolute URL in
``/predict``, the annotation export and images of a ``START_TRAINING`` job), and the listener records
every request it gets: the Authorization header never arrives there.
"""

import time

import numpy as np
import pytest

from ls_extensions.ml_backend import synthetic
from tests.label_configs import IMAGE_BOXES
from tests.ml_backend.support import TORCH_ADAPTER, Listener, ModelServerProcess, http

pytest.importorskip('torch', reason='torch not installed (scripts/install-ml.sh)')

KEY = 'configured-key-0123456789'
ROGUE_TOKEN = 'token-named-by-a-request'
PROJECT = '1.1700000000'


def annotated_export():
    """What Label Studio's JSON export of project 1 holds: two annotated images under /data/upload."""
    rng = np.random.default_rng(4)
    tasks = []
    for i in range(2):
        _, boxes = synthetic.make_image(rng, size=32)
        result = synthetic.to_ls_result(boxes, 32, 32)
        tasks.append({'id': i + 1, 'data': {'image': f'/data/upload/1/{i}.png'}, 'annotations': [{'result': result}]})
    return tasks


def start(tmp_path, args):
    args = ['--adapter', TORCH_ADAPTER, '--option', 'epochs=1', '--model-dir', str(tmp_path / 'models'), *args]
    return ModelServerProcess(tmp_path / 'ms', args, env={'LABEL_STUDIO_API_KEY': KEY})


def rogue_setup(model, rogue):
    status, body, _ = http(
        'POST',
        model.url + '/setup',
        {'project': PROJECT, 'schema': IMAGE_BOXES, 'hostname': rogue.url, 'access_token': ROGUE_TOKEN},
    )
    assert status == 200, body


def predict(model, rogue):
    tasks = [
        {'id': 1, 'data': {'image': '/data/upload/1/0.png'}},  # a Label Studio upload
        {'id': 2, 'data': {'image': rogue.url + '/data/upload/1/0.png'}},  # an absolute URL on the named host
    ]
    status, body, _ = http(
        'POST', model.url + '/predict', {'project': PROJECT, 'label_config': IMAGE_BOXES, 'tasks': tasks}
    )
    assert status == 200, body
    return body['results']


def train(model):
    event = {'action': 'START_TRAINING', 'project': {'id': 1, 'label_config': IMAGE_BOXES}}
    status, body, _ = http('POST', model.url + '/webhook', event)
    assert status == 201, body
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        status = http('GET', model.url + '/training')[1]
        if status['state'] == 'idle' and not status['queued'] and status['history']:
            return status['history'][0]
        time.sleep(0.2)
    raise TimeoutError(model.log_tail())


def test_the_configured_key_goes_to_ls_url_only(tmp_path):
    with (
        Listener(export=annotated_export()) as label_studio,
        Listener(export=annotated_export()) as rogue,
        start(tmp_path, ['--ls-url', label_studio.url]) as model,
    ):
        rogue_setup(model, rogue)
        upload, absolute = predict(model, rogue)
        assert 'error' not in upload and upload['model_version'].endswith('.v0'), upload
        assert 'not allowed' in absolute['error']  # a plain URL on a host nobody allowed: not fetched at all
        job = train(model)
        assert job['status'] == 'succeeded' and job['dataset']['annotated_tasks'] == 2, job

        assert rogue.requests == []
        paths = [path for _, path, _ in label_studio.requests]
        assert '/data/upload/1/0.png' in paths and '/data/upload/1/1.png' in paths
        assert any(p.startswith('/api/projects/1/export') for p in paths), paths
        assert label_studio.authorizations() == {f'Token {KEY}'}


def test_without_ls_url_nothing_is_sent_and_the_error_names_the_option(tmp_path):
    with Listener(export=annotated_export()) as rogue, start(tmp_path, []) as model:
        rogue_setup(model, rogue)
        upload, absolute = predict(model, rogue)
        assert '--ls-url' in upload['error'] and '--trust-setup-hostname' in upload['error'], upload
        assert 'not allowed' in absolute['error']
        job = train(model)
        assert job['status'] == 'failed' and '--ls-url' in job['message'], job
        assert rogue.requests == []


def test_trusting_the_setup_hostname_sends_only_that_setups_own_token(tmp_path):
    """``--trust-setup-hostname``: Label Studio's own host as /setup names it, with the token of the same
    /setup; the configured key still never goes there."""
    with Listener(export=annotated_export()) as named, start(tmp_path, ['--trust-setup-hostname']) as model:
        rogue_setup(model, named)
        upload, absolute = predict(model, named)
        assert 'error' not in upload and 'error' not in absolute, (upload, absolute)  # the named host is Label Studio
        assert train(model)['status'] == 'succeeded'
        assert named.requests and named.authorizations() == {f'Token {ROGUE_TOKEN}'}
