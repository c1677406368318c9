"""The MMDetection adapter on the shipped tiny config (``ml`` mark: needs scripts/install-ml.sh)."""

import argparse
import subprocess
import sys

import numpy as np
import pytest

from ls_extensions.ml_backend import synthetic
from ls_extensions.ml_backend.adapters.base import AdapterError
from tests.ml_backend.support import TINY_CONFIG
from tests.support.server import REPO

pytestmark = pytest.mark.ml
pytest.importorskip('mmdet', reason='MMDetection not installed (scripts/install-ml.sh)')
import torch  # noqa: E402

from ls_extensions.ml_backend.adapters.mmdet_adapter import MMDetAdapter, slim_checkpoint  # noqa: E402


@pytest.fixture(scope='module')
def adapter():
    return MMDetAdapter(config=TINY_CONFIG)


def test_classes_from_the_config_and_no_pretrained_download(adapter):
    assert adapter.classes == ['fish', 'crab']
    assert adapter.train_cfg['iters'] == 200


def test_batched_predictions_equal_one_by_one(adapter):
    rng = np.random.default_rng(0)
    images = [synthetic.make_image(rng, size=s)[0] for s in (128, 128, (160, 96), 64)]
    batched = adapter.predict(images, score_threshold=0.05)
    single = [adapter.predict([img], score_threshold=0.05)[0] for img in images]
    for b, s, img in zip(batched, single, images, strict=True):
        assert len(b) == len(s)
        for db, ds in zip(b, s, strict=True):
            assert db.class_index == ds.class_index and db.score == pytest.approx(ds.score, abs=1e-4)
            assert np.allclose(db.as_tuple()[:4], ds.as_tuple()[:4], atol=0.05)
            assert 0 <= db.x1 <= db.x2 <= img.shape[1] and 0 <= db.y1 <= db.y2 <= img.shape[0]


def test_checkpoints_slim_load_full_refused_with_a_hint(adapter, tmp_path):
    state = adapter.model.state_dict()
    slim = tmp_path / 'slim.pth'
    torch.save({'state_dict': state, 'meta': {'dataset_meta': {'classes': ['a', 'b']}}}, slim)
    assert MMDetAdapter(config=TINY_CONFIG, checkpoint=slim).classes == ['a', 'b']

    full = tmp_path / 'epoch_1.pth'
    # a pickled object, like the HistoryBuffer in mmengine Runner checkpoints
    torch.save({'state_dict': state, 'meta': {'CLASSES': ('x', 'y')}, 'message_hub': argparse.Namespace(step=1)}, full)
    with pytest.raises(AdapterError, match='slim'):
        MMDetAdapter(config=TINY_CONFIG, checkpoint=full)
    slim_checkpoint(full, tmp_path / 'fixed.pth')
    assert MMDetAdapter(config=TINY_CONFIG, checkpoint=tmp_path / 'fixed.pth').classes == ['x', 'y']
    with pytest.raises(AdapterError, match='nope.pth'):
        MMDetAdapter(config=TINY_CONFIG, checkpoint=tmp_path / 'nope.pth')


def test_one_seed_trains_one_model_whatever_the_global_random_state(tmp_path):
    """mmcv's RandomFlip draws from NumPy's global generator; the adapter's seed must fix it too."""
    from ls_extensions.ml_backend.adapters.base import Sample

    rng = np.random.default_rng(1)
    samples = []
    for i in range(4):
        image, boxes = synthetic.make_image(rng, size=64)
        samples.append(Sample(image, *synthetic.to_arrays(boxes), key=str(i)))
    options = {'iters': 3, 'batch_size': 4, 'flip': 0.5, 'seed': 7}
    weights = []
    for global_seed in (1, 2):
        np.random.seed(global_seed)
        fitted = MMDetAdapter(config=TINY_CONFIG, options=options).fit(samples, tmp_path / str(global_seed))
        weights.append(torch.load(fitted.checkpoint, weights_only=True)['state_dict'])
    assert weights[0].keys() == weights[1].keys()
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])


def test_server_start_up_error_names_the_missing_checkpoint(tmp_path):
    missing = tmp_path / 'weights' / 'faster_rcnn.pth'
    result = subprocess.run(
        [
            sys.executable,
            '-m',
            'ls_extensions.ml_backend.server',
            '--config',
            str(TINY_CONFIG),
            '--checkpoint',
            str(missing),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2 and f'checkpoint file not found: {missing}' in result.stderr
