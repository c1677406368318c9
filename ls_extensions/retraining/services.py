"""The retraining work, as plain functions of ids: counting, triggering, one run, re-predicting.

Celery tasks (``tasks.py``) are thin wrappers; tests call these functions directly. Every step is
idempotent (a redelivered message finds the run already past its step and does nothing), and
every step ends by enqueueing the next one after its transaction commits.
"""

import logging
from datetime import UTC, timedelta

from django.conf import settings
from django.db import DatabaseError, transaction
from django.db.models import F, Value
from django.db.models.functions import Coalesce, NullIf
from django.utils import timezone

from ls_extensions import publishing
from ls_extensions.retraining.models import RetrainingPolicy, TrainingRun

logger = logging.getLogger(__name__)


def poll_seconds():
    return float(getattr(settings, 'LS_EXT_RETRAINING_POLL_SECONDS', 5))


def stale_seconds():
    """A step not taken for this long was lost (worker killed, message dropped): ``sweep`` publishes it again."""
    return float(getattr(settings, 'LS_EXT_RETRAINING_STALE_SECONDS', 300))


def retry_seconds(attempt):
    """Back-off before retry ``attempt`` (1, 2, ...) after a connection error: base * 2^(attempt-1), at most 10 min."""
    base = float(getattr(settings, 'LS_EXT_RETRAINING_RETRY_SECONDS', 5))
    return min(base * 2 ** max(attempt - 1, 0), 600.0)


def max_retries():
    """Connection errors retried within one run, and failed runs retried in a row before the policy stops."""
    return int(getattr(settings, 'LS_EXT_RETRAINING_MAX_RETRIES', 4))


ACTIVE = {'enabled': True, 'stopped_reason': ''}  # a policy that may start runs by itself


# --- enqueueing: never fails the caller ---------------------------------------------------------


def enqueue(task_name, *args, countdown=None):
    """Publish the retraining task ``task_name`` now; a broker that is down is logged and reported, never raised.

    A trigger whose publish fails stays ``pending`` in the database; ``sweep`` (periodic, and at
    worker start) publishes it again. A name that is not a task raises AttributeError here.
    """
    from ls_extensions.retraining import tasks

    return publishing.publish(getattr(tasks, task_name), *args, countdown=countdown)


def enqueue_on_commit(task_name, *args, countdown=None):
    transaction.on_commit(lambda: enqueue(task_name, *args, countdown=countdown))


def enqueue_in_background(task_name, *args):
    """Publish from the publisher thread: an annotation request never waits on the broker, even an unreachable one.

    If the process dies before the publish (or the broker is down), what was to be published is still
    recorded in the database (a ``pending`` trigger, a project that still follows its backend live), and
    ``sweep`` publishes it.
    """
    publishing.in_background(enqueue, task_name, *args)


# --- counting (the annotation receivers) ---------------------------------------------------------


def count_change(project_id):
    """One annotation saved or deleted: bump the counter; crossing the threshold triggers once.

    Both updates run in one transaction (inside the caller's when there is one: Label Studio's own
    annotation create is not atomic, so there the annotation row is committed just before), with F()
    increments, so the count is exact under concurrent writers; the trigger is published only after
    commit. A database error here is logged, never raised: the annotation is stored, and failing its
    request would make the annotator submit it twice.
    """
    if project_id is None:
        return False
    try:
        return _count_change(project_id)
    except DatabaseError:
        logger.exception('annotation change of project %s not counted', project_id)
        return False


def _count_change(project_id):
    with transaction.atomic():
        counted = RetrainingPolicy.objects.filter(project_id=project_id, enabled=True).update(
            changes_since_run=F('changes_since_run') + 1
        )
        if not counted:
            return False
        crossed = arm_threshold(project_id)
        if crossed:
            transaction.on_commit(lambda: enqueue_in_background('start_run', project_id, 'threshold'))
    return bool(crossed)


def arm_threshold(project_id):
    """Set the trigger pending if the counter has reached the threshold; a stopped policy counts but waits."""
    return RetrainingPolicy.objects.filter(
        project_id=project_id, **ACTIVE, pending=False, changes_since_run__gte=F('threshold')
    ).update(pending=True, pending_since=timezone.now(), pending_reason='threshold')


def trigger_now(project_id, trigger='manual'):
    """ "Retrain now": a pending trigger (at most one follow-up if a run is going), published after commit.

    The user acted: a stopped policy starts again with a fresh failure budget.
    """
    with transaction.atomic():
        policy, _ = RetrainingPolicy.objects.get_or_create(project_id=project_id)
        RetrainingPolicy.objects.filter(pk=policy.pk).update(failed_attempts=0, stopped_reason='', stopped_at=None)
        RetrainingPolicy.objects.filter(pk=policy.pk, pending=False).update(
            pending=True, pending_since=timezone.now(), pending_reason=trigger
        )
        enqueue_on_commit('start_run', project_id, trigger)
    return RetrainingPolicy.objects.get(pk=policy.pk)


