"""Helpers for the model-server tests (HTTP calls, the server process)."""

import json
import os
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from tests.support.process import ManagedProcess, answers_200
from tests.support.server import REPO, free_port

TORCH_ADAPTER = 'ls_extensions.ml_backend.adapters.torch_example.TorchExampleAdapter'
TINY_CONFIG = REPO / 'ls_extensions' / 'ml_backend' / 'configs' / 'tiny_rtmdet.py'


def http(method, url, payload=None, headers=None, timeout=60):
    """(status, json or text) without raising on HTTP errors."""
    data = json.dumps(payload).encode() if payload is not None else None
    request = urllib.request.Request(
        url, data=data, method=method, headers={'Content-Type': 'application/json', **(headers or {})}
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            status, body, reason = response.status, response.read(), response.reason
    except urllib.error.HTTPError as exc:
        status, body, reason = exc.code, exc.read(), exc.reason
    try:
        return status, json.loads(body), reason
    except ValueError:
        return status, body.decode(errors='replace'), reason


class ModelServerProcess(ManagedProcess):
    """``python -m ls_extensions.ml_backend.server`` (what ``manage.py serve_ml_backend`` runs) in a subprocess."""

    def __init__(self, workdir, args, env=None):
        self.port = free_port()
        self.url = f'http://127.0.0.1:{self.port}'
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.log_path = self.workdir / 'model-server.log'
        self.args = [
            sys.executable,
            '-m',
            'ls_extensions.ml_backend.server',
            '--port',
            str(self.port),
            '--threads',
            '1',
            *args,
        ]
        self.env = {**os.environ, 'PYTHONUNBUFFERED': '1', **(env or {})}
        self.process = None

    def start(self, timeout=120):
        self.spawn(self.args, self.env, REPO)
        return self.wait_ready(lambda: answers_200(self.url + '/health', 2), timeout, 0.3, 'model server')

    def wait_trained(self, timeout=300):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            _, status, _ = http('GET', self.url + '/training')
            if status['state'] == 'idle' and not status['queued'] and status['history']:
                return status
            time.sleep(0.5)
        raise TimeoutError(f'training did not finish:\n{self.log_tail()}')


# --- in-process: the WSGI app called directly, and adapters that make the protocol observable


def call(app, method, path, payload=None):
    """Call a WSGI app without a socket: (status code, reason phrase, json)."""
    import io
    from wsgiref.util import setup_testing_defaults

    body = json.dumps(payload).encode() if payload is not None else b''
    environ = {
        'REQUEST_METHOD': method,
        'PATH_INFO': path,
        'CONTENT_LENGTH': str(len(body)),
        'wsgi.input': io.BytesIO(body),
    }
    setup_testing_defaults(environ)
    captured = {}

    def start_response(status, headers):
        captured['status'] = status

    data = b''.join(app(environ, start_response))
    code, _, reason = captured['status'].partition(' ')
    return int(code), reason, json.loads(data)


import threading  # noqa: E402

import numpy as np  # noqa: E402

from ls_extensions.ml_backend.adapters.base import Adapter, Detection, FitResult  # noqa: E402


class FixedAdapter(Adapter):
    """Predicts the same boxes (relative to the image size) for every image; records batch sizes."""

    name = 'fixed'
    batches = []

    @property
    def classes(self):
        return ['fish', 'Crab', 'person']

    def predict(self, images, score_threshold=0.0):
        FixedAdapter.batches.append(len(images))
        out = []
        for image in images:
            h, w = image.shape[:2]
            dets = [
                Detection(0.1 * w, 0.2 * h, 0.5 * w, 0.6 * h, 0, 0.9),
                Detection(0.0, 0.0, 0.25 * w, 0.25 * h, 1, 0.5),
                Detection(0.0, 0.0, 0.5 * w, 0.5 * h, 2, 0.95),  # 'person': no such label, dropped
                Detection(0.0, 0.0, 0.1 * w, 0.1 * h, 0, 0.1),  # below the threshold
            ]
            out.append([d for d in dets if d.score >= score_threshold])
        return out

    def fit(self, samples, work_dir, progress=None):
        Path(work_dir).mkdir(parents=True, exist_ok=True)
        path = Path(work_dir) / 'checkpoint.pth'
        path.write_bytes(b'fixed')
        return FitResult(path, {'loss': 0.5, 'epochs': 1, 'seconds_per_epoch': 0.0})


class SlowAdapter(FixedAdapter):
    """``fit`` blocks until the test releases it."""

    release = threading.Event()
    fitted = []

    def fit(self, samples, work_dir, progress=None):
        SlowAdapter.fitted.append(len(samples))
        if progress:
            progress({'epoch': 0, 'epochs': 1})
        assert SlowAdapter.release.wait(30)
        return super().fit(samples, work_dir, progress)


def png_data_uri(array):
    import base64
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(np.asarray(array, dtype=np.uint8)).save(buffer, format='PNG')
    return 'data:image/png;base64,' + base64.b64encode(buffer.getvalue()).decode()
