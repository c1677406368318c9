"""The proof with real processes: Label Studio (``label-studio start``), Celery workers sharing its data dir
(embedded SQLAlchemy/SQLite broker, or Redis), and the model server with the plain-PyTorch adapter.

Annotating N tasks through the API crosses the policy's threshold: the worker records a TrainingRun, the
backend serves a new version, every unlabeled task gets a prediction of it, the project switches to it
and the uncertainty ranking follows. Then the faults: a worker SIGKILLed mid-training, a broker that is
down while annotators submit, a backend that is down. No mocks: every fault is a real process stopped.
"""

import os
import signal
import socket
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import pytest

from ls_extensions.ml_backend import synthetic
from tests.label_configs import IMAGE_BOXES
from tests.ml_backend import fish_videos
from tests.ml_backend.support import TORCH_ADAPTER, ModelServerProcess
from tests.retraining.support import ENV, TOKEN, Worker, broker_messages, held_step
from tests.support.api import TokenApi, png_bytes
from tests.support.process import ManagedProcess, wait_for
from tests.support.server import LabelStudioServer, free_port, migrated_database

pytestmark = pytest.mark.skipif(
    not __import__('importlib.util').util.find_spec('torch'), reason='torch not installed (scripts/install-ml.sh)'
)

# fast recovery for the tests: a step not taken for 6 s is published again, the sweep runs every 3 s
FAST = {
    'LS_EXT_RETRAINING_STALE_SECONDS': '6',
    'LS_EXT_RETRAINING_SWEEP_SECONDS': '3',
    'LS_EXT_RETRAINING_RETRY_SECONDS': '1',
    'LS_EXT_RETRAINING_MAX_RETRIES': '1',
}
FINISHED = ('succeeded', 'failed')


@pytest.fixture(scope='module')
def template_db(tmp_path_factory):
    return migrated_database(tmp_path_factory)


@pytest.fixture(scope='module')
def ls(tmp_path_factory, template_db):
    with LabelStudioServer(tmp_path_factory.mktemp('ls'), template_db, env={**ENV, **FAST}) as server:
        yield server


def model_server(ls, workdir, epochs=3):
    """The model server of ``ls``: it reads images and annotations from that Label Studio only (``--ls-url``)."""
    args = ['--adapter', TORCH_ADAPTER, '--option', f'epochs={epochs}', '--model-dir', str(workdir / 'models')]
    return ModelServerProcess(workdir, args, ls_url=ls.url, env={'LABEL_STUDIO_API_KEY': TOKEN})


def worker_for(ls, env=None):
    # the worker's /setup calls tell the model server where Label Studio is, like the web process does
    return Worker(ls.data_dir, {**ENV, **FAST, 'LABEL_STUDIO_HOST': ls.url, **(env or {})})


