"""One run, as a chain of short steps taking the run's id (the Celery tasks in ``tasks.py`` call these).

start_run -> begin_training -> poll_training (re-enqueued with a countdown) -> repredict_batch (one per
batch) -> complete (or fail). Each step first checks the run's status and moves it on with a conditional
UPDATE (``transitions.transition``), so a step that is delivered twice (acks_late redelivery, or ``sweep``
re-publishing a step it thought lost) does nothing the second time. ``heartbeat_at`` is stamped by every
step; ``sweep`` (``recovery.py``) re-publishes a step not taken for ``stale_seconds()``. Every step ends by
enqueueing the next one; a new model version is announced with ``events.model_version_changed``.
"""

import logging
from datetime import timedelta

from django.db import transaction
from django.db.models import F, Value
from django.db.models.functions import Coalesce, NullIf
from django.utils import timezone

from ls_extensions.ml_backend.background_predictions import is_video_project
from ls_extensions.retraining import events, queueing
from ls_extensions.retraining.backend_calls import backend_job_since, train_job_since, training_state
from ls_extensions.retraining.models import RetrainingPolicy, TrainingRun
from ls_extensions.retraining.timing import (
    BACKEND_CALL_SECONDS,
    POLL_CALL_SECONDS,
    max_retries,
    poll_seconds,
    retry_seconds,
    seconds_since,
    stale_seconds,
)
from ls_extensions.retraining.transitions import UNFINISHED, transition
from ls_extensions.retraining.triggers import ACTIVE, seconds_until_due

logger = logging.getLogger(__name__)


def backend_for(policy):
    if policy.ml_backend_id:
        return policy.ml_backend
    from ml.models import MLBackend

    return MLBackend.objects.filter(project_id=policy.project_id).order_by('id').first()


def beat(run_id, ahead=0.0, **fields):
    """Stamp the run's heartbeat (and any fields) in one UPDATE.

    ``ahead``: the step is expected to be quiet that long (a countdown, a slow backend call): the stamp
    is moved into the future so that ``sweep`` does not take it for lost meanwhile.
    """
    stamp = timezone.now() + timedelta(seconds=ahead)
    return TrainingRun.objects.filter(pk=run_id).update(heartbeat_at=stamp, **fields)


def start_run(project_id, trigger='threshold'):
    """Claim the project (one run at a time) for a pending trigger, record a run and start its training.

    No pending trigger, or a run already going: nothing happens (the trigger stays pending and the
    running one starts it when it ends: exactly one follow-up). Not due yet (minimum interval, back-off):
    published again for when it is due (``sweep`` catches it too).
    """

    policy = RetrainingPolicy.objects.filter(project_id=project_id).select_related('ml_backend').first()
    if policy is None or not policy.pending or policy.running or not policy.enabled or policy.stopped_reason:
        return None
    now = timezone.now()
    wait = seconds_until_due(policy, now)
    if wait > 0:
        if wait <= 300:  # longer waits are left to the periodic sweep (no long-held ETA messages)
            queueing.enqueue('start_run', project_id, trigger, countdown=wait)
        return None
    facts = run_facts(policy)  # before the claim: nothing slow while the policy row is locked
    with transaction.atomic():
        # the changes this run consumes are subtracted, not zeroed: a submit counted meanwhile stays counted
        changes = policy.changes_since_run
        # the claim re-checks what was read: a policy switched off (or stopped) meanwhile starts nothing
        claimed = RetrainingPolicy.objects.filter(
            pk=policy.pk, **ACTIVE, running=False, pending=True, changes_since_run__gte=changes
        ).update(
            running=True,
            pending=False,
            pending_since=None,
            pending_reason='',
            changes_since_run=F('changes_since_run') - changes,
            last_run_at=now,
        )
        if not claimed:
            return None
        # submits counted between the read and the claim may have crossed the threshold again: keep that trigger
        RetrainingPolicy.objects.filter(pk=policy.pk, pending=False, changes_since_run__gte=F('threshold')).update(
            pending=True, pending_since=now, pending_reason='threshold'
        )
        # its cause is why the trigger became pending, not which message claimed it
        run = record_run(policy, policy.pending_reason or trigger, now, changes=changes, **facts)
    return begin_training(run.id)


