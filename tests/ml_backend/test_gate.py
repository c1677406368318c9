"""The model gate on the real model server: a trained version that is worse on the held-out tasks is not served.

In process (the WSGI app, no socket), with the plain-PyTorch adapter and synthetic images: a first version
trains on correct boxes; then the training tasks' boxes are corrupted (moved off the objects, labels
swapped) while the held-out tasks (every 4th task id) keep theirs, which is what bad labels do to a project.
"""

import pytest

from ls_extensions.ml_backend import synthetic
from ls_extensions.ml_backend.lifecycle import ModelServer
from ls_extensions.ml_backend.training import held_out
from tests.label_configs import IMAGE_BOXES
from tests.ml_backend.support import TORCH_ADAPTER, call, png_data_uri

pytestmark = pytest.mark.skipif(
    not __import__('importlib.util').util.find_spec('torch'), reason='torch not installed (scripts/install-ml.sh)'
)

TASKS = 20


def tasks_of(images, corrupt=False):
    tasks = []
    for task_id, (image, boxes) in enumerate(images, start=1):
        h, w = image.shape[:2]
        if corrupt and not held_out(task_id, 0.25):  # the training side only: boxes on background, labels swapped
            boxes = [(w - bw - x, h - bh - y, bw, bh, 1 - k) for x, y, bw, bh, k in boxes]
        result = synthetic.to_ls_result(boxes, w, h)
        tasks.append(
            {'id': task_id, 'data': {'image': png_data_uri(image)}, 'annotations': [{'id': task_id, 'result': result}]}
        )
    return tasks


def train(app, tasks):
    code, _, body = call(app, 'POST', '/train', {'annotations': tasks, 'project': 1, 'label_config': IMAGE_BOXES})
    assert code == 201, body
    assert app.trainer.wait_idle(180)
    return app.trainer.find(body['job'])


@pytest.fixture
def images():
    return synthetic.dataset(TASKS, seed=11, size=64, max_side=28, min_side=12)


def server(tmp_path, **kwargs):
    return ModelServer(
        adapter=TORCH_ADAPTER, model_dir=tmp_path / 'models', min_eval=10, options={'epochs': '30'}, **kwargs
    )


def test_a_version_worse_on_the_held_out_tasks_is_rejected_and_the_served_one_stays(tmp_path, images):
    app = server(tmp_path)
    first = train(app, tasks_of(images))
    assert first['status'] == 'succeeded', first
    good = first['version']
    assert first['metrics']['map_after'] > first['metrics']['map_before'] and first['eval_images'] == 5
    second = train(app, tasks_of(images, corrupt=True))
    assert second['status'] == 'rejected', second
    before, after = second['metrics']['map_before'], second['metrics']['map_after']
    assert after < before and before == pytest.approx(first['metrics']['map_after'], abs=1e-4)  # same held-out set
    assert f'{after:.4f}' in second['message'] and f'{before:.4f}' in second['message']
    assert 'version' not in second and app.current_meta['version'] == good
    assert [m['version'] for m in app.registry.versions()][-1] == good  # nothing registered for the rejected job
    code, _, status = call(app, 'GET', '/training')
    assert code == 200 and status['history'][0]['status'] == 'rejected'


def test_with_the_gate_off_every_trained_version_is_served(tmp_path, images):
    app = server(tmp_path, gate_tolerance=None)
    good = train(app, tasks_of(images))['version']
    worse = train(app, tasks_of(images, corrupt=True))
    assert worse['status'] == 'succeeded' and worse['metrics']['map_after'] < worse['metrics']['map_before']
    assert app.current_meta['version'] == worse['version'] != good
