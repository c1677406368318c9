"""Background work on a project's scores: full recompute and catch-up, with progress in ``RecomputeJob``.

Jobs take ids and are idempotent. They run on one daemon thread per process, queued after the
transaction that asked for them commits (``LS_EXT_SCORING_RUNNER = 'thread'``), or right away in
the caller (``'inline'``: tests and management scripts). A later issue moves them to Celery: only
:func:`start` changes. Correctness never depends on the runner: a job that has been overtaken by a
newer switch (``generation``) stops writing.
"""

import logging
import queue
import threading
import time
from datetime import timedelta

from django.conf import settings
from django.db import OperationalError, close_old_connections, transaction
from django.utils import timezone

from ls_extensions.scoring import services
from ls_extensions.scoring.models import RecomputeJob, ScoringPolicy, TaskUncertainty

logger = logging.getLogger(__name__)

BATCH = 2000
STALE_QUEUED = timedelta(minutes=10)  # a queued job older than this is presumed lost with its process

_queue = queue.Queue()
_worker = None
_worker_lock = threading.Lock()


def runner():
    return getattr(settings, 'LS_EXT_SCORING_RUNNER', 'thread')


def after_commit(fn):
    """Run ``fn`` once the current transaction commits; inline runners run it now."""
    if runner() == 'inline':
        fn()
    else:
        transaction.on_commit(fn)


def enqueue(project_id, kind=RecomputeJob.RECOMPUTE, reason=''):
    """Queue a job unless the same kind is already waiting for this project; returns the job."""
    waiting = (
        RecomputeJob.objects.filter(project_id=project_id, kind=kind, status=RecomputeJob.QUEUED)
        .filter(created_at__gte=timezone.now() - STALE_QUEUED)
        .order_by('-id')
        .first()
    )
    if waiting is not None:
        return waiting
    job = RecomputeJob.objects.create(project_id=project_id, kind=kind, reason=reason[:200])
    after_commit(lambda: start(job.id))
    return job


def start(job_id):
    if runner() == 'inline':
        run_job(job_id)
        return
    global _worker
    with _worker_lock:
        if _worker is None or not _worker.is_alive():
            _worker = threading.Thread(target=_work, name='ls-ext-scoring', daemon=True)
            _worker.start()
    _queue.put(job_id)


def _work():
    while True:
        job_id = _queue.get()
        close_old_connections()
        try:
            run_job(job_id)
        except Exception:  # run_job records failures; this only keeps the worker alive
            logger.exception('scoring job %s crashed', job_id)
        finally:
            close_old_connections()


def run_job(job_id):
    """Run one job by id; failures are recorded on the job, never raised to a request."""
    job = RecomputeJob.objects.get(pk=job_id)
    if job.status != RecomputeJob.QUEUED:
        return job
    job.status, job.started_at = RecomputeJob.RUNNING, timezone.now()
    job.save(update_fields=['status', 'started_at'])
    try:
        _with_retries(recompute if job.kind == RecomputeJob.RECOMPUTE else catch_up, job)
        job.status = RecomputeJob.DONE
    except Exception as exc:
        logger.exception('scoring job %s failed', job_id)
        job.status, job.error = RecomputeJob.FAILED, f'{type(exc).__name__}: {exc}'
    job.finished_at = timezone.now()
    job.save()
    return job


def _with_retries(work, job, attempts=5):
    """Jobs are idempotent, so a write refused by a busy SQLite database is simply tried again."""
    for attempt in range(attempts):
        try:
            return work(job)
        except OperationalError as exc:
            if 'locked' not in str(exc) or attempt == attempts - 1:
                raise
            time.sleep(0.5 * (attempt + 1))


def _switch(project_id):
    """Make the desired version and measure active and drop every stored row, atomically."""
    with transaction.atomic():
        policy = services.lock_policy(project_id, exclusive=True)
        policy.active_version, policy.active_measure = services.desired_state(policy)
        policy.generation += 1
        policy.prediction_watermark = services.newest_prediction_id(project_id)
        policy.save()
        TaskUncertainty.objects.filter(project_id=project_id).delete()
    return policy


