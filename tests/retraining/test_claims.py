"""The claims of a run, in-process on Label Studio's real models and a stub backend on loopback: two deliveries
of the training step ask the backend once, a lost request is taken over without a second training, a policy
switched off before the claim starts nothing, and nothing slow runs while the policy row is locked."""

import threading
from contextlib import contextmanager
from datetime import timedelta

import pytest
from django.utils import timezone

from tests.retraining.conftest import drain

pytestmark = pytest.mark.django_db


@pytest.fixture
def backend(image_project, image_tasks, stub_backend):
    from ml.models import MLBackend

    image_project.model_version = 'before'
    image_project.save(update_fields=['model_version'])
    return MLBackend.objects.create(project=image_project, url=stub_backend.url, title='stub', auto_update=True)


def claimed_run(project, backend):
    """A project claimed for a run and its ``queued`` run, as ``start_run`` leaves them before the training step."""
    from ls_extensions.retraining import steps
    from ls_extensions.retraining.models import RetrainingPolicy

    now = timezone.now()
    policy = RetrainingPolicy.objects.create(project=project, enabled=True, threshold=2, running=True, last_run_at=now)
    return steps.record_run(policy, 'threshold', now, ml_backend=backend)


@contextmanager
def statements(connection):
    """[(sql, inside a transaction)] of every statement on ``connection``: Django's ``execute_wrapper`` hook."""
    seen = []

    def record(execute, sql, params, many, context):
        seen.append((sql, context['connection'].in_atomic_block))
        return execute(sql, params, many, context)

    with connection.execute_wrapper(record):
        yield seen


@contextmanager
def before_first(connection, fragment, action):
    """Run ``action`` just before the first statement containing ``fragment``: a concurrent write landing in
    exactly that window (Django's ``execute_wrapper`` hook; the write itself is real)."""
    done = []

    def hook(execute, sql, params, many, context):
        if not done and fragment in sql:
            done.append(sql)
            action()
        return execute(sql, params, many, context)

    with connection.execute_wrapper(hook):
        yield done


@pytest.mark.django_db(transaction=True)
def test_a_second_delivery_while_the_first_is_inside_the_train_call_asks_nothing(
    image_project, backend, stub_backend, enqueued
):
    """The worst interleaving, forced: delivery 1 is inside the backend's /train when delivery 2 arrives."""
    from django.db import connection

    from ls_extensions.retraining import steps, timing
    from ls_extensions.retraining.models import TrainingRun

    run = claimed_run(image_project, backend)
    stub_backend.hold_training()
    outcome = {}

    def first_delivery():
        try:
            outcome['first'] = steps.begin_training(run.id)
        finally:
            connection.close()

    first = threading.Thread(target=first_delivery)
    first.start()
    try:
        assert stub_backend.train_entered.wait(30), 'the first delivery never reached the backend'
        assert TrainingRun.objects.get(pk=run.pk).status == 'requesting'
        assert steps.begin_training(run.id) is None  # the second delivery: the step is held
    finally:
        stub_backend.release_training()
        first.join(60)
    assert outcome['first'] is not None and stub_backend.train_calls == 1
    run.refresh_from_db()
    assert run.status == 'training' and run.job_id == 'job-1' and run.version_before == 'stub.v0'
    assert enqueued == [('poll_training', (run.id,), timing.poll_seconds())]


def test_a_request_lost_after_the_backend_got_it_is_taken_over_without_a_second_training(
    image_project, backend, stub_backend, enqueued, django_capture_on_commit_callbacks
):
    """The worker died between Label Studio recording the training job and the run moving on."""
    from ls_extensions.retraining import recovery, steps
    from ls_extensions.retraining.models import TrainingRun

    run = claimed_run(image_project, backend)
    steps.begin_training(run.id)
    assert stub_backend.train_calls == 1
    # what the dead worker left: still "requesting", its claim's heartbeat stale, its poll never published
    an_hour_ago = timezone.now() - timedelta(hours=1)
    TrainingRun.objects.filter(pk=run.pk).update(status='requesting', job_id='', heartbeat_at=an_hour_ago)
    enqueued.clear()
    assert recovery.sweep() == 1 and enqueued == [('begin_training', (run.id,), None)]
    drain(enqueued, django_capture_on_commit_callbacks)
    run.refresh_from_db()
    assert run.status == 'succeeded' and run.recovered == 1 and run.job_id == 'job-1'
    assert stub_backend.train_calls == 1 and stub_backend.versions == ['stub.v0', 'stub.v1']


