"""One run end to end in-process: Label Studio's MLBackend against a stub backend on loopback."""

import pytest

from tests.conftest import box
from tests.retraining.conftest import drain

pytestmark = pytest.mark.django_db


@pytest.fixture
def setup(image_project, image_tasks, stub_backend):
    from ml.models import MLBackend

    from ls_extensions.retraining.models import RetrainingPolicy

    backend = MLBackend.objects.create(project=image_project, url=stub_backend.url, title='stub', auto_update=True)
    image_project.model_version = 'before'
    image_project.save(update_fields=['model_version'])
    policy = RetrainingPolicy.objects.create(project=image_project, enabled=True, threshold=2, batch_size=2)
    return image_project, image_tasks, backend, policy


def _annotate(task, user, capture):
    from tasks.models import Annotation

    with capture(execute=True):
        return Annotation.objects.create(task=task, project=task.project, completed_by=user, result=[box(5, 5, 10, 10)])


def test_threshold_run_trains_repredicts_unlabeled_tasks_and_switches_version(
    setup, user, stub_backend, enqueued, django_capture_on_commit_callbacks
):
    from tasks.models import Prediction, Task

    from ls_extensions.retraining.models import TrainingRun

    project, tasks, backend, policy = setup
    for task in tasks[:2]:
        _annotate(task, user, django_capture_on_commit_callbacks)
    assert [c[0] for c in enqueued] == ['start_run']
    steps = drain(enqueued, django_capture_on_commit_callbacks)
    assert steps == ['start_run', 'poll_training', 'repredict_batch', 'repredict_batch', 'repredict_batch']

    (run,) = TrainingRun.objects.all()
    assert run.status == 'succeeded', run.error
    assert (run.version_before, run.version_after) == ('stub.v0', 'stub.v1')
    assert run.trigger == 'threshold' and run.annotations_used == 2 and run.job_id == 'job-1'
    assert run.tasks_to_predict == 3 and run.tasks_predicted == 3 and run.metrics['loss'] == 0.5
    assert run.started_at <= run.finished_at
    unlabeled = Task.objects.filter(project=project, is_labeled=False)
    assert unlabeled.count() == 3
    for task in unlabeled:
        assert Prediction.objects.filter(task=task, model_version='stub.v1').count() == 1
    assert sorted(stub_backend.predicted) == sorted(t.id for t in unlabeled)  # labeled tasks not re-predicted
    project.refresh_from_db()
    assert project.model_version == 'stub.v1'
    policy.refresh_from_db()
    assert not policy.running and not policy.pending and policy.changes_since_run == 0


def test_predict_labeled_repredicts_labeled_tasks_too_for_the_mistake_ranking(
    setup, user, stub_backend, enqueued, django_capture_on_commit_callbacks
):
    from tasks.models import Prediction

    from ls_extensions.retraining.models import TrainingRun

    project, tasks, backend, policy = setup
    policy.predict_labeled = True
    policy.save(update_fields=['predict_labeled'])
    for task in tasks[:2]:
        _annotate(task, user, django_capture_on_commit_callbacks)
    drain(enqueued, django_capture_on_commit_callbacks)
    (run,) = TrainingRun.objects.all()
    assert run.status == 'succeeded', run.error
    assert run.tasks_to_predict == len(tasks) == run.tasks_predicted
    assert sorted(stub_backend.predicted) == sorted(t.id for t in tasks)  # the two labeled ones included
    assert Prediction.objects.filter(task__in=tasks[:2], model_version='stub.v1').count() == 2


def test_failed_training_is_recorded_and_the_version_stays(
    setup, user, stub_backend, enqueued, django_capture_on_commit_callbacks
):
    from tasks.models import Prediction

    from ls_extensions.retraining.models import TrainingRun

    project, tasks, backend, policy = setup
    stub_backend.fail_training = True
    for task in tasks[:2]:
        _annotate(task, user, django_capture_on_commit_callbacks)
    drain(enqueued, django_capture_on_commit_callbacks, stop_at_delayed_start=True)
    (run,) = TrainingRun.objects.all()
    assert run.status == 'failed' and 'stub failure' in run.error and run.finished_at
    project.refresh_from_db()
    assert project.model_version == 'before'
    assert not Prediction.objects.filter(project=project).exists()
    policy.refresh_from_db()
    assert not policy.running
    # retried after a back-off (the failure may be an outage behind the backend), as a run of its own
    assert policy.pending and policy.failed_attempts == 1 and policy.pending_reason == 'retry after a failed run'
    assert [c[0] for c in enqueued] == ['start_run'] and enqueued[0][2] > 0


