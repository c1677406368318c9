"""Exact counting and a single trigger under concurrent annotation writers (PostgreSQL, real transactions)."""

import threading

import pytest
from django.conf import settings

from tests.conftest import box

# available_apps (all of them) makes the flush after the test TRUNCATE ... CASCADE: Label Studio has a table
# (users_userproducttour) whose foreign key to htx_user a plain flush on PostgreSQL refuses to truncate.
pytestmark = [
    pytest.mark.postgres,
    pytest.mark.django_db(transaction=True, available_apps=list(settings.INSTALLED_APPS)),
]

WRITERS, EACH, THRESHOLD = 4, 6, 10


def test_concurrent_annotations_count_exactly_and_trigger_once(image_project, image_tasks, user, enqueued):
    from django.db import connection
    from tasks.models import Annotation

    from ls_extensions.retraining.models import RetrainingPolicy

    assert connection.vendor == 'postgresql'
    RetrainingPolicy.objects.create(project=image_project, enabled=True, threshold=THRESHOLD)
    barrier = threading.Barrier(WRITERS)
    errors = []

    def write(n):
        from django.db import connection as own

        try:
            barrier.wait()
            for i in range(EACH):
                task = image_tasks[(n + i) % len(image_tasks)]
                Annotation.objects.create(task=task, project=image_project, completed_by=user, result=[box(1, 1, 2, 2)])
        except Exception as exc:  # noqa: BLE001
            errors.append(exc)
        finally:
            own.close()

    threads = [threading.Thread(target=write, args=(n,)) for n in range(WRITERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == []
    policy = RetrainingPolicy.objects.get(project=image_project)
    assert policy.changes_since_run == WRITERS * EACH == Annotation.objects.filter(project=image_project).count()
    assert policy.pending
    assert enqueued == [('start_run', (image_project.id, 'threshold'), None)]


DELIVERIES = 4


def test_deliveries_of_the_training_step_at_once_ask_the_backend_once(image_project, stub_backend, enqueued):
    """acks_late redeliveries and sweep re-publishes can run at the same moment on several workers."""
    from django.db import connection
    from django.utils import timezone
    from ml.models import MLBackend

    from ls_extensions.retraining import steps, timing
    from ls_extensions.retraining.models import RetrainingPolicy

    assert connection.vendor == 'postgresql'
    backend = MLBackend.objects.create(project=image_project, url=stub_backend.url, title='stub')
    image_project.model_version = 'before'  # a stored version: switching the policy on does not pre-annotate
    image_project.save(update_fields=['model_version'])
    now = timezone.now()
    policy = RetrainingPolicy.objects.create(
        project=image_project, enabled=True, threshold=2, running=True, last_run_at=now
    )
    run = steps.record_run(policy, 'threshold', now, ml_backend=backend)
    barrier = threading.Barrier(DELIVERIES)
    results, errors = [], []

    def deliver():
        from django.db import connection as own

        try:
            barrier.wait()
            results.append(steps.begin_training(run.id))
        except Exception as exc:  # noqa: BLE001
            errors.append(exc)
        finally:
            own.close()

    threads = [threading.Thread(target=deliver) for _ in range(DELIVERIES)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == []
    assert len([r for r in results if r is not None]) == 1  # one delivery claimed the step, the others did nothing
    assert stub_backend.train_calls == 1
    run.refresh_from_db()
    assert run.status == 'training' and run.job_id == 'job-1'
    assert enqueued == [('poll_training', (run.id,), timing.poll_seconds())]