def test_a_request_lost_before_label_studio_recorded_the_job_is_adopted_from_the_backend(
    image_project, backend, stub_backend, enqueued, django_capture_on_commit_callbacks
):
    """The worker died between the backend's answer to /train and Label Studio recording the job: the
    take-over finds the job in the backend's own list (GET /training) instead of training a second time."""
    from ml.models import MLBackendTrainJob

    from ls_extensions.retraining import recovery, steps
    from ls_extensions.retraining.models import TrainingRun

    run = claimed_run(image_project, backend)
    steps.begin_training(run.id)
    assert stub_backend.train_calls == 1
    MLBackendTrainJob.objects.filter(ml_backend=backend).delete()  # never recorded
    an_hour_ago = timezone.now() - timedelta(hours=1)
    TrainingRun.objects.filter(pk=run.pk).update(status='requesting', job_id='', heartbeat_at=an_hour_ago)
    enqueued.clear()
    assert recovery.sweep() == 1
    drain(enqueued, django_capture_on_commit_callbacks)
    run.refresh_from_db()
    assert run.status == 'succeeded' and run.recovered == 1 and run.job_id == 'job-1'
    assert stub_backend.train_calls == 1


def test_a_request_lost_before_it_reached_the_backend_asks_once(
    image_project, backend, stub_backend, enqueued, django_capture_on_commit_callbacks
):
    from ls_extensions.retraining import recovery, steps
    from ls_extensions.retraining.models import TrainingRun

    run = claimed_run(image_project, backend)
    assert steps.claim_step(run.id) is not None  # claimed, then the worker died before any call
    assert steps.begin_training(run.id) is None  # held: its heartbeat is ahead
    an_hour_ago = timezone.now() - timedelta(hours=1)
    TrainingRun.objects.filter(pk=run.pk).update(heartbeat_at=an_hour_ago)
    assert recovery.sweep() == 1
    drain(enqueued, django_capture_on_commit_callbacks)
    run.refresh_from_db()
    assert run.status == 'succeeded' and stub_backend.train_calls == 1 and run.recovered == 1


@pytest.mark.django_db(transaction=True)
def test_a_policy_switched_off_between_the_read_and_the_claim_starts_no_run(image_project, backend, enqueued):
    from django.db import connection

    from ls_extensions.retraining import steps
    from ls_extensions.retraining.models import RetrainingPolicy, TrainingRun

    policy = RetrainingPolicy.objects.create(project=image_project, enabled=True, threshold=2, pending=True)

    def switch_off():
        RetrainingPolicy.objects.filter(pk=policy.pk).update(enabled=False)

    with before_first(connection, 'UPDATE "ls_ext_retraining_retrainingpolicy" SET "running"', switch_off) as hit:
        assert steps.start_run(image_project.id) is None
    assert hit, 'start_run never tried to claim'
    policy.refresh_from_db()
    assert not policy.running and not policy.enabled and TrainingRun.objects.count() == 0


@pytest.mark.django_db(transaction=True)
def test_a_pre_annotation_switched_off_before_its_claim_starts_no_run(image_project, backend, enqueued):
    from django.db import connection

    from ls_extensions.retraining import steps
    from ls_extensions.retraining.models import RetrainingPolicy, TrainingRun

    image_project.model_version = 'stub'  # follows the backend live
    image_project.save(update_fields=['model_version'])
    policy = RetrainingPolicy.objects.create(project=image_project, enabled=True, threshold=2)
    enqueued.clear()

    def switch_off():
        RetrainingPolicy.objects.filter(pk=policy.pk).update(enabled=False)

    with before_first(connection, 'UPDATE "ls_ext_retraining_retrainingpolicy" SET "running"', switch_off) as hit:
        assert steps.predict_served_version(image_project.id) is None
    assert hit
    policy.refresh_from_db()
    assert not policy.running and TrainingRun.objects.count() == 0


@pytest.mark.django_db(transaction=True)
def test_no_annotation_query_and_no_row_lock_while_a_run_is_claimed(
    image_project, image_tasks, user, backend, enqueued
):
    """The annotation counter's F() update waits on the policy row while a claim holds it: keep that short."""
    from django.db import connection
    from tasks.models import Annotation

    from ls_extensions.retraining import recovery, steps
    from ls_extensions.retraining.models import RetrainingPolicy, TrainingRun
    from tests.conftest import box

    RetrainingPolicy.objects.create(project=image_project, enabled=True, threshold=2)
    for task in image_tasks[:2]:
        Annotation.objects.create(task=task, project=image_project, completed_by=user, result=[box(5, 5, 10, 10)])
    enqueued.clear()
    with statements(connection) as seen:
        run = steps.start_run(image_project.id)
    assert run is not None and run.annotations_used == 2
    counts = [inside for sql, inside in seen if 'COUNT(' in sql.upper() and '"task_completion"' in sql]
    assert counts and not any(counts), seen  # counted outside any transaction (ours, and Label Studio's train)
    # the sweep neither locks a row: a finished run's claim is released by compare-and-swap
    TrainingRun.objects.filter(pk=run.pk).update(status='failed', error='x')
    with statements(connection) as seen:
        recovery.sweep()
    assert seen and not any('FOR UPDATE' in sql.upper() for sql, _ in seen)
    assert not RetrainingPolicy.objects.get(project=image_project).running
