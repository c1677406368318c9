"""Fixtures of the retraining tests: a stub ML backend on loopback, recorded publishes, a drain loop."""

import threading
import time
from socketserver import ThreadingMixIn
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import pytest


class _Quiet(WSGIRequestHandler):
    def log_message(self, *args):
        pass


class _ThreadingServer(ThreadingMixIn, WSGIServer):
    """One thread per request: a held /train call does not block the other deliveries' calls."""

    daemon_threads = True


class StubBackend:
    """A tiny ML backend on loopback: trains instantly (or fails), predicts one box per task.

    ``hold_training()``: the next /train call waits inside the backend until ``release_training()``, so a
    test can act while a delivery is in the middle of its training request (``train_entered`` is set then).
    """

    def __init__(self):
        self.version = 'stub.v0'
        self.versions = ['stub.v0']
        self.jobs = []  # (id, status, version)
        self.train_calls = 0
        self.predicted = []
        self.fail_training = False
        self.finish_training = True
        self.setup_error = False
        self.lock = threading.Lock()
        self.train_entered = threading.Event()
        self._train_gate = None
        import json

        self._json = json
        self.server = make_server('127.0.0.1', 0, self.app, server_class=_ThreadingServer, handler_class=_Quiet)
        self.url = f'http://127.0.0.1:{self.server.server_port}'
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def app(self, environ, start_response):
        path = environ['PATH_INFO'].rstrip('/')
        if path == '/setup' and self.setup_error:
            start_response('500 Internal Server Error', [('Content-Type', 'text/plain')])
            return [b'model failed to load']
        length = int(environ.get('CONTENT_LENGTH') or 0)
        body = self._json.loads(environ['wsgi.input'].read(length) or b'{}') if length else {}
        answer = self.route(path, body)
        data = self._json.dumps(answer).encode()
        start_response('200 OK', [('Content-Type', 'application/json'), ('Content-Length', str(len(data)))])
        return [data]

    def route(self, path, body):
        if path == '/health':
            return {'status': 'UP', 'model_class': 'Stub'}
        if path == '/setup':
            return {'model_version': self.version}
        if path in ('/webhook', '/train'):
            if path == '/webhook' and body.get('action') != 'START_TRAINING':
                return {'status': 'ignored'}
            project = body.get('project')
            return self.train(project.get('id') if isinstance(project, dict) else project)
        if path == '/training':
            self.finish()
            return {'state': 'idle', 'running': None, 'queued': None, 'history': [self._job(j) for j in self.jobs]}
        if path == '/versions':
            return {'versions': self.versions, 'current': self.version}
        if path == '/predict':
            tasks = body.get('tasks', [])
            self.predicted.extend(t['id'] for t in tasks)
            return {'results': [self._prediction() for _ in tasks]}
        return {}

    def hold_training(self):
        self._train_gate = self._held = threading.Event()

    def release_training(self):
        self._held.set()

    def train(self, project_id=None):
        with self.lock:
            self.train_calls += 1
            created_at = time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())  # as our model server lists its jobs
            job = {'id': f'job-{self.train_calls}', 'status': 'running', 'version': None}
            job.update(project=project_id, created_at=created_at)
            self.jobs.insert(0, job)
            gate, self._train_gate = self._train_gate, None
        self.train_entered.set()
        if gate is not None:
            assert gate.wait(60), 'the held training call was never released'
        return {'status': 'started', 'job': job['id']}

    def finish(self):
        if not self.finish_training:
            return
        for job in self.jobs:
            if job['status'] == 'running':
                if self.fail_training:
                    job['status'] = 'failed'
                    job['message'] = 'stub failure'
                else:
                    self.version = f'stub.v{len(self.versions)}'
                    self.versions.append(self.version)
                    job.update(status='succeeded', version=self.version, metrics={'loss': 0.5})

    def _job(self, job):
        return dict(job)

    def _prediction(self):
        return {
            'model_version': self.version,
            'score': 0.5,
            'result': [
                {
                    'from_name': 'label',
                    'to_name': 'image',
                    'type': 'rectanglelabels',
                    'value': {'x': 1, 'y': 1, 'width': 5, 'height': 5, 'rectanglelabels': ['fish']},
                    'score': 0.5,
                }
            ],
        }

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def stub_backend():
    with StubBackend() as stub:
        yield stub


@pytest.fixture
def enqueued(monkeypatch):
    """Record what would be published instead of publishing: [(task name, args, countdown)]."""
    from ls_extensions.retraining import queueing

    calls = []

    def record(task_name, *args, countdown=None):
        calls.append((task_name, args, countdown))
        return True

    monkeypatch.setattr(queueing, 'enqueue', record)
    return calls


def drain(calls, capture, limit=100, stop_at_delayed_start=False):
    """Run the recorded tasks in order (what a worker does, commits included), until none is left.

    Countdowns are not waited for; ``stop_at_delayed_start`` stops before a ``start_run`` published for
    later (a back-off or minimum interval), leaving it in ``calls``.
    """
    from ls_extensions.retraining import recovery, steps

    done = []
    for _ in range(limit):
        if not calls:
            return done
        if stop_at_delayed_start and calls[0][0] == 'start_run' and calls[0][2]:
            return done
        name, args, _ = calls.pop(0)
        done.append(name)
        with capture(execute=True):
            getattr(recovery if name == 'sweep' else steps, name)(*args)
    raise AssertionError(f'tasks did not settle: {calls}')
