"""The proof with real processes: Label Studio (``label-studio start``), a Celery worker on the embedded
SQLAlchemy/SQLite broker sharing its data dir, and the model server with the plain-PyTorch adapter.

Annotating N tasks through the API crosses the policy's threshold: the worker records a TrainingRun,
the backend serves a new version, every unlabeled task gets a prediction of it, and the project
switches to it. The annotation requests stay fast (training never runs inside them).
"""

import time

import pytest

from ls_extensions.ml_backend import synthetic
from tests.label_configs import IMAGE_BOXES
from tests.ml_backend.support import TORCH_ADAPTER, ModelServerProcess
from tests.retraining.support import ENV, TOKEN, Worker, migrated_database, subprocess_modules
from tests.support.api import TokenApi, png_bytes
from tests.support.server import LabelStudioServer


@pytest.fixture(scope='module')
def env(tmp_path_factory):
    return {**ENV, **subprocess_modules(tmp_path_factory.mktemp('retraining-settings'))}


@pytest.fixture(scope='module')
def template_db(tmp_path_factory, env):
    return migrated_database(tmp_path_factory.mktemp('retraining-template-db'), env)


def test_annotations_through_the_api_retrain_and_repredict_in_the_worker(tmp_path, template_db, env):
    pytest.importorskip('torch', reason='torch not installed (scripts/install-ml.sh)')
    images = synthetic.dataset(10, seed=5, size=96)
    threshold = 6
    model_args = ['--adapter', TORCH_ADAPTER, '--option', 'epochs=3', '--model-dir', str(tmp_path / 'models')]
    with (
        LabelStudioServer(tmp_path / 'ls', template_db, env=env) as ls,
        # the worker's /setup calls tell the model server where Label Studio is, like the web process does
        Worker(tmp_path / 'ls', {**env, 'LABEL_STUDIO_HOST': ls.url}) as worker,
        ModelServerProcess(tmp_path / 'ms', model_args) as model,
    ):
        api = TokenApi(ls.url, TOKEN, expect=(200, 201, 202))
        pid = api('POST', '/api/projects', json={'title': 'retrain', 'label_config': IMAGE_BOXES})['id']
        files = [(f'file{i}', (f'img{i:03d}.png', png_bytes(img), 'image/png')) for i, (img, _) in enumerate(images)]
        api('POST', f'/api/projects/{pid}/import', files=files)
        tasks = sorted(api('GET', f'/api/tasks?project={pid}&page_size=100')['tasks'], key=lambda t: t['id'])
        backend = api('POST', '/api/ml', json={'url': model.url, 'project': pid, 'title': 'torch'})
        v0 = backend['model_version']
        policy = api(
            'PATCH',
            f'/api/projects/{pid}/retraining/',
            json={'enabled': True, 'threshold': threshold, 'batch_size': 2, 'ml_backend': backend['id']},
        )
        assert policy['enabled'] and policy['threshold'] == threshold

        by_image = {t['data']['image'].rsplit('/', 1)[-1].split('-', 1)[-1]: t for t in tasks}
        ordered = [by_image[f'img{i:03d}.png'] for i in range(len(images))]
        timings = []
        for task, (img, boxes) in list(zip(ordered, images, strict=True))[:threshold]:
            result = synthetic.to_ls_result(boxes, img.shape[1], img.shape[0])
            started = time.perf_counter()
            api('POST', f'/api/tasks/{task["id"]}/annotations', json={'result': result})
            timings.append(time.perf_counter() - started)
        assert max(timings) < 5, timings  # the training never runs inside the request

        deadline = time.monotonic() + 300
        runs = []
        while time.monotonic() < deadline:
            runs = api('GET', f'/api/projects/{pid}/retraining/runs/')
            if runs and runs[0]['status'] in ('succeeded', 'failed'):
                break
            time.sleep(1)
        assert runs, f'no run recorded\n{worker.log_tail()}'
        (run,) = runs
        assert run['status'] == 'succeeded', (run, worker.log_tail(), model.log_tail())
        assert run['trigger'] == 'threshold' and run['annotations_used'] == threshold
        assert run['version_before'] == v0 and run['version_after'] not in ('', v0)
        new = run['version_after']
        assert run['tasks_to_predict'] == len(images) - threshold == run['tasks_predicted']

        versions = api('GET', f'/api/ml/{backend["id"]}/versions')['versions']
        assert new in versions
        assert api('GET', f'/api/projects/{pid}')['model_version'] == new
        for task in api('GET', f'/api/tasks?project={pid}&page_size=100')['tasks']:
            if task['is_labeled']:
                continue
            predictions = api('GET', f'/api/predictions?task={task["id"]}')
            assert new in [p['model_version'] for p in predictions], (task['id'], predictions)
        policy = api('GET', f'/api/projects/{pid}/retraining/')
        assert not policy['running'] and not policy['pending']