def run_facts(policy):
    """The backend and the annotation count a run records, read before its claim.

    Counting a large project's annotations takes a while; inside the claim's transaction it would hold
    the policy row locked, and every annotation submit (its F() update of the counter) would wait.
    """
    from tasks.models import Annotation

    count = Annotation.objects.filter(project_id=policy.project_id, was_cancelled=False).count()
    return {'ml_backend': backend_for(policy), 'annotations_used': count}


def record_run(policy, trigger, now, **fields):
    """The ``queued`` run of a project just claimed (inside the claim's transaction: one INSERT)."""
    return TrainingRun.objects.create(
        project_id=policy.project_id,
        trigger=trigger,
        status=TrainingRun.QUEUED,
        started_at=now,
        heartbeat_at=now,
        **fields,
    )


def predict_served_version(project_id, trigger='predictions of the served version'):
    """Pre-annotate every unlabeled task with the version the backend serves now, then switch the project to it.

    Run when a policy is switched on while the project still follows the backend live (its
    ``model_version`` is the backend's title): Label Studio would otherwise ask the backend for a
    prediction inside each annotator's next-task request. A run like the others (claimed, recorded,
    recovered), without the training step.
    """

    policy = (
        RetrainingPolicy.objects.filter(project_id=project_id, **ACTIVE).select_related('ml_backend', 'project').first()
    )
    if policy is None or not follows_backend_live(policy.project):
        return None
    facts = run_facts(policy)
    now = timezone.now()
    with transaction.atomic():
        claimed = RetrainingPolicy.objects.filter(pk=policy.pk, **ACTIVE, running=False)
        if not claimed.update(running=True, last_run_at=now):
            return None  # a run is going (it switches the project to a stored version anyway), or switched off
        run = record_run(policy, trigger, now, metrics={'predict_only': True}, **facts)
    return begin_training(run.id)


def follows_backend_live(project):
    """True when Label Studio would predict inside requests: the project's version is a backend's title (or unset)."""
    from ml.models import MLBackend

    titles = set(MLBackend.objects.filter(project_id=project.id).values_list('title', flat=True))
    return bool(titles) and (not project.model_version or project.model_version in titles)


def begin_training(run_id):
    """Ask the backend to train (Label Studio's own ``MLBackend.train``: START_TRAINING), then poll.

    The step is claimed before any call (``claim_step``): of two deliveries at once, one asks the
    backend. A backend that cannot be reached is retried with back-off (the run goes back to ``queued``);
    one that answers with an error fails the run. A delivery lost while it held the claim (its worker
    killed) is taken over once the claim's heartbeat goes stale: the training job Label Studio recorded
    since the claim is adopted, else the job our model server lists as created since the claim (the
    worker died between the backend's answer and Label Studio recording it), else the backend is asked.
    Only a backend that lists no jobs (not ours) can then train twice.
    """
    from ml.models import MLBackendState

    run = claim_step(run_id)
    if run is None:
        return None
    backend = run.ml_backend
    if backend is None:
        return fail(run, 'no ML backend is connected to the project')
    predict_only = run.metrics.get('predict_only')
    if run.taken_over and not predict_only:
        job = train_job_since(backend, run.requested_at)
        job_id = job.job_id if job is not None else backend_job_since(backend, run)
        if job_id:  # the lost delivery's request reached the backend: no second training
            return training_started(run, job_id)
    try:
        version = backend.update_state()
        if backend.state == MLBackendState.DISCONNECTED:
            return retry(unclaim(run), 'begin_training', f'ML backend unreachable at {backend.url}')
        if backend.state != MLBackendState.CONNECTED:
            return fail(run, f'ML backend not ready: {backend.error_message or backend.state}')
        run.version_before = version or backend.model_version or ''
        if predict_only:
            return begin_predicting(run, run.version_before)
        TrainingRun.objects.filter(pk=run.pk).update(version_before=run.version_before)
        backend.train()
        if backend.state == MLBackendState.ERROR:
            if backend.healthcheck().is_error:
                return retry(unclaim(run), 'begin_training', f'ML backend went away: {backend.error_message}')
            return fail(run, f'training request failed: {backend.error_message}')
        job = train_job_since(backend, run.requested_at)
    except Exception as exc:  # noqa: BLE001 - recorded on the run
        logger.exception('training run %s could not start', run.id)
        return fail(run, f'{exc.__class__.__name__}: {exc}')
    return training_started(run, job.job_id if job else '')


