"""Failures are bounded: every failed run counts against the policy's budget, and past it the policy stops with
its reason on the page and in the API until the user acts (in-process, a stub backend on loopback)."""

from datetime import timedelta

import pytest

from tests.conftest import box
from tests.retraining.conftest import drain

pytestmark = pytest.mark.django_db

BUDGET = 2  # LS_EXT_RETRAINING_MAX_RETRIES: the run, two retries, then the policy stops


@pytest.fixture(autouse=True)
def _budget(settings):
    settings.LS_EXT_RETRAINING_MAX_RETRIES = BUDGET


def _backend(project, stub):
    from ml.models import MLBackend

    return MLBackend.objects.create(project=project, url=stub.url, title='stub', auto_update=True)


def _time_passes(project):
    """The back-off has passed: the last failure an hour ago (the rest of the state is the product's)."""
    from ls_extensions.retraining.models import RetrainingPolicy

    policy = RetrainingPolicy.objects.get(project=project)
    RetrainingPolicy.objects.filter(pk=policy.pk).update(last_run_at=policy.last_run_at - timedelta(hours=1))


def _policy(project):
    from ls_extensions.retraining.models import RetrainingPolicy

    return RetrainingPolicy.objects.get(project=project)


def test_a_pre_annotation_that_keeps_failing_stops_with_its_reason_until_the_policy_is_saved(
    image_project, image_tasks, stub_backend, enqueued, client_owner, django_capture_on_commit_callbacks
):
    """A non-transient failure (the model does not load: /setup answers 500) of a predict-only run: not one run per sweep forever."""
    from ls_extensions.retraining import recovery
    from ls_extensions.retraining.models import RetrainingPolicy, TrainingRun

    capture = django_capture_on_commit_callbacks
    _backend(image_project, stub_backend)
    image_project.model_version = 'stub'  # follows the backend live: switching the policy on pre-annotates
    image_project.save(update_fields=['model_version'])
    stub_backend.setup_error = True
    with capture(execute=True):
        RetrainingPolicy.objects.create(project=image_project, enabled=True, threshold=50)
    drain(enqueued, capture)
    for attempt in range(2, BUDGET + 2):
        assert recovery.sweep() == 0  # within the back-off: nothing
        _time_passes(image_project)
        assert recovery.sweep() == 1 and enqueued == [('predict_served_version', (image_project.id,), None)]
        drain(enqueued, capture)
        assert TrainingRun.objects.count() == attempt
    runs = list(TrainingRun.objects.order_by('id'))
    assert [r.status for r in runs] == ['failed'] * (BUDGET + 1)
    assert all(r.metrics['predict_only'] and 'ML backend not ready' in r.error for r in runs)
    policy = _policy(image_project)
    assert policy.failed_attempts == BUDGET + 1 and policy.stopped_at
    assert policy.stopped_reason == f'stopped after {BUDGET + 1} failed attempts: {runs[-1].error}'
    _time_passes(image_project)
    assert recovery.sweep() == 0 and enqueued == []  # stopped: however long it waits

    # what the user sees
    api = client_owner.get(f'/api/projects/{image_project.id}/retraining/').json()
    assert api['stopped_reason'] == policy.stopped_reason and not api['pending'] and not api['running']
    page = client_owner.get(f'/projects/{image_project.id}/retraining/').content.decode()
    assert 'id="stopped"' in page and f'stopped after {BUDGET + 1} failed attempts' in page
    assert 'ML backend not ready' in page

    # the user fixes the backend and saves the policy: a fresh budget, the pre-annotation runs again
    stub_backend.setup_error = False
    with capture(execute=True):
        saved = client_owner.patch(
            f'/api/projects/{image_project.id}/retraining/', data={'threshold': 40}, content_type='application/json'
        )
    assert saved.status_code == 200 and saved.json()['stopped_reason'] == '' and saved.json()['failed_attempts'] == 0
    assert enqueued == [('predict_served_version', (image_project.id,), None)]
    drain(enqueued, capture)
    last = TrainingRun.objects.order_by('-id').first()
    assert last.status == 'succeeded' and last.tasks_predicted == len(image_tasks)
    policy = _policy(image_project)
    assert policy.failed_attempts == 0 and policy.stopped_reason == '' and policy.stopped_at is None