class Project:
    """A project of synthetic fish images with the model server connected and an enabled policy."""

    label_config = IMAGE_BOXES
    data_key = 'image'

    def __init__(self, ls, model, threshold, images=10, seed=5, pre_annotated=True):
        self.api = TokenApi(ls.url, TOKEN, expect=(200, 201, 202))
        self.threshold = threshold
        api = self.api
        self.id = api('POST', '/api/projects', json={'title': 'retrain', 'label_config': self.label_config})['id']
        names = self.import_files(images, seed)
        tasks = api('GET', f'/api/tasks?project={self.id}&page_size=100')['tasks']
        by_name = {t['data'][self.data_key].rsplit('/', 1)[-1].split('-', 1)[-1]: t for t in tasks}
        self.tasks = [by_name[name] for name in names]
        self.backend = api('POST', '/api/ml', json={'url': model.url, 'project': self.id, 'title': 'torch'})
        self.v0 = self.backend['model_version']
        policy = api(
            'PATCH',
            f'/api/projects/{self.id}/retraining/',
            json={'enabled': True, 'threshold': threshold, 'batch_size': 2, 'ml_backend': self.backend['id']},
        )
        assert policy['enabled'] and policy['threshold'] == threshold
        self.project_version = api('GET', f'/api/projects/{self.id}')['model_version']
        assert self.project_version == 'torch'  # Label Studio follows the backend live (its title) ...
        if pre_annotated:  # ... until switching the policy on pre-annotated every task with the served version
            (first,) = self.wait_runs(lambda runs: runs and runs[0]['status'] in FINISHED)
            assert first['status'] == 'succeeded' and first['metrics']['predict_only'], first
            assert first['version_after'] == self.v0 and first['tasks_predicted'] == images
            self.project_version = self.v0
            self.assert_all_unlabeled_predicted_by(self.v0)

    def import_files(self, count, seed):
        """Upload the project's files through the import API; returns their names in task order."""
        self.images = synthetic.dataset(count, seed=seed, size=96)
        names = [f'img{i:03d}.png' for i in range(count)]
        files = [
            (f'file{i}', (name, png_bytes(img), 'image/png'))
            for i, (name, (img, _)) in enumerate(zip(names, self.images, strict=True))
        ]
        self.api('POST', f'/api/projects/{self.id}/import', files=files)
        return names

    def results(self):
        """The annotation result of each task, in task order."""
        return [synthetic.to_ls_result(boxes, img.shape[1], img.shape[0]) for img, boxes in self.images]

    def annotate(self, count):
        """Submit ``count`` annotations through the API; returns each request's seconds."""
        timings = []
        for task, result in list(zip(self.tasks, self.results(), strict=True))[:count]:
            started = time.perf_counter()
            self.api('POST', f'/api/tasks/{task["id"]}/annotations', json={'result': result})
            timings.append(time.perf_counter() - started)
        return timings

    def runs(self, trained=False):
        runs = self.api('GET', f'/api/projects/{self.id}/retraining/runs/')
        return [r for r in runs if not r['metrics'].get('predict_only')] if trained else runs

    def policy(self):
        return self.api('GET', f'/api/projects/{self.id}/retraining/')

    def wait_runs(self, done, timeout=300, logs=lambda: '', trained=False):
        def settled():
            runs = self.runs(trained)
            return (runs,) if done(runs) else None

        details = lambda: f'{self.runs()}\n{self.policy()}\n{logs()}'  # noqa: E731
        return wait_for(settled, timeout, 1, 'runs did not settle', details)[0]

    def wait_policy(self, done, timeout=300, logs=lambda: ''):
        def settled():
            policy = self.policy()
            return policy if done(policy) else None

        details = lambda: f'{self.policy()}\n{self.runs()}\n{logs()}'  # noqa: E731
        return wait_for(settled, timeout, 1, 'policy did not settle', details)

    def assert_all_unlabeled_predicted_by(self, version):
        for task in self.api('GET', f'/api/tasks?project={self.id}&page_size=100')['tasks']:
            if not task['is_labeled']:
                predictions = self.api('GET', f'/api/predictions?task={task["id"]}')
                assert [p['model_version'] for p in predictions].count(version) == 1, (task['id'], predictions)


class VideoProject(Project):
    """A project of synthetic fish videos (tests/ml_backend/fish_videos.py), annotated as drawn tracks."""

    label_config = fish_videos.CONFIG
    data_key = 'video'
    frames = 75

    def import_files(self, count, seed):
        with tempfile.TemporaryDirectory() as tmp:
            names = [f'fish{i:03d}.mp4' for i in range(count)]
            self.scenes = [
                fish_videos.write_video(Path(tmp) / name, self.frames, seed + i) for i, name in enumerate(names)
            ]
            files = [(f'file{i}', (name, (Path(tmp) / name).read_bytes(), 'video/mp4')) for i, name in enumerate(names)]
            self.api('POST', f'/api/projects/{self.id}/import', files=files)
        return names

    def results(self):
        return [fish_videos.track_results(objects, self.frames) for objects in self.scenes]

    def import_more(self, count, seed):
        """Import `count` more videos; returns their new tasks."""
        known = {t['id'] for t in self.api('GET', f'/api/tasks?project={self.id}&page_size=100')['tasks']}
        with tempfile.TemporaryDirectory() as tmp:
            files = []
            for i in range(count):
                path = Path(tmp) / f'more{seed + i:03d}.mp4'
                fish_videos.write_video(path, self.frames, seed + i)
                files.append((f'file{i}', (path.name, path.read_bytes(), 'video/mp4')))
            self.api('POST', f'/api/projects/{self.id}/import', files=files)
        return [
            t for t in self.api('GET', f'/api/tasks?project={self.id}&page_size=100')['tasks'] if t['id'] not in known
        ]


