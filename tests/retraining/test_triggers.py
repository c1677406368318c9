"""Counting, triggering and recovery on Label Studio's real models (in-process, SQLite)."""

import time

import pytest

from tests.conftest import box

pytestmark = pytest.mark.django_db


def _policy(project, **kwargs):
    from ls_extensions.retraining.models import RetrainingPolicy

    return RetrainingPolicy.objects.create(project=project, enabled=True, **{'threshold': 100, **kwargs})


def _annotate(task, user):
    from tasks.models import Annotation

    return Annotation.objects.create(task=task, project=task.project, completed_by=user, result=[box(5, 5, 10, 10)])


def test_counter_counts_every_save_and_delete_exactly(image_project, image_tasks, user, make_project_other):
    policy = _policy(image_project)
    other = make_project_other
    made = [_annotate(task, user) for task in image_tasks for _ in range(2)]  # 10 creates
    made[0].result = [box(1, 1, 2, 2)]
    made[0].save()  # an update counts
    made[1].delete()  # a delete counts
    policy.refresh_from_db()
    assert policy.changes_since_run == 12
    assert policy.pending is False
    # a project without a policy (or with it disabled) counts nothing
    from ls_extensions.retraining.models import RetrainingPolicy

    assert not RetrainingPolicy.objects.filter(project=other).exists()


@pytest.fixture
def make_project_other(user):
    from tests.conftest import make_project
    from tests.label_configs import IMAGE_BOXES

    return make_project(user, IMAGE_BOXES, 'other')


def test_disabled_policy_counts_nothing(image_project, image_tasks, user):
    policy = _policy(image_project)
    policy.enabled = False
    policy.save()
    _annotate(image_tasks[0], user)
    policy.refresh_from_db()
    assert policy.changes_since_run == 0


def test_threshold_crossing_enqueues_once_and_only_after_commit(
    image_project, image_tasks, user, enqueued, django_capture_on_commit_callbacks
):
    from ls_extensions.retraining.models import RetrainingPolicy

    _policy(image_project, threshold=3)
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        for task in image_tasks[:2]:
            _annotate(task, user)
    assert callbacks == [] and enqueued == []

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        _annotate(image_tasks[2], user)  # the third crosses the threshold
    assert len(callbacks) == 1 and enqueued == []  # nothing published before the commit
    callbacks[0]()
    assert enqueued == [('start_run', (image_project.id, 'threshold'), None)]

    with django_capture_on_commit_callbacks(execute=True):
        for task in image_tasks[3:]:
            _annotate(task, user)  # past the threshold, the trigger is already pending
    assert len(enqueued) == 1
    policy = RetrainingPolicy.objects.get(project=image_project)
    assert policy.pending and policy.changes_since_run == 5


def test_rolled_back_annotation_neither_counts_nor_enqueues(image_project, image_tasks, user, enqueued):
    from django.db import transaction

    from ls_extensions.retraining.models import RetrainingPolicy

    _policy(image_project, threshold=1)
    with pytest.raises(RuntimeError), transaction.atomic():
        _annotate(image_tasks[0], user)
        raise RuntimeError('the request failed')
    policy = RetrainingPolicy.objects.get(project=image_project)
    assert policy.changes_since_run == 0 and not policy.pending and enqueued == []


def test_builtin_synchronous_training_stays_off(image_project, image_tasks, user, monkeypatch):
    """Label Studio's ``update_ml_backend`` receiver must not call ``train()`` in the annotation request."""
    from ml.models import MLBackend

    calls = []
    monkeypatch.setattr(MLBackend, 'train', lambda self: calls.append(self.id))
    MLBackend.objects.create(project=image_project, url='http://127.0.0.1:9/', title='m')
    image_project.min_annotations_to_start_training = 1
    image_project.save()
    _policy(image_project)
    image_project.refresh_from_db()
    assert image_project.min_annotations_to_start_training == 0
    image_project.min_annotations_to_start_training = 1  # turned back on in the project settings
    image_project.save()
    image_project.refresh_from_db()
    assert image_project.min_annotations_to_start_training == 0
    _annotate(image_tasks[0], user)
    assert calls == []


def test_builtin_training_untouched_without_our_policy(image_project, image_tasks, user, monkeypatch):
    from ml.models import MLBackend

    calls = []
    monkeypatch.setattr(MLBackend, 'train', lambda self: calls.append(self.id))
    MLBackend.objects.create(project=image_project, url='http://127.0.0.1:9/', title='m')
    image_project.min_annotations_to_start_training = 1
    image_project.save()
    _annotate(image_tasks[0], user)
    assert len(calls) == 1  # the control: the monkeypatch sees Label Studio's call


def test_broker_down_annotation_saves_fast_and_the_sweep_publishes_later(
    image_project, image_tasks, user, broker_at, tmp_path, django_capture_on_commit_callbacks
):
    import sqlite3

    from ls_extensions.retraining import recovery
    from ls_extensions.retraining.models import RetrainingPolicy
    from tests.support.server import free_port

    _policy(image_project, threshold=2)
    broker_at(f'amqp://guest:guest@127.0.0.1:{free_port()}//')  # nothing listens there
    timings = []
    for task in image_tasks[:3]:
        started = time.perf_counter()
        with django_capture_on_commit_callbacks(execute=True):
            _annotate(task, user)
        timings.append(time.perf_counter() - started)
    assert max(timings) < 2.5, timings
    from tasks.models import Annotation

    assert Annotation.objects.filter(project=image_project).count() == 3
    policy = RetrainingPolicy.objects.get(project=image_project)
    assert policy.pending and not policy.running  # the trigger is kept for later

    assert recovery.sweep() == 0  # broker still down: nothing published, still pending
    broker_file = tmp_path / 'broker.sqlite3'
    broker_at(f'sqla+sqlite:///{broker_file}')
    assert recovery.sweep() == 1
    with sqlite3.connect(broker_file) as db:
        (count,) = db.execute('select count(*) from kombu_message').fetchone()
    assert count == 1


def test_one_run_at_a_time_and_exactly_one_follow_up(image_project, enqueued, django_capture_on_commit_callbacks):
    from ls_extensions.retraining import steps, triggers
    from ls_extensions.retraining.models import RetrainingPolicy, TrainingRun

    policy = _policy(image_project)
    RetrainingPolicy.objects.filter(pk=policy.pk).update(running=True)  # a run is going
    with django_capture_on_commit_callbacks(execute=True):
        for _ in range(3):
            triggers.trigger_now(image_project.id)
    assert [c[0] for c in enqueued] == ['start_run'] * 3
    for _name, args, _ in list(enqueued):
        assert steps.start_run(*args) is None  # no claim while running
    enqueued.clear()
    assert TrainingRun.objects.count() == 0
    with django_capture_on_commit_callbacks(execute=True):
        steps.release(image_project.id)
    assert enqueued == [('start_run', (image_project.id, 'follow-up'), None)]
    with django_capture_on_commit_callbacks(execute=True):
        run = steps.start_run(image_project.id, 'follow-up')
        assert steps.start_run(image_project.id, 'duplicate message') is None
    assert TrainingRun.objects.count() == 1
    run.refresh_from_db()
    assert run.status == 'failed' and 'no ML backend' in run.error  # none connected in this test
    policy.refresh_from_db()
    assert not policy.running and not policy.pending
