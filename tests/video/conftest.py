"""Fixtures of the video tests: Celery tasks run in this process, as a worker would run them; motmetrics on NumPy 2."""

from contextlib import contextmanager

import numpy as np
import pytest


@pytest.fixture
def numpy_for_motmetrics(monkeypatch):
    """motmetrics 1.4.0 calls `np.asfarray` (motmetrics/distances.py::iou_matrix), which NumPy 2 removed.

    The shim is NumPy 1's definition, set for this test only; motmetrics itself runs unchanged.
    """
    if not hasattr(np, 'asfarray'):
        monkeypatch.setattr(np, 'asfarray', lambda a, dtype=float: np.asarray(a, dtype), raising=False)


@pytest.fixture
def worker(django_capture_on_commit_callbacks):
    """``with worker(): client.post(...)``: what the block publishes (after commit) runs here, before it ends.

    Celery's own eager mode (``task_always_eager``), inside the block only: ``apply_async`` runs the task in
    the caller's thread instead of sending it to the broker, so the task's code runs on this test's
    database. Inside the test's transaction nothing commits, so the after-commit callbacks are captured
    and run at the block's end. Outside the block, publishing goes to the test's (unread) broker.
    """
    import ls_extensions.video.tasks  # noqa: F401  (registers the tasks, as a worker does at start)
    from ls_extensions.celery import app

    @contextmanager
    def run():
        saved = app.conf.task_always_eager
        app.conf.task_always_eager = True
        try:
            with django_capture_on_commit_callbacks(execute=True):
                yield
        finally:
            app.conf.task_always_eager = saved

    return run