def requests_to(model):
    """The tasks the model server was asked to predict so far (its /metrics)."""
    from tests.ml_backend.support import http

    return http('GET', model.url + '/metrics')[1]['requests']['tasks']


def training_jobs(model):
    from tests.ml_backend.support import http

    return http('GET', model.url + '/training')[1]['history']


def one_round(project, model, worker, threshold, tasks):
    """Annotate ``threshold`` of ``tasks`` tasks through the API and assert the round the worker runs from it:
    one training job, every unlabeled task predicted by the new version, the project on it, the ranking
    following it. Returns the run, each submit's seconds and the seconds from the first submit to the end."""
    submitted_at = time.time()
    timings = project.annotate(threshold)  # (measured, not bounded: the proof that nothing trains in the
    # request is the backend's single training job below, not the speed of a machine that may be busy)
    logs = lambda: worker.log_tail() + model.log_tail()  # noqa: E731
    runs = project.wait_runs(lambda runs: runs and runs[0]['status'] in FINISHED, logs=logs, trained=True)
    ended_at = time.time()
    (run,) = runs
    assert run['status'] == 'succeeded', (run, logs())
    assert run['trigger'] == 'threshold' and run['annotations_used'] == threshold
    assert run['version_before'] == project.v0 and run['version_after'] not in ('', project.v0)
    new = run['version_after']
    assert run['tasks_to_predict'] == tasks - threshold == run['tasks_predicted']
    # Label Studio's own synchronous training never ran: the backend trained exactly once
    assert len(training_jobs(model)) == 1
    assert new in project.api('GET', f'/api/ml/{project.backend["id"]}/versions')['versions']
    assert project.api('GET', f'/api/projects/{project.id}')['model_version'] == new
    project.assert_all_unlabeled_predicted_by(new)
    policy = project.policy()
    assert not policy['running'] and not policy['pending']

    # the uncertainty ranking follows the new version (scoring's reconcile, in the worker)
    def ranked():
        ranking = project.api('GET', f'/api/projects/{project.id}/uncertainty/')
        done = ranking['active_version'] == new and ranking['tasks']['ranked'] == run['tasks_to_predict']
        return ranking if done and ranking['up_to_date'] else None

    ranking = wait_for(ranked, 180, 1, 'uncertainty ranking of the new version', logs)
    assert ranking['active_version'] == new and ranking['up_to_date'], ranking
    assert ranking['tasks']['ranked'] == run['tasks_to_predict'], ranking
    return run, timings, ended_at - submitted_at


def test_annotations_through_the_api_retrain_repredict_and_rerank_in_the_worker(ls, tmp_path):
    threshold = 6
    with model_server(ls, tmp_path / 'ms') as model, worker_for(ls) as worker:
        project = Project(ls, model, threshold)
        run, timings, seconds = one_round(project, model, worker, threshold, len(project.images))
        metrics = run['metrics']
        print(
            f'\nlearning-loop round: {threshold} annotations submitted in {sum(timings):.2f} s '
            f'(max {max(timings) * 1000:.0f} ms); trained {metrics["training_seconds"]} s after the trigger; '
            f'{run["tasks_predicted"]} tasks re-predicted, run done {metrics["run_seconds"]} s after the trigger; '
            f'{seconds:.1f} s from the first submit to the new version seen in the API'
        )