def test_unreachable_backend_is_retried_with_back_off_then_the_run_fails_and_the_trigger_waits(
    setup, user, enqueued, django_capture_on_commit_callbacks, settings
):
    from ls_extensions.retraining.models import TrainingRun

    settings.LS_EXT_RETRAINING_MAX_RETRIES = 2
    settings.LS_EXT_RETRAINING_RETRY_SECONDS = 3
    project, tasks, backend, policy = setup
    backend.url = 'http://127.0.0.1:9'  # nothing listens: connection refused
    backend.save()
    for task in tasks[:2]:
        _annotate(task, user, django_capture_on_commit_callbacks)
    steps = drain(enqueued, django_capture_on_commit_callbacks, stop_at_delayed_start=True)
    assert steps == ['start_run', 'begin_training', 'begin_training']
    (run,) = TrainingRun.objects.all()
    assert run.status == 'failed' and 'unreachable' in run.error and 'gave up after 2 retries' in run.error
    assert run.retries == 3 and run.finished_at
    project.refresh_from_db()
    assert project.model_version == 'before'
    # a transient failure keeps the trigger: pending again, published for after the back-off
    policy.refresh_from_db()
    assert policy.pending and not policy.running and policy.failed_attempts == 1
    assert enqueued == [('start_run', (project.id, 'follow-up'), pytest.approx(3, abs=1))]


def test_a_backend_that_answers_with_an_error_fails_the_run_at_once(
    setup, user, stub_backend, enqueued, django_capture_on_commit_callbacks
):
    from ls_extensions.retraining.models import TrainingRun

    project, tasks, backend, policy = setup
    stub_backend.setup_error = True
    for task in tasks[:2]:
        _annotate(task, user, django_capture_on_commit_callbacks)
    assert drain(enqueued, django_capture_on_commit_callbacks) == ['start_run']
    (run,) = TrainingRun.objects.all()
    assert run.status == 'failed' and 'not ready' in run.error and run.retries == 0
    policy.refresh_from_db()
    # not retried (it would fail the same way), but counted against the budget (test_failure_budget.py)
    assert not policy.pending and policy.failed_attempts == 1 and policy.stopped_reason == ''


def test_triggers_during_training_make_exactly_one_follow_up(
    setup, user, stub_backend, enqueued, django_capture_on_commit_callbacks
):
    from ls_extensions.retraining import steps, triggers
    from ls_extensions.retraining.models import TrainingRun

    project, tasks, backend, policy = setup
    stub_backend.finish_training = False
    for task in tasks[:2]:
        _annotate(task, user, django_capture_on_commit_callbacks)
    capture = django_capture_on_commit_callbacks
    with capture(execute=True):
        steps.start_run(*enqueued.pop(0)[1])
    # during training: two more annotations cross the threshold again, and "Retrain now" twice
    for task in tasks[2:4]:
        _annotate(task, user, capture)
    with capture(execute=True):
        triggers.trigger_now(project.id)
        triggers.trigger_now(project.id)
    stub_backend.finish_training = True
    drain(enqueued, capture)
    runs = list(TrainingRun.objects.order_by('id'))
    assert [r.status for r in runs] == ['succeeded', 'succeeded']
    assert runs[1].trigger == 'threshold' and stub_backend.train_calls == 2  # the crossing came first
    assert runs[1].version_before == 'stub.v1' and runs[1].version_after == 'stub.v2'
    project.refresh_from_db()
    assert project.model_version == 'stub.v2'


def _an_hour_ago():
    from datetime import timedelta

    from django.utils import timezone

    return timezone.now() - timedelta(hours=1)


def _until_training(enqueued, capture, tasks=None, user=None):
    """Annotate two ``tasks`` (if given) and run start_run (which begins the training); leave the first poll
    in ``enqueued``."""
    from ls_extensions.retraining import steps

    for task in (tasks or [])[:2]:
        _annotate(task, user, capture)
    name, args, _ = enqueued.pop(0)
    assert name == 'start_run'
    with capture(execute=True):
        run = steps.start_run(*args)
    assert [c[0] for c in enqueued] == ['poll_training']
    return run