def claim_step(run_id):
    """The run, claimed by this delivery (``queued`` -> ``requesting`` in one conditional UPDATE), or None.

    The claim stamps the heartbeat ahead of the slow calls to come: while it is ahead, the step is held
    and another delivery does nothing. A ``requesting`` run whose heartbeat is no longer ahead was left
    by a lost delivery (``sweep`` published the step again): this delivery takes it over
    (``run.taken_over``). Compare-and-swap on status and heartbeat: one of two deliveries wins.
    """
    now = timezone.now()
    statuses = (TrainingRun.QUEUED, TrainingRun.REQUESTING)
    run = TrainingRun.objects.filter(pk=run_id, status__in=statuses).select_related('ml_backend').first()
    if run is None:
        return None
    if run.status == TrainingRun.REQUESTING and run.heartbeat_at and run.heartbeat_at > now:
        return None  # another delivery is asking the backend now
    run.taken_over = run.status == TrainingRun.REQUESTING
    run.requested_at = run.requested_at if run.taken_over and run.requested_at else now
    claimed = transition(
        run.pk,
        run.status,
        TrainingRun.REQUESTING,
        where={'heartbeat_at': run.heartbeat_at},
        requested_at=run.requested_at,
        heartbeat_at=now + timedelta(seconds=BACKEND_CALL_SECONDS),  # /setup and /train may take long
    )
    if not claimed:
        return None
    run.status = TrainingRun.REQUESTING
    return run


def unclaim(run):
    """Back to ``queued`` (nothing was asked of the backend): the retried delivery claims it again."""
    transition(run.pk, TrainingRun.REQUESTING, TrainingRun.QUEUED)
    return run


def training_started(run, job_id):
    """``requesting`` -> ``training``; the first poll after ``poll_seconds()``."""
    moved = transition(
        run.pk,
        TrainingRun.REQUESTING,
        TrainingRun.TRAINING,
        job_id=job_id,
        heartbeat_at=timezone.now() + timedelta(seconds=poll_seconds()),
    )
    if moved:
        queueing.enqueue('poll_training', run.id, countdown=poll_seconds())
    return run


def begin_predicting(run, version):
    """Straight to re-prediction with the served ``version`` (a predict-only run)."""
    if not version:
        return fail(run, 'the ML backend reports no model version')
    run.version_after = version
    return start_predicting(run, TrainingRun.REQUESTING, version_before=run.version_before, version_after=version)


def start_predicting(run, from_status, **fields):
    """``from_status`` -> ``predicting`` (with ``fields``): count the tasks to predict, publish the first batch."""
    moved = transition(
        run.pk,
        from_status,
        TrainingRun.PREDICTING,
        **fields,
        tasks_to_predict=tasks_to_predict(run).count(),
        heartbeat_at=timezone.now(),
    )
    if moved:
        queueing.enqueue('repredict_batch', run.id)
    return run