def test_a_video_project_learns_from_annotated_tracks_and_every_other_video_gets_tracks_of_the_new_version(
    ls, tmp_path
):
    threshold, videos = 2, 5
    with model_server(ls, tmp_path / 'ms') as model, worker_for(ls) as worker:
        project = VideoProject(ls, model, threshold, images=videos)
        run, timings, seconds = one_round(project, model, worker, threshold, videos)
        logs = lambda: worker.log_tail() + model.log_tail()  # noqa: E731
        (job,) = training_jobs(model)
        assert job['dataset']['annotated_videos'] == threshold and job['dataset']['errors'] == [], job
        assert job['dataset']['video_frames'] == threshold * project.frames
        assert 0 < job['train_images'] <= job['dataset']['video_frames_used'], job
        for task in project.api('GET', f'/api/tasks?project={project.id}&page_size=100')['tasks']:
            if task['is_labeled']:
                continue
            (prediction,) = [
                p
                for p in project.api('GET', f'/api/predictions?task={task["id"]}')
                if p['model_version'] == run['version_after']
            ]
            for region in prediction['result']:  # tracks as Label Studio's video UI reads them
                assert region['type'] == 'videorectangle' and region['value']['framesCount'] == project.frames
                assert region['value']['labels'][0] in ('fish', 'crab') and region['value']['sequence']
        # a video imported now has no prediction: opening it predicts nothing in the request (Label Studio
        # would, there), the worker predicts it with the served version right after
        before = requests_to(model)
        (extra,) = project.import_more(1, seed=50)
        opened = project.api('GET', f'/api/tasks/{extra["id"]}')
        assert opened['predictions'] == [] and requests_to(model) == before

        def predicted():
            found = project.api('GET', f'/api/predictions?task={extra["id"]}')
            return found or None

        (background,) = wait_for(predicted, 120, 1, 'the background prediction of the new video', logs)
        assert background['model_version'] == run['version_after'], background
        assert {r['type'] for r in background['result']} <= {'videorectangle'}
        metrics = run['metrics']
        print(
            f'\nvideo learning-loop round: {threshold} videos annotated in {sum(timings):.2f} s; trained on '
            f'{job["train_images"]} frames {metrics["training_seconds"]} s after the trigger; '
            f'{run["tasks_predicted"]} videos re-predicted, run done {metrics["run_seconds"]} s after the trigger; '
            f'{seconds:.1f} s from the first submit to the new version seen in the API'
        )


HELD_POLL_SECONDS = 30  # the first worker's poll countdown: it holds each poll message (unacknowledged) this long


def test_a_worker_killed_while_it_holds_the_poll_is_recovered_by_the_sweep_without_a_second_version(ls, tmp_path):
    """The path is forced: the worker is SIGKILLed while it holds the run's only poll message (fetched, due in
    half a minute, nothing of it left in the broker), so only the sweep can carry the run on."""
    threshold = 4
    with model_server(ls, tmp_path / 'ms', epochs=60) as model:
        with worker_for(ls, {'LS_EXT_RETRAINING_POLL_SECONDS': str(HELD_POLL_SECONDS)}) as first:
            project = Project(ls, model, threshold, seed=6)
            project.annotate(threshold)
            training = lambda runs: runs and runs[0]['status'] == 'training'  # noqa: E731
            (run,) = project.wait_runs(training, logs=first.log_tail, trained=True)
            held = lambda: held_step(ls.data_dir, 'ls_ext_retraining.poll_training', run['id'], 10)  # noqa: E731
            wait_for(held, 60, 0.2, 'the worker holding the poll message', first.log_tail)
            first.kill()
        assert first.process.returncode == -signal.SIGKILL
        polls = broker_messages(ls.data_dir, 'ls_ext_retraining.poll_training')
        assert not any(visible for visible, _ in polls)  # the held message died with the worker: nothing to redeliver
        with worker_for(ls) as second:
            logs = lambda: second.log_tail() + model.log_tail()  # noqa: E731
            finished = lambda runs: runs and runs[0]['status'] in FINISHED  # noqa: E731
            (run,) = project.wait_runs(finished, logs=logs, trained=True)
        assert run['status'] == 'succeeded', (run, logs())
        assert run['recovered'] >= 1  # the sweep published the lost step again: nothing else could
        assert len(training_jobs(model)) == 1  # one training, one new version
        versions = project.api('GET', f'/api/ml/{project.backend["id"]}/versions')['versions']
        assert len([v for v in versions if v != project.v0]) == 1, versions
        assert project.api('GET', f'/api/projects/{project.id}')['model_version'] == run['version_after']
        project.assert_all_unlabeled_predicted_by(run['version_after'])


def test_an_unreachable_backend_fails_the_run_and_keeps_the_version(ls, tmp_path):
    threshold = 3
    with model_server(ls, tmp_path / 'ms') as model, worker_for(ls):
        project = Project(ls, model, threshold, seed=7)
    # the model server is stopped now: connection refused on every call
    with worker_for(ls) as worker:
        project.annotate(threshold)
        # the budget (MAX_RETRIES=1: the run and one retry) ends in a stop: final, nothing starts after it
        policy = project.wait_policy(lambda policy: policy['stopped_reason'], logs=worker.log_tail)
        runs = project.runs(trained=True)
    assert [r['status'] for r in runs] == ['failed', 'failed']  # the run and its one retry
    assert all('unreachable' in r['error'] for r in runs), runs
    assert runs[0]['retries'] == runs[1]['retries'] == 2
    assert project.api('GET', f'/api/projects/{project.id}')['model_version'] == project.project_version
    assert not policy['running'] and not policy['pending'] and policy['failed_attempts'] == 2
    assert policy['stopped_reason'] == f'stopped after 2 failed attempts: {runs[0]["error"]}'


