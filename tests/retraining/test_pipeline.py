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


def test_failed_training_is_recorded_and_the_version_stays(
    setup, user, stub_backend, enqueued, django_capture_on_commit_callbacks
):
    from tasks.models import Prediction

    from ls_extensions.retraining.models import TrainingRun

    project, tasks, backend, policy = setup
    stub_backend.fail_training = True
    for task in tasks[:2]:
        _annotate(task, user, django_capture_on_commit_callbacks)
    drain(enqueued, django_capture_on_commit_callbacks)
    (run,) = TrainingRun.objects.all()
    assert run.status == 'failed' and 'stub failure' in run.error and run.finished_at
    project.refresh_from_db()
    assert project.model_version == 'before'
    assert not Prediction.objects.filter(project=project).exists()
    policy.refresh_from_db()
    assert not policy.running


def test_unreachable_backend_fails_the_run(setup, user, enqueued, django_capture_on_commit_callbacks):
    from ls_extensions.retraining.models import TrainingRun

    project, tasks, backend, policy = setup
    backend.url = 'http://127.0.0.1:9'
    backend.save()
    for task in tasks[:2]:
        _annotate(task, user, django_capture_on_commit_callbacks)
    drain(enqueued, django_capture_on_commit_callbacks)
    (run,) = TrainingRun.objects.all()
    assert run.status == 'failed' and 'not ready' in run.error
    project.refresh_from_db()
    assert project.model_version == 'before'


def test_triggers_during_training_make_exactly_one_follow_up(
    setup, user, stub_backend, enqueued, django_capture_on_commit_callbacks
):
    from ls_extensions.retraining import services
    from ls_extensions.retraining.models import TrainingRun

    project, tasks, backend, policy = setup
    stub_backend.finish_training = False
    for task in tasks[:2]:
        _annotate(task, user, django_capture_on_commit_callbacks)
    capture = django_capture_on_commit_callbacks
    with capture(execute=True):
        services.start_run(*enqueued.pop(0)[1])
    # during training: two more annotations cross the threshold again, and "Retrain now" twice
    for task in tasks[2:4]:
        _annotate(task, user, capture)
    with capture(execute=True):
        services.trigger_now(project.id)
        services.trigger_now(project.id)
    stub_backend.finish_training = True
    drain(enqueued, capture)
    runs = list(TrainingRun.objects.order_by('id'))
    assert [r.status for r in runs] == ['succeeded', 'succeeded']
    assert runs[1].trigger in ('follow-up', 'threshold', 'manual') and stub_backend.train_calls == 2
    assert runs[1].version_before == 'stub.v1' and runs[1].version_after == 'stub.v2'
    project.refresh_from_db()
    assert project.model_version == 'stub.v2'