def test_threshold_runs_failing_for_any_cause_stop_the_policy_and_retrain_now_resumes(
    image_project, image_tasks, user, stub_backend, enqueued, django_capture_on_commit_callbacks
):
    """Failures of different kinds in a row (the model does not load; training fails on the backend) share one
    budget; new annotations do not reset it, and while stopped they are counted but trigger nothing."""
    from tasks.models import Annotation

    from ls_extensions.retraining import recovery, triggers
    from ls_extensions.retraining.models import RetrainingPolicy, TrainingRun

    capture = django_capture_on_commit_callbacks
    _backend(image_project, stub_backend)
    image_project.model_version = 'before'
    image_project.save(update_fields=['model_version'])
    RetrainingPolicy.objects.create(project=image_project, enabled=True, threshold=1)

    def annotate(task):
        with capture(execute=True):
            Annotation.objects.create(task=task, project=image_project, completed_by=user, result=[box(1, 1, 5, 5)])

    stub_backend.setup_error = True  # non-transient: fails at once, not retried, but counted
    annotate(image_tasks[0])
    drain(enqueued, capture)
    assert _policy(image_project).failed_attempts == 1 and not _policy(image_project).pending
    stub_backend.setup_error, stub_backend.fail_training = False, True  # transient: retried after the back-off
    _time_passes(image_project)
    annotate(image_tasks[1])
    drain(enqueued, capture, stop_at_delayed_start=True)
    assert _policy(image_project).failed_attempts == 2 and _policy(image_project).pending
    _time_passes(image_project)
    enqueued.clear()
    assert recovery.sweep() == 1
    drain(enqueued, capture)
    runs = list(TrainingRun.objects.order_by('id'))
    assert [r.status for r in runs] == ['failed'] * 3
    assert [r.trigger for r in runs] == ['threshold', 'threshold', 'retry after a failed run']
    policy = _policy(image_project)
    assert policy.stopped_reason == f'stopped after 3 failed attempts: {runs[-1].error}'
    assert 'stub failure' in policy.stopped_reason and not policy.pending and not policy.running

    annotate(image_tasks[2])  # counted, but a stopped policy starts nothing
    policy = _policy(image_project)
    assert policy.changes_since_run == 1 and not policy.pending and enqueued == []
    _time_passes(image_project)
    assert recovery.sweep() == 0

    stub_backend.fail_training = False
    with capture(execute=True):
        triggers.trigger_now(image_project.id, 'manual (page)')
    drain(enqueued, capture)
    last = TrainingRun.objects.order_by('-id').first()
    assert last.status == 'succeeded' and last.trigger == 'manual (page)' and TrainingRun.objects.count() == 4
    policy = _policy(image_project)
    assert policy.failed_attempts == 0 and policy.stopped_reason == '' and policy.changes_since_run == 0


def test_saving_a_stopped_policy_whose_counter_passed_the_threshold_starts_a_run(
    image_project, stub_backend, enqueued, client_owner, django_capture_on_commit_callbacks
):
    from django.utils import timezone

    from ls_extensions.retraining.models import RetrainingPolicy

    _backend(image_project, stub_backend)
    image_project.model_version = 'before'  # a stored version: saving the policy does not pre-annotate
    image_project.save(update_fields=['model_version'])
    RetrainingPolicy.objects.create(
        project=image_project,
        enabled=True,
        threshold=3,
        changes_since_run=5,
        failed_attempts=BUDGET + 1,
        stopped_reason='stopped after 3 failed attempts: x',
        stopped_at=timezone.now(),
    )
    page = f'/projects/{image_project.id}/retraining/'
    form = {'enabled': 'on', 'repredict': 'on', 'threshold': '3', 'min_interval_seconds': '0'}
    form.update(batch_size='50', training_timeout_seconds='3600', ml_backend='')
    with django_capture_on_commit_callbacks(execute=True):
        response = client_owner.post(page, data={'action': 'save', **form})
    assert response.status_code == 302
    policy = RetrainingPolicy.objects.get(project=image_project)
    assert policy.stopped_reason == '' and policy.pending and policy.pending_reason == 'threshold'
    assert enqueued == [('start_run', (image_project.id, 'threshold'), None)]
    assert 'id="stopped"' not in client_owner.get(page).content.decode()


def test_a_backend_titled_like_its_version_is_pre_annotated_once(
    image_project, image_tasks, stub_backend, enqueued, django_capture_on_commit_callbacks
):
    """Its project still "follows the backend live" after the pre-annotation: the sweep must not start another."""
    from ml.models import MLBackend

    from ls_extensions.retraining import recovery, steps
    from ls_extensions.retraining.models import RetrainingPolicy, TrainingRun

    MLBackend.objects.create(project=image_project, url=stub_backend.url, title='stub.v0')
    with django_capture_on_commit_callbacks(execute=True):
        RetrainingPolicy.objects.create(project=image_project, enabled=True, threshold=50)
    drain(enqueued, django_capture_on_commit_callbacks)
    (run,) = TrainingRun.objects.all()
    assert run.status == 'succeeded' and run.version_after == 'stub.v0'
    image_project.refresh_from_db()
    assert steps.follows_backend_live(image_project)  # the title is the version
    _time_passes(image_project)
    assert recovery.sweep() == 0 and TrainingRun.objects.count() == 1