class RedisServer(ManagedProcess):
    """A throw-away redis-server on loopback (no persistence): the broker that goes away."""

    def __init__(self, port, workdir):
        self.port, self.workdir = port, workdir
        self.log_path = workdir / 'redis.log'

    def start(self):
        args = [
            'redis-server',
            '--port',
            str(self.port),
            '--bind',
            '127.0.0.1',
            '--save',
            '',
            '--dir',
            str(self.workdir),
        ]
        self.spawn(args, dict(os.environ), self.workdir)
        ping = ['redis-cli', '-p', str(self.port), 'ping']
        return self.wait_ready(
            lambda: subprocess.run(ping, capture_output=True).stdout.strip() == b'PONG', 20, 0.2, 'redis-server'
        )


class SilentBroker:
    """A port that accepts connections and never answers: a broker that hangs. A publish waiting on it waits
    until ``close()``; so a request that returns while it listens did not wait on its publish."""

    def __init__(self, port):
        self.listener = socket.socket()
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(('127.0.0.1', port))
        self.listener.listen(16)
        self.held = []
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self):
        while True:
            try:
                connection, _ = self.listener.accept()
            except OSError:  # closed
                return
            self.held.append(connection)

    def close(self):
        self.listener.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept(): close() alone leaves it listening
        self.thread.join(10)
        self.listener.close()
        for connection in self.held:
            connection.close()


@pytest.mark.skipif(not os.path.exists('/usr/bin/redis-server'), reason='redis-server not installed')
def test_a_broker_down_during_submissions_loses_no_trigger(tmp_path, template_db):
    """The Redis broker hangs, then is down, while annotators submit; the trigger runs once it is back.

    Forced, not timed: the broker accepts the publisher's connection and never answers, and every submit
    returns meanwhile (a request that waited on its publish would hang with it)."""
    port = free_port()
    broker = {'CELERY_BROKER_URL': f'redis://127.0.0.1:{port}/0'}
    threshold = 3
    redis = RedisServer(port, tmp_path)
    with (
        LabelStudioServer(tmp_path / 'ls', template_db, env={**ENV, **FAST, **broker}) as ls,
        model_server(ls, tmp_path / 'ms') as model,
    ):
        project = Project(ls, model, threshold, seed=8, pre_annotated=False)  # no broker: nothing ran yet
        silent = SilentBroker(port)
        try:
            project.annotate(threshold + 1)
            stored = project.api('GET', f'/api/tasks?project={project.id}&page_size=100')['tasks']
            assert sum(t['total_annotations'] for t in stored) == threshold + 1
            # the trigger's publish, from beside the request, is stuck on the silent broker: not failed, not sent
            wait_for(lambda: silent.held, 30, 0.2, 'a publish reaching the silent broker', ls.log_tail)
            assert 'could not publish ls_ext_retraining.start_run' not in ls.log_tail(400)
            policy = project.policy()
            assert policy['pending'] and not policy['running'] and project.runs() == []
        finally:
            silent.close()  # now down: the stuck publish fails (and is logged), the trigger stays pending
        failed = lambda: 'could not publish ls_ext_retraining.start_run' in ls.log_tail(400)  # noqa: E731
        wait_for(failed, 60, 0.5, 'the failed publish logged', ls.log_tail)
        assert project.policy()['pending']
        with redis, worker_for(ls, broker) as worker:
            logs = lambda: worker.log_tail() + model.log_tail()  # noqa: E731
            finished = lambda runs: runs and runs[0]['status'] in FINISHED  # noqa: E731
            (run,) = project.wait_runs(finished, logs=logs, trained=True)
    assert run['status'] == 'succeeded', run
    assert run['annotations_used'] == threshold + 1 and run['changes'] == threshold + 1
    assert run['trigger'] == 'threshold'  # its cause; the sweep published it (the request's publish had failed)