def resume(project_id):
    """The user saved a stopped policy: a fresh failure budget, and a counter past the threshold triggers.

    A project that still follows its backend live is pre-annotated again by the policy's save receiver.
    """
    with transaction.atomic():
        resumed = (
            RetrainingPolicy.objects.filter(project_id=project_id)
            .exclude(stopped_reason='')
            .update(failed_attempts=0, stopped_reason='', stopped_at=None)
        )
        if resumed and arm_threshold(project_id):
            enqueue_on_commit('start_run', project_id, 'threshold')
    return bool(resumed)


def disable_builtin_training(project_id):
    """Label Studio's own receiver would call ``train()`` inside the annotation request: keep it off."""
    from projects.models import Project

    Project.objects.filter(pk=project_id).exclude(min_annotations_to_start_training=0).update(
        min_annotations_to_start_training=0
    )


# --- one run -------------------------------------------------------------------------------------
#
# A run is a chain of short steps, each a Celery task taking the run's id: start_run -> begin_training
# -> poll_training (re-enqueued with a countdown) -> repredict_batch (one per batch) -> complete. Each
# step first checks the run's status and moves it on with a conditional UPDATE, so a step that is
# delivered twice (acks_late redelivery, or ``sweep`` re-publishing a step it thought lost) does nothing
# the second time. ``heartbeat_at`` is stamped by every step; ``sweep`` re-publishes a step not taken for
# ``stale_seconds()``.


def backend_for(policy):
    if policy.ml_backend_id:
        return policy.ml_backend
    from ml.models import MLBackend

    return MLBackend.objects.filter(project_id=policy.project_id).order_by('id').first()


def seconds_until_due(policy, now=None):
    """Seconds before the policy may start a run: its minimum interval, or the back-off after failures."""
    if not policy.last_run_at:
        return 0.0
    now = now or timezone.now()
    gap = float(policy.min_interval_seconds)
    if policy.failed_attempts:
        gap = max(gap, retry_seconds(policy.failed_attempts))
    return max((policy.last_run_at + timedelta(seconds=gap) - now).total_seconds(), 0.0)


BACKEND_CALL_SECONDS = 150  # Label Studio's own timeouts for /setup, /train and /predict are up to 100 s
POLL_CALL_SECONDS = 30  # a poll's calls (/training, /versions) time out after 10 s each


def seconds_since(moment):
    return round((timezone.now() - moment).total_seconds(), 2) if moment else None


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
            enqueue('start_run', project_id, trigger, countdown=wait)
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
    claimed = TrainingRun.objects.filter(pk=run.pk, status=run.status, heartbeat_at=run.heartbeat_at).update(
        status=TrainingRun.REQUESTING,
        requested_at=run.requested_at,
        heartbeat_at=now + timedelta(seconds=BACKEND_CALL_SECONDS),  # /setup and /train may take long
    )
    if not claimed:
        return None
    run.status = TrainingRun.REQUESTING
    return run


def unclaim(run):
    """Back to ``queued`` (nothing was asked of the backend): the retried delivery claims it again."""
    TrainingRun.objects.filter(pk=run.pk, status=TrainingRun.REQUESTING).update(status=TrainingRun.QUEUED)
    return run


def train_job_since(backend, moment):
    """The training job Label Studio recorded for ``backend`` since ``moment`` (``MLBackend.train`` does)."""
    from ml.models import MLBackendTrainJob

    return MLBackendTrainJob.objects.filter(ml_backend=backend, created_at__gte=moment).order_by('-id').first()


def backend_job_since(backend, run):
    """The id of the training job our model server lists (``GET /training``) for the run's project, created
    since the run's claim; '' when there is none or the backend does not list its jobs."""
    answer = backend.api._request('training', method='GET', verbose=False, timeout=10)
    if answer.is_error or not isinstance(answer.response, dict):
        return ''
    status = answer.response
    since = run.requested_at.astimezone(UTC).strftime('%Y-%m-%dT%H:%M:%SZ')  # the server's created_at format
    listed = [status.get('running'), status.get('queued'), *(status.get('history') or [])]
    # never an earlier run's job, whatever the two clocks say
    earlier = set(
        TrainingRun.objects.filter(project_id=run.project_id).exclude(pk=run.pk).values_list('job_id', flat=True)
    )
    for job in listed:
        if isinstance(job, dict) and job.get('project') == run.project_id and str(job.get('created_at', '')) >= since:
            if job.get('id') and str(job['id']) not in earlier:
                return str(job['id'])
    return ''


