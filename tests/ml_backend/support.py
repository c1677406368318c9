"""Helpers for the model-server tests (HTTP calls, the server process)."""

import json
import os
import sys
import threading
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


# settings the server reads from the environment: a test names the ones it means, none leak in from the shell
SERVER_ENV = ('LABEL_STUDIO_URL', 'LABEL_STUDIO_HOST', 'LABEL_STUDIO_API_KEY', 'LS_EXT_ML_BASIC_AUTH')


def answers(url, headers=None, timeout=2):
    """The status ``GET url`` answers, or None while nothing listens."""
    try:
        return http('GET', url, headers=headers, timeout=timeout)[0]
    except OSError:
        return None


class ModelServerProcess(ManagedProcess):
    """``python -m ls_extensions.ml_backend.server`` (what ``manage.py serve_ml_backend`` runs) in a subprocess.

    ``ls_url``: the Label Studio it reads images and annotations from (``--ls-url``); ``ready_headers``:
    sent with the readiness probe (credentials when ``LS_EXT_ML_BASIC_AUTH`` is set)."""

    def __init__(self, workdir, args, env=None, ls_url=None, ready_headers=None):
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
            *(['--ls-url', ls_url] if ls_url else []),
            *args,
        ]
        inherited = {k: v for k, v in os.environ.items() if k not in SERVER_ENV}
        self.env = {**inherited, 'PYTHONUNBUFFERED': '1', **(env or {})}
        self.ready_headers = ready_headers
        self.process = None

    def start(self, timeout=120):
        self.spawn(self.args, self.env, REPO)
        if self.ready_headers:
            ready = lambda: answers(self.url + '/health', self.ready_headers) == 200  # noqa: E731
        else:
            ready = lambda: answers_200(self.url + '/health', 2)  # noqa: E731
        return self.wait_ready(ready, timeout, 0.3, 'model server')

    def wait_trained(self, timeout=300):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            _, status, _ = http('GET', self.url + '/training')
            if status['state'] == 'idle' and not status['queued'] and status['history']:
                return status
            time.sleep(0.5)
        raise TimeoutError(f'training did not finish:\n{self.log_tail()}')


class ServedInThread:
    """``self.httpd`` served from a daemon thread for the length of a ``with`` block."""

    def __enter__(self):
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(5)


class served(ServedInThread):  # noqa: N801 - used as ``with served(app) as url``
    """The WSGI app on a loopback socket in a thread (the real wsgiref server and handler)."""

    def __init__(self, app, handler_class=None):
        from wsgiref.simple_server import make_server

        from ls_extensions.ml_backend.wsgi_app import _QuietHandler, _ThreadingWSGIServer

        self.httpd = make_server(
            '127.0.0.1', 0, app, server_class=_ThreadingWSGIServer, handler_class=handler_class or _QuietHandler
        )
        self.port = self.httpd.server_port
        self.url = f'http://127.0.0.1:{self.port}'


def raw_request(port, data, close_write=True, timeout=30):
    """Send raw bytes over a socket; (status code, body bytes). ``close_write`` half-closes after sending,
    so a body shorter than its Content-Length ends there instead of waiting for more."""
    import socket

    with socket.create_connection(('127.0.0.1', port), timeout=timeout) as sock:
        sock.sendall(data)
        if close_write:
            sock.shutdown(socket.SHUT_WR)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    response = b''.join(chunks)
    head, _, body = response.partition(b'\r\n\r\n')
    return int(head.split(b' ', 2)[1]), body


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


class Listener(ServedInThread):
    """An HTTP server on a loopback port that records every request (method, path, Authorization) and
    answers like Label Studio would (a PNG for ``/data/...``, a JSON export), so that whatever reaches
    it, token or not, is seen. ``with Listener(tasks) as listener: listener.url, listener.requests``."""

    def __init__(self, export=None, image=None):
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        self.requests = []
        self.export = export if export is not None else []
        self.image = image if image is not None else png_bytes(np.full((32, 32, 3), 90, np.uint8))
        listener = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _answer(self):
                listener.requests.append((self.command, self.path, self.headers.get('Authorization')))
                if self.path.startswith('/data/'):
                    body, kind = listener.image, 'image/png'
                elif '/export' in self.path:
                    body, kind = json.dumps(listener.export).encode(), 'application/json'
                else:
                    body, kind = b'{}', 'application/json'
                self.send_response(200)
                self.send_header('Content-Type', kind)
                self.send_header('Content-Length', str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = _answer  # noqa: N815

        self.httpd = ThreadingHTTPServer(('127.0.0.1', 0), Handler)
        self.url = f'http://127.0.0.1:{self.httpd.server_address[1]}'

    def authorizations(self):
        return {auth for _, _, auth in self.requests}


def png_bytes(array):
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(np.asarray(array, dtype=np.uint8)).save(buffer, format='PNG')
    return buffer.getvalue()
