"""The proof: the real model-server process connected to a real Label Studio project.

Label Studio (``label-studio start`` with our settings, plus the two ML settings a loopback backend
needs) gets a project of synthetic images uploaded through its API and one task whose image is
missing. The model server is added like any ML backend, "Retrieve predictions" runs through the
Data Manager action, the synthetic ground truth is submitted as annotations, the Model tab's
"Start training" call (``/api/ml/<id>/train`` -> ``START_TRAINING``) trains in the background, and
the served version must change and the held-out mAP must beat the untrained model's.

The model server reads from the Label Studio it was pointed at (``--ls-url``, with the operator's
``LABEL_STUDIO_API_KEY``); a rogue ``/setup`` naming another loopback port before the predictions and
the training changes nothing, and nothing at all arrives on that port.

The plain-PyTorch adapter runs always (the protocol layer without MMDetection); the tiny
MMDetection model runs under the ``ml`` mark.
"""

import time

import pytest
import requests

from ls_extensions.ml_backend import ssrf, synthetic
from tests.label_configs import IMAGE_BOXES
from tests.ml_backend.support import TINY_CONFIG, TORCH_ADAPTER, Listener, ModelServerProcess, http
from tests.support.api import TokenApi, png_bytes
from tests.support.server import LabelStudioServer, migrated_database

TOKEN = 'ml-backend-test-token-0123456789'
LS_ENV = {
    'LABEL_STUDIO_USERNAME': 'ml@example.org',
    'LABEL_STUDIO_PASSWORD': 'secret-pass-123',
    'LABEL_STUDIO_USER_TOKEN': TOKEN,
    # the model server reads images and annotations back with the token /setup hands it
    'LABEL_STUDIO_ENABLE_LEGACY_API_TOKEN': 'true',
    # a model server on loopback: Label Studio's SSRF block list minus loopback (see ml_backend/ssrf.py)
    **ssrf.env(),
    'ML_TIMEOUT_SETUP': '30',
}


@pytest.fixture(scope='module')
def template_db(tmp_path_factory):
    return migrated_database(tmp_path_factory)


def _make_project(api, images):
    pid = api('POST', '/api/projects', json={'title': 'boxes', 'label_config': IMAGE_BOXES})['id']
    files = [(f'file{i}', (f'img{i:03d}.png', png_bytes(img), 'image/png')) for i, (img, _) in enumerate(images)]
    api('POST', f'/api/projects/{pid}/import', files=files)
    api('POST', f'/api/projects/{pid}/import', json=[{'image': f'/data/upload/{pid}/does-not-exist.png'}])
    tasks = api('GET', f'/api/tasks?project={pid}&page_size=1000')['tasks']
    by_name = {}
    for task in tasks:
        by_name[task['data']['image'].rsplit('/', 1)[-1]] = task
    broken = by_name.pop('does-not-exist.png')
    ordered = [next(t for name, t in by_name.items() if name.endswith(f'img{i:03d}.png')) for i in range(len(images))]
    return pid, ordered, broken


def _predictions(api, pid):
    tasks = api('GET', f'/api/tasks?project={pid}&page_size=1000&fields=all')['tasks']
    out = {}
    for task in tasks:
        out[task['id']] = api('GET', f'/api/predictions?task={task["id"]}')
    return out


def _retrieve(api, pid, broken):
    """Retrieve Predictions over every task: the unreadable one is named in a 422, the rest are stored."""
    answer = api(
        'POST',
        f'/api/dm/actions?id=retrieve_tasks_predictions&project={pid}',
        expect=(422,),
        json={'selectedItems': {'all': True, 'excluded': []}},
    )
    assert answer['tasks_without_prediction'] == [broken['id']]
    assert f'Task {broken["id"]}: cannot read /data/upload/{pid}/does-not-exist.png' in answer['detail']


CASES = {
    'torch': dict(args=['--adapter', TORCH_ADAPTER, '--option', 'epochs=25'], images=24, size=128, min_gain=0.3),
    'mmdet': dict(args=['--config', str(TINY_CONFIG)], images=40, size=128, min_gain=0.2, marks=[pytest.mark.ml]),
}