def training_started(run, job_id):
    """``requesting`` -> ``training``; the first poll after ``poll_seconds()``."""
    moved = TrainingRun.objects.filter(pk=run.pk, status=TrainingRun.REQUESTING).update(
        status=TrainingRun.TRAINING,
        job_id=job_id,
        heartbeat_at=timezone.now() + timedelta(seconds=poll_seconds()),
    )
    if moved:
        enqueue('poll_training', run.id, countdown=poll_seconds())
    return run


def begin_predicting(run, version):
    """Straight to re-prediction with the served ``version`` (a predict-only run)."""
    if not version:
        return fail(run, 'the ML backend reports no model version')
    run.version_after = version
    moved = TrainingRun.objects.filter(pk=run.pk, status=TrainingRun.REQUESTING).update(
        status=TrainingRun.PREDICTING,
        version_before=run.version_before,
        version_after=version,
        tasks_to_predict=tasks_to_predict(run).count(),
        heartbeat_at=timezone.now(),
    )
    if moved:
        enqueue('repredict_batch', run.id)
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
    enqueue(step, run.id, countdown=wait)
    return run


def training_state(backend, run):
    """('running' | 'succeeded' | 'failed' | 'lost' | 'unreachable', version, metrics, message) from the backend.

    Our model server answers ``GET /training`` with its jobs: the run's job by id, or ``lost`` when the
    server no longer knows it (it restarted). Any other backend is read from ``GET /versions``: a version
    other than the one before means the training succeeded.
    """
    if run.job_id:
        answer = backend.api._request('training', method='GET', verbose=False, timeout=10)
        if answer.is_error and not answer.status_code:
            return 'unreachable', '', {}, answer.error_message or 'no answer'
        if not answer.is_error and isinstance(answer.response, dict) and 'history' in answer.response:
            status = answer.response
            for job in status['history']:
                if job and job.get('id') == run.job_id:
                    state = 'succeeded' if job.get('status') == 'succeeded' else 'failed'
                    images = {k: job[k] for k in ('train_images', 'eval_images') if isinstance(job.get(k), int)}
                    metrics = {**(job.get('metrics') or {}), **images}
                    return state, job.get('version') or '', metrics, job.get('message') or ''
            for key in ('running', 'queued'):
                if (status.get(key) or {}).get('id') == run.job_id:
                    return 'running', '', (status.get(key) or {}).get('progress') or {}, ''
            return 'lost', '', {}, f'the backend no longer knows training job {run.job_id} (restarted?)'
    answer = backend.get_versions()
    if answer.is_error:
        return ('running' if answer.status_code else 'unreachable'), '', {}, answer.error_message or ''
    current = answer.response.get('current') or (answer.response.get('versions') or [''])[-1]
    if current and current != run.version_before:
        return 'succeeded', current, {}, ''
    return 'running', '', {}, ''


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
        enqueue('poll_training', run.id, countdown=countdown)
        return run
    run.metrics = {**run.metrics, **metrics, 'training_seconds': seconds_since(run.started_at)}
    if message:  # the model server's own note on the job (e.g. why no mAP was measured), shown with the run
        run.metrics['backend_message'] = message[:500]
    if state == 'lost':
        return fail(run, message, transient=True)
    if state == 'failed':  # often an outage behind the backend (it reads annotations from us): retried
        return fail(run, f'training failed on the backend: {message}', transient=True)
    if not version or version == run.version_before:
        return fail(run, f'training ended without a new model version ({message or "no change"})')
    run.version_after = version
    if not policy.repredict:
        TrainingRun.objects.filter(pk=run.pk).update(version_after=version, metrics=run.metrics)
        return complete(run, from_status=TrainingRun.TRAINING)
    moved = TrainingRun.objects.filter(pk=run.pk, status=TrainingRun.TRAINING).update(
        status=TrainingRun.PREDICTING,
        metrics=run.metrics,
        version_after=version,
        error='',
        tasks_to_predict=tasks_to_predict(run).count(),
        heartbeat_at=timezone.now(),
    )
    if moved:
        enqueue('repredict_batch', run.id)
    return run