def _progress(job, batch, tally):
    job.done += len(batch)
    job.scored, job.unranked = job.scored + tally.scored, job.unranked + tally.unranked
    job.clamped, job.ignored = job.clamped + tally.clamped, job.ignored + tally.ignored
    job.save(update_fields=['done', 'scored', 'unranked', 'clamped', 'ignored'])


def _batches(predictions, above=0):
    """Prediction dicts in id order, BATCH at a time (keyset pagination: each batch is an index range)."""
    while True:
        batch = list(predictions.filter(id__gt=above).order_by('id').values(*services.PREDICTION_FIELDS)[:BATCH])
        if not batch:
            return
        yield batch
        above = batch[-1]['id']


def recompute(job):
    """Switch to the desired version and measure, then score all of its predictions from scratch."""
    from tasks.models import Prediction

    policy = _switch(job.project_id)
    job.model_version, job.measure = policy.active_version, policy.active_measure
    if policy.active_version is None:
        job.save()
        return
    predictions = Prediction.objects.filter(project_id=job.project_id, id__lte=policy.prediction_watermark)
    predictions = predictions.filter(services.version_q(policy.active_version))
    job.total = predictions.count()
    job.save()
    for batch in _batches(predictions):
        tally = services.Tally()
        if not services.write_scores(job.project_id, batch, policy.generation, tally):
            return  # overtaken by a newer switch, which has its own job
        _progress(job, batch, tally)


def catch_up(job):
    """Score predictions that arrived without signals (bulk imports) above the project's watermark."""
    from tasks.models import Prediction

    policy = services.get_policy(job.project_id)
    job.model_version, job.measure = policy.active_version, policy.active_measure
    predictions = Prediction.objects.filter(project_id=job.project_id)
    job.total = predictions.filter(id__gt=policy.prediction_watermark).count()
    job.save()
    new_versions = False
    for batch in _batches(predictions, policy.prediction_watermark):
        for version, seen_at in _first_seen(batch).items():
            new_versions |= services.remember_version(job.project_id, version, seen_at)
        tally = services.Tally()
        if not services.write_scores(job.project_id, batch, policy.generation, tally):
            return
        if policy.active_measure is None:
            continue  # nothing is active yet: the coming recompute sets its own watermark
        ScoringPolicy.objects.filter(pk=policy.pk, prediction_watermark__lt=batch[-1]['id']).update(
            prediction_watermark=batch[-1]['id']
        )
        _progress(job, batch, tally)
    if new_versions:
        services.reconcile(job.project_id, 'new model version in imported predictions')


def _first_seen(batch):
    first = {}
    for prediction in batch:
        version = services.version_of(prediction['model_version'])
        if version not in first or prediction['created_at'] < first[version]:
            first[version] = prediction['created_at']
    return first


def busy(project_id, kind):
    """A job of this kind is waiting or running (recently enough to be alive)."""
    recent = timezone.now() - STALE_QUEUED
    jobs = RecomputeJob.objects.filter(project_id=project_id, kind=kind)
    return (
        jobs.filter(status=RecomputeJob.QUEUED, created_at__gte=recent).exists()
        or jobs.filter(status=RecomputeJob.RUNNING, started_at__gte=recent - STALE_QUEUED * 5).exists()
    )


def keep_fresh(project_id):
    """A few cheap queries, run when the Data Manager loads: queue a recompute if the stored rows are not
    the desired version and measure (e.g. a job failed), a catch-up if predictions arrived without signals."""
    from tasks.models import Prediction

    policy = services.get_policy(project_id)
    if services.desired_state(policy) != (policy.active_version, policy.active_measure):
        if not busy(project_id, RecomputeJob.RECOMPUTE):
            return enqueue(project_id, RecomputeJob.RECOMPUTE, 'stored scores are not the desired ones')
        return None
    if Prediction.objects.filter(project_id=project_id, id__gt=policy.prediction_watermark).exists():
        return enqueue(project_id, RecomputeJob.CATCH_UP, 'predictions added without signals')
    return None