def retry(run, step, reason):
    """A connection error: publish ``step`` again after a back-off; past ``max_retries()`` the run fails."""
    TrainingRun.objects.filter(pk=run.pk).update(retries=F('retries') + 1)
    run.refresh_from_db(fields=['retries'])
    if run.retries > max_retries():
        return fail(run, f'{reason} (gave up after {run.retries - 1} retries)', transient=True)
    wait = retry_seconds(run.retries)
    logger.warning('training run %s: %s; retry %s in %.0f s', run.id, reason, run.retries, wait)
    beat(run.pk, ahead=wait, error=f'retrying: {reason}')
    queueing.enqueue(step, run.id, countdown=wait)
    return run


def poll_training(run_id):
    """One look at the backend's training; re-enqueued with a countdown until it ends or times out."""
    run = TrainingRun.objects.filter(pk=run_id, status=TrainingRun.TRAINING).select_related('ml_backend').first()
    if run is None:
        return None
    beat(run.id, ahead=POLL_CALL_SECONDS)
    policy = RetrainingPolicy.objects.get(project_id=run.project_id)
    if run.ml_backend is None:
        return fail(run, 'the ML backend was removed during training')
    try:
        state, version, metrics, message = training_state(run.ml_backend, run)
    except Exception as exc:  # noqa: BLE001
        state, version, metrics, message = 'unreachable', '', {}, f'{exc.__class__.__name__}: {exc}'
    if state in ('running', 'unreachable'):
        if timezone.now() - run.started_at > timedelta(seconds=policy.training_timeout_seconds):
            reason = f'training did not finish in {policy.training_timeout_seconds} s {message}'.strip()
            return fail(run, reason, transient=state == 'unreachable')
        countdown, fields = poll_seconds(), {}
        streak = run.metrics.get('unreachable_polls', 0)
        if state == 'unreachable':  # the backend may be restarting: back off (short of "lost"), keep the run
            streak += 1
            countdown = min(retry_seconds(streak), stale_seconds() / 2)
            fields['error'] = f'retrying: ML backend unreachable: {message}'
        elif streak:
            streak, fields['error'] = 0, ''
        progress = {'progress': metrics} if metrics else {}
        fields['metrics'] = {**run.metrics, **progress, 'unreachable_polls': streak}
        beat(run.pk, ahead=countdown, **fields)
        queueing.enqueue('poll_training', run.id, countdown=countdown)
        return run
    run.metrics = {**run.metrics, **metrics, 'training_seconds': seconds_since(run.started_at)}
    if message:  # the model server's own note on the job (e.g. why no mAP was measured), shown with the run
        run.metrics['backend_message'] = message[:500]
    if state == 'lost':
        return fail(run, message, transient=True)
    if state == 'rejected':
        return reject(run, message)
    if state == 'failed':  # often an outage behind the backend (it reads annotations from us): retried
        return fail(run, f'training failed on the backend: {message}', transient=True)
    if not version or version == run.version_before:
        return fail(run, f'training ended without a new model version ({message or "no change"})')
    run.version_after = version
    if not policy.repredict:
        TrainingRun.objects.filter(pk=run.pk).update(version_after=version, metrics=run.metrics)
        return complete(run, from_status=TrainingRun.TRAINING)
    return start_predicting(run, TrainingRun.TRAINING, metrics=run.metrics, version_after=version, error='')


def tasks_to_predict(run):
    """Unlabeled tasks of the run's project (all tasks when the policy predicts labeled ones too) without a
    prediction of the new version, in id order."""
    from tasks.models import Task

    tasks = Task.objects.filter(project_id=run.project_id)
    if not RetrainingPolicy.objects.filter(project_id=run.project_id, predict_labeled=True).exists():
        tasks = tasks.filter(is_labeled=False)
    return tasks.exclude(predictions__model_version=run.version_after).order_by('id')


def batch_size(policy):
    """Tasks per backend call: the policy's, but one video at a time (each its own /predict, within Label
    Studio's timeout for one call, with progress per video on the run page)."""
    return 1 if is_video_project(policy.project) else policy.batch_size


