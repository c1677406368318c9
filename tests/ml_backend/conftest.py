"""Model-server fixtures: one torch thread, synthetic images, the server process, a real Label Studio."""

import os

import pytest


def pytest_configure(config):
    config.addinivalue_line('markers', 'ml: trains or runs MMDetection models (slow; needs scripts/install-ml.sh)')


@pytest.fixture(autouse=True, scope='session')
def _one_torch_thread():
    os.environ.setdefault('LS_EXT_ML_THREADS', '1')
    try:
        import torch

        torch.set_num_threads(1)
    except ImportError:
        pass