@pytest.mark.parametrize('case', [pytest.param(name, marks=spec.get('marks', [])) for name, spec in CASES.items()])
def test_label_studio_retrieves_predictions_and_trains_the_model_server(case, tmp_path, template_db):
    spec = CASES[case]
    pytest.importorskip('torch', reason='torch not installed (scripts/install-ml.sh)')
    if case == 'mmdet':
        pytest.importorskip('mmdet', reason='MMDetection not installed (scripts/install-ml.sh)')
    images = synthetic.dataset(spec['images'], seed=3, size=spec['size'])
    model_args = [
        *spec['args'],
        '--model-dir',
        str(tmp_path / 'models'),
        '--score-threshold',
        '0.3',
        '--min-eval',
        '10',
    ]
    with (
        LabelStudioServer(tmp_path / 'ls', template_db, env=LS_ENV) as ls,
        Listener() as rogue,
        ModelServerProcess(tmp_path / 'ms', model_args, ls_url=ls.url, env={'LABEL_STUDIO_API_KEY': TOKEN}) as model,
    ):
        api = TokenApi(ls.url, TOKEN, timeout=300)
        pid, tasks, broken = _make_project(api, images)

        backend = api('POST', '/api/ml', json={'url': model.url, 'project': pid, 'title': 'tiny detector'})
        v0 = backend['model_version']
        assert backend['readable_state'] == 'Connected' and v0.endswith('.v0'), backend
        rogue_setup = {'project': f'{pid}.0', 'schema': IMAGE_BOXES, 'hostname': rogue.url, 'access_token': 'x'}
        assert http('POST', model.url + '/setup', rogue_setup)[0] == 200

        # "Retrieve predictions" over every task of the project: one batched request
        _retrieve(api, pid, broken)
        predictions = _predictions(api, pid)
        assert predictions[broken['id']] == []  # unreadable image: no prediction, the rest succeed
        for task in tasks:
            (prediction,) = predictions[task['id']]
            assert prediction['model_version'] == v0

        # the synthetic ground truth as annotations
        for task, (img, boxes) in zip(tasks, images, strict=True):
            result = synthetic.to_ls_result(boxes, img.shape[1], img.shape[0])
            api('POST', f'/api/tasks/{task["id"]}/annotations', json={'result': result})

        metrics = requests.get(model.url + '/metrics', timeout=10).json()
        # the broken task twice: in the batch, then alone when the action asks the model server for its reason
        assert metrics['requests']['failed_tasks'] == 2 and metrics['requests']['tasks'] == len(tasks) + 2
        # (Label Studio's own webhook to a loopback backend stays refused by its SSRF check: see test_ssrf.py)

        started = time.monotonic()
        api('POST', f'/api/ml/{backend["id"]}/train')
        assert time.monotonic() - started < 15, 'the training request must return at once'
        status = model.wait_trained(timeout=600)
        job = status['history'][0]
        assert job['status'] == 'succeeded', job
        print(f'\n{case}: training job {job["metrics"]}')
        metrics = job['metrics']
        assert metrics['map_after'] >= metrics['map_before'] + spec['min_gain'], metrics
        assert metrics['loss'] > 0 and metrics['seconds_per_epoch'] > 0
        assert job['eval_images'] >= 3 and job['train_images'] + job['eval_images'] == len(tasks)

        versions = api('GET', f'/api/ml/{backend["id"]}/versions')['versions']
        assert len(versions) == 2 and versions[0] == v0
        v1 = versions[1]
        assert status['model_version'] == v1 != v0

        # predictions of the new version, with labels of the project and scores
        _retrieve(api, pid, broken)
        assert api('GET', f'/api/ml/{backend["id"]}')['model_version'] == v1
        predictions = _predictions(api, pid)
        new = [p for task in tasks for p in predictions[task['id']] if p['model_version'] == v1]
        assert len(new) == len(tasks)
        regions = [r for p in new for r in p['result']]
        assert regions and {r['value']['rectanglelabels'][0] for r in regions} <= {'fish', 'crab'}
        assert all(0 <= r['value']['x'] <= 100 and 0.3 <= r['score'] <= 1 for r in regions)
        # a task score where boxes were found; none where nothing was (scoring ranks those by its own rule)
        assert all((p['score'] is not None) == bool(p['result']) for p in new)
        assert rogue.requests == []  # images and annotations came from --ls-url only