def repredict_batch(run_id):
    """Predict the next batch of unlabeled tasks with the new version (Label Studio's ``predict_tasks``).

    The batch is claimed first (``last_task_id`` moves on with a conditional UPDATE), so a duplicate
    step never predicts the same tasks twice. Tasks the backend skipped get one more pass at the end.
    """
    from tasks.models import Prediction, Task

    run = TrainingRun.objects.filter(pk=run_id, status=TrainingRun.PREDICTING).select_related('ml_backend').first()
    if run is None:
        return None
    beat(run.id, ahead=BACKEND_CALL_SECONDS)
    policy = RetrainingPolicy.objects.select_related('project').get(project_id=run.project_id)
    batch = batch_size(policy)
    ids = list(tasks_to_predict(run).filter(id__gt=run.last_task_id).values_list('id', flat=True)[:batch])
    if not ids:
        rescans = run.metrics.get('rescans', 0)
        if rescans < 1 and tasks_to_predict(run).exists():  # a batch lost to an error: once more
            TrainingRun.objects.filter(pk=run.pk, last_task_id=run.last_task_id).update(
                last_task_id=0, metrics={**run.metrics, 'rescans': rescans + 1}
            )
            queueing.enqueue('repredict_batch', run.id)
            return run
        return complete(run, from_status=TrainingRun.PREDICTING)
    if not TrainingRun.objects.filter(pk=run.pk, last_task_id=run.last_task_id).update(last_task_id=ids[-1]):
        return None  # another delivery of this step claimed the batch
    backend = run.ml_backend
    if backend is None:
        return fail(run, 'the ML backend was removed during re-prediction')
    step_started = timezone.now()
    try:
        backend.predict_tasks(Task.objects.filter(id__in=ids))
    except Exception as exc:  # noqa: BLE001
        logger.exception('re-prediction of run %s failed', run.id)
        return fail(run, f're-prediction failed: {exc.__class__.__name__}: {exc}')
    if backend.not_ready:  # predict_tasks checks the backend first and predicts nothing if it is down
        TrainingRun.objects.filter(pk=run.pk, last_task_id=ids[-1]).update(last_task_id=run.last_task_id)
        return retry(run, 'repredict_batch', f'ML backend unreachable during re-prediction: {backend.error_message}')
    done = Prediction.objects.filter(task_id__in=ids, model_version=run.version_after).values('task_id').distinct()
    if not done.exists():  # what the backend predicted instead tells whether it serves another version now
        other = Prediction.objects.filter(task_id__in=ids, created_at__gte=step_started)
        other = other.exclude(model_version=run.version_after).values_list('model_version', flat=True).first()
        if other:
            return fail(run, f'the backend now serves {other}, not {run.version_after}', transient=True)
    TrainingRun.objects.filter(pk=run.pk).update(tasks_predicted=F('tasks_predicted') + done.count(), error='')
    queueing.enqueue('repredict_batch', run.id)
    return run


def complete(run, from_status):
    """The run succeeded: switch the project to the new version, release the project."""
    from projects.models import Project

    run.refresh_from_db(fields=['tasks_predicted', 'tasks_to_predict', 'metrics', 'version_after'])
    if run.tasks_to_predict and not run.tasks_predicted:
        return fail(run, f'no task got a prediction of {run.version_after}')
    missing = tasks_to_predict(run).count() if run.tasks_to_predict else 0
    metrics = {**run.metrics, 'run_seconds': seconds_since(run.started_at)}
    if missing:
        metrics['tasks_without_prediction'] = missing
    with transaction.atomic():  # writes first: on SQLite a transaction that reads before writing can fail
        finished = transition(
            run.pk,
            from_status,
            TrainingRun.SUCCEEDED,
            finished_at=timezone.now(),
            heartbeat_at=timezone.now(),
            metrics=metrics,
        )
        if not finished:
            return None
        Project.objects.filter(pk=run.project_id).update(model_version=run.version_after)
        RetrainingPolicy.objects.filter(project_id=run.project_id).update(failed_attempts=0)
        release(run.project_id)
    refresh_scores(run.project_id, run.version_after)
    run.refresh_from_db()
    return run