def test_duplicate_deliveries_of_every_step_do_nothing_twice(
    setup, user, stub_backend, enqueued, django_capture_on_commit_callbacks
):
    """acks_late redelivery, or a step published again by the sweep: no second training, no duplicates."""
    from tasks.models import Prediction, Task

    from ls_extensions.retraining import steps
    from ls_extensions.retraining.models import TrainingRun

    project, tasks, backend, policy = setup
    capture = django_capture_on_commit_callbacks
    run = _until_training(enqueued, capture, tasks, user)
    assert steps.begin_training(run.id) is None  # already training: the duplicate asks nothing
    assert stub_backend.train_calls == 1
    enqueued.clear()
    with capture(execute=True):
        steps.poll_training(run.id)
        assert steps.poll_training(run.id) is None  # already predicting
    assert [c[0] for c in enqueued] == ['repredict_batch']
    with capture(execute=True):
        steps.repredict_batch(run.id)
        steps.repredict_batch(run.id)  # a duplicate claims the next batch, never the same one
    drain(enqueued, capture)
    run.refresh_from_db()
    assert run.status == 'succeeded' and run.tasks_predicted == 3 and run.tasks_to_predict == 3
    assert sorted(stub_backend.predicted) == sorted(set(stub_backend.predicted))  # each task predicted once
    for task in Task.objects.filter(project=project, is_labeled=False):
        assert Prediction.objects.filter(task=task, model_version='stub.v1').count() == 1
    assert stub_backend.versions == ['stub.v0', 'stub.v1'] and TrainingRun.objects.count() == 1


def test_sweep_publishes_again_a_step_lost_with_its_worker(
    setup, user, stub_backend, enqueued, django_capture_on_commit_callbacks
):
    from ls_extensions.retraining import recovery
    from ls_extensions.retraining.models import TrainingRun

    project, tasks, backend, policy = setup
    capture = django_capture_on_commit_callbacks
    run = _until_training(enqueued, capture, tasks, user)
    enqueued.clear()  # the worker holding the poll was killed: the message is gone
    assert recovery.sweep() == 0  # a fresh heartbeat is left alone
    TrainingRun.objects.filter(pk=run.pk).update(heartbeat_at=_an_hour_ago())
    assert recovery.sweep() == 1
    assert recovery.sweep() == 0  # published once: its heartbeat is fresh again
    assert enqueued == [('poll_training', (run.id,), None)]
    drain(enqueued, capture)
    run.refresh_from_db()
    assert run.status == 'succeeded' and run.recovered == 1 and stub_backend.train_calls == 1
    project.refresh_from_db()
    assert project.model_version == 'stub.v1'


def test_unreachable_backend_during_training_is_polled_with_back_off(
    setup, user, stub_backend, enqueued, django_capture_on_commit_callbacks, settings
):
    from ls_extensions.retraining import steps

    settings.LS_EXT_RETRAINING_RETRY_SECONDS = 7
    project, tasks, backend, policy = setup
    capture = django_capture_on_commit_callbacks
    run = _until_training(enqueued, capture, tasks, user)
    enqueued.clear()
    url = backend.url
    backend.url = 'http://127.0.0.1:9'  # the backend is down for a while
    backend.save(update_fields=['url'])
    steps.poll_training(run.id)
    run.refresh_from_db()
    assert run.status == 'training' and run.metrics['unreachable_polls'] == 1 and 'unreachable' in run.error
    assert enqueued == [('poll_training', (run.id,), 7.0)]
    backend.url = url
    backend.save(update_fields=['url'])
    drain(enqueued, capture)
    run.refresh_from_db()
    assert run.status == 'succeeded' and run.error == ''


def test_a_backend_restart_that_loses_the_job_fails_the_run_and_retries_the_trigger(
    setup, user, stub_backend, enqueued, django_capture_on_commit_callbacks
):
    from datetime import timedelta

    from ls_extensions.retraining import recovery, steps
    from ls_extensions.retraining.models import RetrainingPolicy, TrainingRun

    project, tasks, backend, policy = setup
    capture = django_capture_on_commit_callbacks
    _until_training(enqueued, capture, tasks, user)
    stub_backend.jobs.clear()  # restarted: it knows no job any more
    drain(enqueued, capture, stop_at_delayed_start=True)
    first = TrainingRun.objects.get()
    assert first.status == 'failed' and 'no longer knows training job' in first.error
    project.refresh_from_db()
    assert project.model_version == 'before'
    policy.refresh_from_db()
    assert policy.pending and policy.failed_attempts == 1
    assert [c[0] for c in enqueued] == ['start_run'] and enqueued[0][2] > 0  # after the back-off
    with capture(execute=True):
        assert steps.start_run(project.id, 'follow-up') is None  # not due yet
    RetrainingPolicy.objects.filter(pk=policy.pk).update(last_run_at=policy.last_run_at - timedelta(minutes=5))
    enqueued.clear()
    assert recovery.sweep() == 1
    drain(enqueued, capture)
    second = TrainingRun.objects.order_by('-id').first()
    assert second.status == 'succeeded' and second.trigger == 'retry after a failed run'
    policy.refresh_from_db()
    assert policy.failed_attempts == 0 and not policy.pending and not policy.running
    project.refresh_from_db()
    assert project.model_version == second.version_after


