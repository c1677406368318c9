"""The retraining work, as plain functions of ids: counting, triggering, one run, re-predicting.

Celery tasks (``tasks.py``) are thin wrappers; tests call these functions directly. Every step is
idempotent (a redelivered message finds the run already past its step and does nothing), and
every step ends by enqueueing the next one after its transaction commits.
"""

import logging
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from ls_extensions.retraining.models import RetrainingPolicy, TrainingRun

logger = logging.getLogger(__name__)


def poll_seconds():
    return float(getattr(settings, 'LS_EXT_RETRAINING_POLL_SECONDS', 5))


# --- enqueueing: never fails the caller ---------------------------------------------------------


def enqueue(task_name, *args, countdown=None):
    """Publish a task now; a broker that is down is logged and reported, never raised.

    A trigger whose publish fails stays ``pending`` in the database; ``sweep`` (periodic, and at
    worker start) publishes it again.
    """
    from ls_extensions.retraining import tasks

    try:
        getattr(tasks, task_name).apply_async(args, countdown=countdown, retry=False)
        return True
    except Exception as exc:  # noqa: BLE001 - kombu raises many kinds of connection errors
        logger.warning('could not enqueue %s%r (broker unavailable?): %s', task_name, args, exc)
        return False


def enqueue_on_commit(task_name, *args, countdown=None):
    transaction.on_commit(lambda: enqueue(task_name, *args, countdown=countdown))


# --- counting (the annotation receivers) ---------------------------------------------------------


def count_change(project_id):
    """One annotation saved or deleted: bump the counter; crossing the threshold triggers once.

    Both updates run in the caller's transaction (the annotation's), so the count is exact under
    concurrent writers; the trigger is published only after that transaction commits.
    """
    if project_id is None:
        return False
    with transaction.atomic():
        counted = RetrainingPolicy.objects.filter(project_id=project_id, enabled=True).update(
            changes_since_run=F('changes_since_run') + 1
        )
        if not counted:
            return False
        crossed = RetrainingPolicy.objects.filter(
            project_id=project_id, enabled=True, pending=False, changes_since_run__gte=F('threshold')
        ).update(pending=True, pending_since=timezone.now())
        if crossed:
            enqueue_on_commit('start_run', project_id, 'threshold')
    return bool(crossed)


def trigger_now(project_id, trigger='manual'):
    """ "Retrain now": a pending trigger (at most one follow-up if a run is going), published after commit."""
    with transaction.atomic():
        policy, _ = RetrainingPolicy.objects.get_or_create(project_id=project_id)
        RetrainingPolicy.objects.filter(pk=policy.pk, pending=False).update(pending=True, pending_since=timezone.now())
        enqueue_on_commit('start_run', project_id, trigger)
    return RetrainingPolicy.objects.get(pk=policy.pk)


def disable_builtin_training(project_id):
    """Label Studio's own receiver would call ``train()`` inside the annotation request: keep it off."""
    from projects.models import Project

    Project.objects.filter(pk=project_id).exclude(min_annotations_to_start_training=0).update(
        min_annotations_to_start_training=0
    )


# --- one run -------------------------------------------------------------------------------------


def backend_for(policy):
    if policy.ml_backend_id:
        return policy.ml_backend
    from ml.models import MLBackend

    return MLBackend.objects.filter(project_id=policy.project_id).order_by('id').first()