def reject(run, reason):
    """The backend trained a version and its gate did not serve it (worse on the held-out tasks than the
    served one): the project keeps its version and predictions, the run records both mAPs and why. Not a
    failure: the budget is not charged (training works), and the trigger is not re-armed (the next
    annotations will trigger the next try)."""
    with transaction.atomic():
        finished = transition(
            run.pk,
            TrainingRun.TRAINING,
            TrainingRun.REJECTED,
            error=reason,
            finished_at=timezone.now(),
            heartbeat_at=timezone.now(),
            metrics={**{k: v for k, v in run.metrics.items() if k != 'backend_message'}, 'rejected': True},
        )
        if not finished:
            return None
        RetrainingPolicy.objects.filter(project_id=run.project_id).update(failed_attempts=0)
        release(run.project_id)
    run.refresh_from_db()
    return run


def fail(run, error, transient=False):
    """Record the failure; the project's model version stays as it was.

    Every failed run, of any cause, counts against the policy's budget (``failed_attempts``; a success
    or the user resets it). A transient failure (backend unreachable, restarted and lost the job,
    training failed on the backend) sets the trigger pending again, so the project converges once the
    backend is back; a failed predict-only run is published again by ``sweep``; both after a back-off
    counted from this failure. The failure after ``max_retries()`` retries stops the policy: its
    ``stopped_reason`` is shown on the page and in the API, and nothing starts by itself until the user
    saves the policy or presses "Retrain now".
    """
    logger.warning('training run %s of project %s failed: %s', run.id, run.project_id, error)
    now = timezone.now()
    with transaction.atomic():
        finished = transition(
            run.pk,
            UNFINISHED,
            TrainingRun.FAILED,
            error=error,
            finished_at=timezone.now(),
            heartbeat_at=timezone.now(),
            metrics=run.metrics,
        )
        if not finished:
            return None
        policy = RetrainingPolicy.objects.get(project_id=run.project_id)
        attempts = policy.failed_attempts + 1
        after = {'failed_attempts': F('failed_attempts') + 1, 'last_run_at': now}
        if attempts > max_retries():
            logger.warning('retraining of project %s stopped after %s failed attempts', run.project_id, attempts)
            after.update(
                stopped_reason=f'stopped after {attempts} failed attempts: {error}',
                stopped_at=now,
                pending=False,
                pending_since=None,
                pending_reason='',
            )
        elif transient and policy.enabled and not run.metrics.get('predict_only'):
            after.update(
                pending=True,
                pending_since=Coalesce(F('pending_since'), Value(now)),
                pending_reason=Coalesce(NullIf(F('pending_reason'), Value('')), Value('retry after a failed run')),
            )
        RetrainingPolicy.objects.filter(pk=policy.pk).update(**after)
        release(run.project_id)
    run.refresh_from_db()
    return run


def release(project_id):
    """End the project's claim; a trigger that came during the run starts its one follow-up."""
    RetrainingPolicy.objects.filter(project_id=project_id).update(running=False)
    publish_follow_up(project_id)


def publish_follow_up(project_id):
    """A pending trigger of a released project: published now, or for when it is due (up to 5 min)."""
    policy = RetrainingPolicy.objects.filter(project_id=project_id, **ACTIVE, pending=True).first()
    if policy is not None:
        wait = seconds_until_due(policy)
        queueing.enqueue_on_commit('start_run', project_id, 'follow-up', countdown=wait if 0 < wait <= 300 else None)


def refresh_scores(project_id, version):
    """Tell the apps that keep something per model version (scoring: the stored uncertainty) that it changed."""
    sent = events.model_version_changed.send_robust(sender=TrainingRun, project_id=project_id, version=version)
    for receiver, error in sent:
        if isinstance(error, Exception):  # scores are refreshed again by scoring's own hooks
            logger.error('refreshing scores of project %s failed (%s)', project_id, receiver, exc_info=error)