def test_minimum_interval_holds_the_trigger_until_due(
    setup, user, stub_backend, enqueued, django_capture_on_commit_callbacks
):
    from datetime import timedelta

    from ls_extensions.retraining import recovery
    from ls_extensions.retraining.models import RetrainingPolicy, TrainingRun

    project, tasks, backend, policy = setup
    RetrainingPolicy.objects.filter(pk=policy.pk).update(min_interval_seconds=3600)
    capture = django_capture_on_commit_callbacks
    for task in tasks[:2]:
        _annotate(task, user, capture)
    drain(enqueued, capture)
    assert TrainingRun.objects.count() == 1
    for task in tasks[2:4]:  # crosses the threshold again within the hour
        _annotate(task, user, capture)
    assert drain(enqueued, capture) == ['start_run']  # not due: no run, nothing held in the broker for an hour
    policy.refresh_from_db()
    assert policy.pending and not policy.running and TrainingRun.objects.count() == 1
    assert recovery.sweep() == 0
    RetrainingPolicy.objects.filter(pk=policy.pk).update(last_run_at=policy.last_run_at - timedelta(hours=2))
    assert recovery.sweep() == 1
    drain(enqueued, capture)
    assert TrainingRun.objects.count() == 2 and TrainingRun.objects.first().trigger == 'threshold'  # its cause


def test_switching_on_a_project_that_follows_the_backend_live_pre_annotates_with_the_served_version(
    image_project, image_tasks, user, stub_backend, enqueued, django_capture_on_commit_callbacks
):
    """Label Studio would predict inside each next-task request while ``model_version`` is the backend's title."""
    from ml.models import MLBackend
    from tasks.models import Prediction

    from ls_extensions.retraining.models import RetrainingPolicy, TrainingRun

    MLBackend.objects.create(project=image_project, url=stub_backend.url, title='stub', auto_update=True)
    image_project.model_version = 'stub'  # what connecting a backend in the UI leaves
    image_project.save(update_fields=['model_version'])
    capture = django_capture_on_commit_callbacks
    _annotate(image_tasks[0], user, capture)
    with capture(execute=True):
        RetrainingPolicy.objects.create(project=image_project, enabled=True, threshold=50)
    assert enqueued == [('predict_served_version', (image_project.id,), None)]
    drain(enqueued, capture)
    (run,) = TrainingRun.objects.all()
    assert run.status == 'succeeded' and run.metrics['predict_only'] and stub_backend.train_calls == 0
    assert (run.version_before, run.version_after) == ('stub.v0', 'stub.v0')
    assert run.tasks_to_predict == run.tasks_predicted == 4  # the unlabeled ones
    assert Prediction.objects.filter(project=image_project, model_version='stub.v0').count() == 4
    image_project.refresh_from_db()
    assert image_project.model_version == 'stub.v0'  # stored predictions from now on, no live calls
    with capture(execute=True):  # saved again: nothing to do any more
        RetrainingPolicy.objects.get(project=image_project).save()
    assert enqueued == []


def test_a_step_lost_again_and_again_ends_the_run_and_retries_it_as_a_new_one(
    setup, user, stub_backend, enqueued, django_capture_on_commit_callbacks
):
    from ls_extensions.retraining import recovery
    from ls_extensions.retraining.models import TrainingRun

    project, tasks, backend, policy = setup
    run = _until_training(enqueued, django_capture_on_commit_callbacks, tasks, user)
    enqueued.clear()
    TrainingRun.objects.filter(pk=run.pk).update(recovered=recovery.MAX_RECOVERIES, heartbeat_at=_an_hour_ago())
    with django_capture_on_commit_callbacks(execute=True):
        assert recovery.sweep() == 0  # not published a sixth time
    run.refresh_from_db()
    assert run.status == 'failed' and f'lost {recovery.MAX_RECOVERIES} times' in run.error
    policy.refresh_from_db()
    assert policy.pending and policy.pending_reason == 'retry after a failed run' and not policy.running