def tasks_to_predict(run):
    """Unlabeled tasks of the run's project without a prediction of the new version, in id order."""
    from tasks.models import Task

    return (
        Task.objects.filter(project_id=run.project_id, is_labeled=False)
        .exclude(predictions__model_version=run.version_after)
        .order_by('id')
    )


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
    policy = RetrainingPolicy.objects.get(project_id=run.project_id)
    ids = list(tasks_to_predict(run).filter(id__gt=run.last_task_id).values_list('id', flat=True)[: policy.batch_size])
    if not ids:
        rescans = run.metrics.get('rescans', 0)
        if rescans < 1 and tasks_to_predict(run).exists():  # a batch lost to an error: once more
            TrainingRun.objects.filter(pk=run.pk, last_task_id=run.last_task_id).update(
                last_task_id=0, metrics={**run.metrics, 'rescans': rescans + 1}
            )
            enqueue('repredict_batch', run.id)
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
    enqueue('repredict_batch', run.id)
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
        finished = TrainingRun.objects.filter(pk=run.pk, status=from_status).update(
            status=TrainingRun.SUCCEEDED, finished_at=timezone.now(), heartbeat_at=timezone.now(), metrics=metrics
        )
        if not finished:
            return None
        Project.objects.filter(pk=run.project_id).update(model_version=run.version_after)
        RetrainingPolicy.objects.filter(project_id=run.project_id).update(failed_attempts=0)
        release(run.project_id)
    refresh_scores(run.project_id)
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
        finished = (
            TrainingRun.objects.filter(pk=run.pk)
            .exclude(status__in=TrainingRun.FINISHED)
            .update(
                status=TrainingRun.FAILED,
                error=error,
                finished_at=timezone.now(),
                heartbeat_at=timezone.now(),
                metrics=run.metrics,
            )
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
        enqueue_on_commit('start_run', project_id, 'follow-up', countdown=wait if 0 < wait <= 300 else None)


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

MAX_RECOVERIES = 5  # a run whose step was published again this often fails (and is retried as a new run)

STEP_OF_STATUS = {
    TrainingRun.QUEUED: 'begin_training',
    TrainingRun.REQUESTING: 'begin_training',
    TrainingRun.TRAINING: 'poll_training',
    TrainingRun.PREDICTING: 'repredict_batch',
}


def sweep(stale_after=None):
    """Recover what a lost worker or broker left behind; returns the number of messages published.

    Runs periodically (beat) and when a worker starts: re-publishes the step of every run whose
    heartbeat is older than ``stale_seconds()`` (the steps are idempotent), releases projects whose
    run has ended, and publishes every pending trigger that is due and has no run going (a trigger
    whose publish failed while the broker was down is picked up here). A stopped policy is left alone.
    No row lock: the annotation counter's updates never wait on the sweep.
    """
    now = timezone.now()
    stale_after = stale_seconds() if stale_after is None else stale_after
    published = 0
    claims = RetrainingPolicy.objects.filter(running=True).values_list('id', 'project_id', 'last_run_at')
    for policy_id, project_id, claimed_at in claims:
        run = TrainingRun.objects.filter(project_id=project_id).order_by('-id').first()
        if run is None or run.status in TrainingRun.FINISHED:
            # compare-and-swap on the claim's time: a claim committed since the read is not released
            with transaction.atomic():
                released = RetrainingPolicy.objects.filter(pk=policy_id, running=True, last_run_at=claimed_at)
                if released.update(running=False):
                    publish_follow_up(project_id)
            continue
        heartbeat = run.heartbeat_at or run.started_at or run.created_at
        if (now - heartbeat).total_seconds() <= stale_after:
            continue
        if run.recovered >= MAX_RECOVERIES:  # the step fails every time it runs: end the run
            fail(run, f'step "{run.status}" lost {run.recovered} times', transient=True)
            continue
        # compare-and-swap on the heartbeat: of two sweeps at once (beat, a starting worker) one publishes
        if TrainingRun.objects.filter(pk=run.pk, status=run.status, heartbeat_at=run.heartbeat_at).update(
            recovered=F('recovered') + 1, heartbeat_at=now
        ):
            logger.warning('training run %s: no step for %.0f s, publishing %s again', run.id, stale_after, run.status)
            published += enqueue(STEP_OF_STATUS[run.status], run.id)
    for policy in RetrainingPolicy.objects.filter(**ACTIVE, pending=True, running=False):
        if seconds_until_due(policy, now) <= 0:
            published += enqueue('start_run', policy.project_id, 'sweep')
    for policy in RetrainingPolicy.objects.filter(**ACTIVE, running=False).select_related('project'):
        # a pre-annotation never published, or failed: retried after the back-off, until the budget stops it
        due = seconds_until_due(policy, now) <= 0 and follows_backend_live(policy.project)
        if due and not pre_annotated(policy.project):
            published += enqueue('predict_served_version', policy.project_id)
    return published


def pre_annotated(project):
    """The last pre-annotation succeeded with the version the project uses now.

    A backend titled like the version it serves leaves the project "following it live" after its
    pre-annotation succeeded: without this, every sweep would start another one.
    """
    last = TrainingRun.objects.filter(project_id=project.id, metrics__predict_only=True).order_by('-id').first()
    return last is not None and last.status == TrainingRun.SUCCEEDED and last.version_after == project.model_version