def start_run(project_id, trigger='threshold'):
    """Claim the project (one run at a time) for a pending trigger and ask the backend to train.

    No pending trigger, or a run already going: nothing happens (the trigger stays pending and the
    running one starts it when it ends: exactly one follow-up).
    """
    from tasks.models import Annotation

    policy = RetrainingPolicy.objects.filter(project_id=project_id).select_related('ml_backend').first()
    if policy is None or not policy.pending or policy.running:
        return None
    now = timezone.now()
    if policy.min_interval_seconds and policy.last_run_at:
        wait = (policy.last_run_at + timedelta(seconds=policy.min_interval_seconds) - now).total_seconds()
        if wait > 0:
            enqueue('start_run', project_id, trigger, countdown=wait)
            return None
    with transaction.atomic():
        claimed = RetrainingPolicy.objects.filter(pk=policy.pk, running=False, pending=True).update(
            running=True, pending=False, pending_since=None, changes_since_run=0, last_run_at=now
        )
        if not claimed:
            return None
        backend = backend_for(policy)
        run = TrainingRun.objects.create(
            project_id=project_id,
            ml_backend=backend,
            trigger=trigger,
            status=TrainingRun.TRAINING,
            started_at=now,
            annotations_used=Annotation.objects.filter(project_id=project_id, was_cancelled=False).count(),
        )
    if backend is None:
        return fail(run, 'no ML backend is connected to the project')
    try:
        from ml.models import MLBackendState, MLBackendTrainJob

        run.version_before = backend.update_state() or backend.model_version or ''
        if backend.state != MLBackendState.CONNECTED:
            return fail(run, f'ML backend not ready: {backend.error_message or backend.state}')
        last_job = MLBackendTrainJob.objects.filter(ml_backend=backend).order_by('-id').values_list('id', flat=True)
        last_job_id = last_job.first() or 0
        backend.train()  # Label Studio's own call: START_TRAINING (or /train), answers at once
        if backend.state == MLBackendState.ERROR:
            return fail(run, f'training request failed: {backend.error_message}')
        job = MLBackendTrainJob.objects.filter(ml_backend=backend, id__gt=last_job_id).order_by('-id').first()
        run.job_id = job.job_id if job else ''
        run.save(update_fields=['version_before', 'job_id'])
    except Exception as exc:  # noqa: BLE001 - recorded on the run
        logger.exception('training run %s could not start', run.id)
        return fail(run, f'{exc.__class__.__name__}: {exc}')
    enqueue('poll_training', run.id, countdown=poll_seconds())
    return run


def training_state(backend, run):
    """('running' | 'succeeded' | 'failed', version, metrics, message) from the backend.

    Our model server answers ``GET /training`` with the job by id; any other backend is read from
    ``GET /versions``: a version other than the one before means the training succeeded.
    """
    if run.job_id:
        answer = backend.api._request('training', method='GET', verbose=False, timeout=10)
        if not answer.is_error and isinstance(answer.response, dict) and 'history' in answer.response:
            status = answer.response
            for job in status['history']:
                if job and job.get('id') == run.job_id:
                    state = 'succeeded' if job.get('status') == 'succeeded' else 'failed'
                    return state, job.get('version') or '', job.get('metrics') or {}, job.get('message') or ''
            return 'running', '', (status.get('running') or {}).get('progress') or {}, ''
    answer = backend.get_versions()
    if answer.is_error:
        return 'running', '', {}, answer.error_message or ''
    current = answer.response.get('current') or (answer.response.get('versions') or [''])[-1]
    if current and current != run.version_before:
        return 'succeeded', current, {}, ''
    return 'running', '', {}, ''


def poll_training(run_id):
    """One look at the backend's training; re-enqueued with a countdown until it ends or times out."""
    from tasks.models import Task

    run = TrainingRun.objects.filter(pk=run_id, status=TrainingRun.TRAINING).select_related('ml_backend').first()
    if run is None:
        return None
    policy = RetrainingPolicy.objects.get(project_id=run.project_id)
    if run.ml_backend is None:
        return fail(run, 'the ML backend was removed during training')
    try:
        state, version, metrics, message = training_state(run.ml_backend, run)
    except Exception as exc:  # noqa: BLE001
        state, version, metrics, message = 'running', '', {}, f'{exc.__class__.__name__}: {exc}'
    if state == 'running':
        if timezone.now() - run.started_at > timedelta(seconds=policy.training_timeout_seconds):
            return fail(run, f'training did not finish in {policy.training_timeout_seconds} s {message}'.strip())
        if metrics:
            TrainingRun.objects.filter(pk=run.pk).update(metrics={**run.metrics, 'progress': metrics})
        enqueue('poll_training', run.id, countdown=poll_seconds())
        return run
    run.metrics = metrics
    if state == 'failed':
        return fail(run, f'training failed on the backend: {message}')
    if not version or version == run.version_before:
        return fail(run, f'training ended without a new model version ({message or "no change"})')
    run.version_after = version
    if not policy.repredict:
        return complete(run)
    run.status = TrainingRun.PREDICTING
    run.tasks_to_predict = Task.objects.filter(project_id=run.project_id, is_labeled=False).count()
    run.save(update_fields=['metrics', 'version_after', 'status', 'tasks_to_predict'])
    enqueue('repredict_batch', run.id)
    return run


def repredict_batch(run_id):
    """Predict the next batch of unlabeled tasks with the new version (Label Studio's ``predict_tasks``)."""
    from tasks.models import Prediction, Task

    run = TrainingRun.objects.filter(pk=run_id, status=TrainingRun.PREDICTING).select_related('ml_backend').first()
    if run is None:
        return None
    policy = RetrainingPolicy.objects.get(project_id=run.project_id)
    ids = list(
        Task.objects.filter(project_id=run.project_id, is_labeled=False, id__gt=run.last_task_id)
        .order_by('id')
        .values_list('id', flat=True)[: max(policy.batch_size, 1)]
    )
    if not ids:
        return complete(run)
    backend = run.ml_backend
    if backend is None:
        return fail(run, 'the ML backend was removed during re-prediction')
    try:
        backend.predict_tasks(Task.objects.filter(id__in=ids))
    except Exception as exc:  # noqa: BLE001
        logger.exception('re-prediction of run %s failed', run.id)
        return fail(run, f're-prediction failed: {exc.__class__.__name__}: {exc}')
    if backend.model_version and backend.model_version != run.version_after:
        return fail(run, f'the backend now serves {backend.model_version}, not {run.version_after}')
    done = (
        Prediction.objects.filter(task_id__in=ids, model_version=run.version_after).values('task_id').distinct().count()
    )
    missing = len(ids) - done
    metrics = {**run.metrics, 'tasks_without_prediction': run.metrics.get('tasks_without_prediction', 0) + missing}
    TrainingRun.objects.filter(pk=run.pk).update(
        tasks_predicted=F('tasks_predicted') + done, last_task_id=ids[-1], metrics=metrics
    )
    enqueue('repredict_batch', run.id)
    return run


def complete(run):
    """The run succeeded: switch the project to the new version, release the project."""
    from projects.models import Project

    with transaction.atomic():
        run.refresh_from_db(fields=['tasks_predicted', 'metrics'])
        if run.tasks_to_predict and not run.tasks_predicted:
            return fail(run, f'no task got a prediction of {run.version_after}')
        Project.objects.filter(pk=run.project_id).update(model_version=run.version_after)
        run.status = TrainingRun.SUCCEEDED
        run.finished_at = timezone.now()
        run.save(update_fields=['status', 'finished_at', 'version_after', 'metrics'])
        release(run.project_id)
    refresh_scores(run.project_id)
    return run


def fail(run, error):
    """Record the failure; the project's model version stays as it was."""
    logger.warning('training run %s of project %s failed: %s', run.id, run.project_id, error)
    with transaction.atomic():
        run.status = TrainingRun.FAILED
        run.error = error
        run.finished_at = timezone.now()
        run.save(update_fields=['status', 'error', 'finished_at', 'metrics', 'version_before', 'job_id'])
        release(run.project_id)
    return run


def release(project_id):
    """End the project's claim; a trigger that came during the run starts its one follow-up."""
    RetrainingPolicy.objects.filter(project_id=project_id).update(running=False)
    if RetrainingPolicy.objects.filter(project_id=project_id, pending=True).exists():
        enqueue_on_commit('start_run', project_id, 'follow-up')


def refresh_scores(project_id):
    """Ask the scoring app (if installed) to bring the stored uncertainty up to the new version."""
    try:
        from ls_extensions.scoring.services import reconcile
    except ImportError:
        return
    try:
        reconcile(project_id, 'retrained')
    except Exception:  # noqa: BLE001 - scores are refreshed again by scoring's own hooks
        logger.exception('refreshing scores of project %s failed', project_id)


# --- recovery ------------------------------------------------------------------------------------


def sweep(stale_after=None):
    """Publish every pending trigger that has no run going; fail runs whose worker vanished.

    Runs periodically (beat) and when a worker starts: a trigger whose publish failed (broker
    down) is picked up here.
    """
    now = timezone.now()
    for policy in RetrainingPolicy.objects.filter(running=True):
        run = TrainingRun.objects.filter(project_id=policy.project_id).order_by('-id').first()
        limit = stale_after if stale_after is not None else policy.training_timeout_seconds + 600
        if run is None or run.status in TrainingRun.FINISHED:
            release(policy.project_id)
        elif run.started_at and (now - run.started_at).total_seconds() > limit:
            fail(run, 'abandoned: no progress (worker lost?)')
    published = 0
    for project_id in RetrainingPolicy.objects.filter(pending=True, running=False).values_list('project_id', flat=True):
        published += enqueue('start_run', project_id, 'sweep')
    return published
