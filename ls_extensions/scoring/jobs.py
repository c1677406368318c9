"""Background work on a project's scores: full recompute and catch-up, with progress in ``RecomputeJob``.

A job is a ``RecomputeJob`` row, created where the need is seen and run by id: published to Celery after
the transaction that created it commits (the task ``tasks.run_job``, published by its name;
``LS_EXT_SCORING_RUNNER = 'celery'``, see ``runner.py``), or run right away in the caller (``'inline'``:
tests and scripts); ``services.reconcile`` asks for one through ``events.recompute_needed``. Running claims the row (queued ->
running, one UPDATE), so a message delivered twice runs the job once. Correctness never depends on the
runner: a job overtaken by a newer switch (``generation``) stops writing.

Nothing is lost when the broker or a worker is: :func:`sweep` (beat, and each worker start) publishes
queued jobs again, fails running jobs that stopped beating, and queues what stale scores need.
"""

import logging
import time
from datetime import timedelta

from django.db import OperationalError, transaction
from django.dispatch import receiver
from django.utils import timezone

from ls_extensions import publishing
from ls_extensions.scoring import conf, events, services
from ls_extensions.scoring.models import RecomputeJob, ScoringPolicy, TaskMistake, TaskUncertainty
from ls_extensions.scoring.runner import runner

logger = logging.getLogger(__name__)

BATCH = 2000
CLUSTER_BATCH = 200  # tasks whose images one batch reads
FAILURES_IN_A_ROW = 3  # automatic re-queueing of a kind of job stops after this many failed in a row


def stale_seconds():
    """A job queued and not started, or running without a batch done, for this long is presumed lost."""
    return conf.STALE_SECONDS.get()


def enqueue(project_id, kind=RecomputeJob.RECOMPUTE, reason=''):
    """A job of ``kind`` for the project: the one already queued, else a new one published after commit."""
    waiting = RecomputeJob.objects.filter(project_id=project_id, kind=kind, status=RecomputeJob.QUEUED)
    waiting = waiting.order_by('-id').first()
    if waiting is not None:
        return waiting
    job = RecomputeJob.objects.create(project_id=project_id, kind=kind, reason=reason[:200])
    if runner() == 'inline':
        run_job(job.id)
    else:
        transaction.on_commit(lambda: publishing.in_background(publish, job.id))
    return job


RUN_JOB = 'ls_ext_scoring.run_job'  # the Celery task (``tasks.py``), published by name: no import of it here


def publish(job_id):
    """Send job ``job_id`` to a worker; True if the broker took it. Never raises: a failure is logged."""
    # one connection attempt (broker_connection_timeout): kombu would otherwise retry for minutes
    return publishing.publish_named(RUN_JOB, job_id, attempts=0)


@receiver(events.recompute_needed, dispatch_uid='ls_ext_scoring_recompute_needed')
def _recompute_needed(sender, project_id, reason, **kwargs):
    """``services.reconcile`` found the stored rows stale: the recompute job (queued, or new)."""
    return enqueue(project_id, reason=reason)


@receiver(events.clusters_needed, dispatch_uid='ls_ext_scoring_clusters_needed')
def _clusters_needed(sender, project_id, **kwargs):
    """Diverse selection turned on (``services.change_policy``): the clusters job, if some task needs it."""
    return queue_cluster_fill(project_id)


def claim(job_id):
    """Queued -> running in one UPDATE: of two deliveries of the same message, one runs the job."""
    now = timezone.now()
    return RecomputeJob.objects.filter(pk=job_id, status=RecomputeJob.QUEUED).update(
        status=RecomputeJob.RUNNING, started_at=now, heartbeat_at=now
    )


def run_job(job_id):
    """Run one job by id; failures are recorded on the job, never raised (to a request or a worker)."""
    if not claim(job_id):
        return RecomputeJob.objects.filter(pk=job_id).first()  # ran, running, or gone with its project
    job = RecomputeJob.objects.get(pk=job_id)
    try:
        _with_retries(WORK[job.kind], job)
        job.status = RecomputeJob.DONE
    except Exception as exc:
        logger.exception('scoring job %s failed', job_id)
        job.status, job.error = RecomputeJob.FAILED, f'{type(exc).__name__}: {exc}'
    job.finished_at = timezone.now()
    fields = ('status', 'error', 'finished_at', 'model_version', 'measure', 'total', 'done')
    RecomputeJob.objects.filter(pk=job.pk).update(**{name: getattr(job, name) for name in fields})
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
        TaskMistake.objects.filter(project_id=project_id).delete()
    return policy


def _finished(policy):
    """The switch's recompute scored everything: its rows are complete (unless a newer switch came)."""
    ScoringPolicy.objects.filter(pk=policy.pk, generation=policy.generation).update(scored_generation=policy.generation)


def _save(job, *fields):
    job.heartbeat_at = timezone.now()
    job.save(update_fields=[*fields, 'heartbeat_at'])


def _progress(job, batch, tally):
    job.done += len(batch)
    job.scored, job.unranked = job.scored + tally.scored, job.unranked + tally.unranked
    job.clamped, job.ignored = job.clamped + tally.clamped, job.ignored + tally.ignored
    _save(job, 'done', 'scored', 'unranked', 'clamped', 'ignored')


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
        _save(job, 'model_version', 'measure')
        _finished(policy)
        return
    predictions = Prediction.objects.filter(project_id=job.project_id, id__lte=policy.prediction_watermark)
    predictions = predictions.filter(services.version_q(policy.active_version))
    job.total, job.done = predictions.count(), 0
    _save(job, 'model_version', 'measure', 'total', 'done')
    for batch in _batches(predictions):
        tally = services.Tally()
        if not services.write_scores(job.project_id, batch, policy.generation, tally):
            return  # overtaken by a newer switch, which has its own job
        _progress(job, batch, tally)
    _finished(policy)


def catch_up(job):
    """Score predictions that arrived without signals (bulk imports) above the project's watermark."""
    from tasks.models import Prediction

    policy = services.get_policy(job.project_id)
    job.model_version, job.measure = policy.active_version, policy.active_measure
    predictions = Prediction.objects.filter(project_id=job.project_id)
    job.total = predictions.filter(id__gt=policy.prediction_watermark).count()
    _save(job, 'model_version', 'measure', 'total')
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


def fill_clusters(job):
    """Store the cluster of every task of the project that has none (``clusters.py``), so that the Data
    Manager's "Diverse order" groups all of them, not only the tasks the stream has looked at."""
    from tasks.models import Task

    from ls_extensions.scoring import clusters

    project = job.project
    without = Task.objects.filter(project_id=project.id, ls_ext_cluster__isnull=True)
    job.total, job.done = without.count(), 0
    _save(job, 'total', 'done')
    above = 0
    while ids := list(without.filter(id__gt=above).order_by('id').values_list('id', flat=True)[:CLUSTER_BATCH]):
        clusters.ensure(project, ids)
        above = ids[-1]
        job.done += len(ids)
        _save(job, 'done')


def queue_cluster_fill(project_id):
    """The clusters job, when some task of the project has no cluster and none is queued, alive or failing."""
    from tasks.models import Task

    if busy(project_id, RecomputeJob.CLUSTERS) or failing(project_id, RecomputeJob.CLUSTERS):
        return None
    if not Task.objects.filter(project_id=project_id, ls_ext_cluster__isnull=True).exists():
        return None
    return enqueue(project_id, RecomputeJob.CLUSTERS, 'tasks without a near-duplicate cluster')


WORK = {RecomputeJob.RECOMPUTE: recompute, RecomputeJob.CATCH_UP: catch_up, RecomputeJob.CLUSTERS: fill_clusters}


def _first_seen(batch):
    first = {}
    for prediction in batch:
        version = services.version_of(prediction['model_version'])
        if version not in first or prediction['created_at'] < first[version]:
            first[version] = prediction['created_at']
    return first


def busy(project_id, kind):
    """A job of this kind is queued (its message may be waiting for a worker) or running and alive."""
    jobs = RecomputeJob.objects.filter(project_id=project_id, kind=kind)
    alive = timezone.now() - timedelta(seconds=stale_seconds())
    return (
        jobs.filter(status=RecomputeJob.QUEUED).exists()
        or jobs.filter(status=RecomputeJob.RUNNING, heartbeat_at__gte=alive).exists()
    )


def failing(project_id, kind):
    """The last jobs of this kind all failed: nothing re-queues it by itself any more (one failed job per
    minute forever helps nobody). The report shows the error; a user's recompute or a new version tries again."""
    jobs = RecomputeJob.objects.filter(project_id=project_id, kind=kind).order_by('-id')
    last = list(jobs.values_list('status', flat=True)[:FAILURES_IN_A_ROW])
    return len(last) == FAILURES_IN_A_ROW and set(last) == {RecomputeJob.FAILED}


def keep_fresh(project_id):
    """A few cheap queries (Data Manager loads, the sweep): queue a recompute if the stored rows are not
    the desired version and measure or a recompute was left unfinished, a catch-up if predictions arrived
    without signals."""
    from tasks.models import Prediction

    policy = services.get_policy(project_id)
    stale = services.desired_state(policy) != (policy.active_version, policy.active_measure)
    if stale or not policy.complete:
        if busy(project_id, RecomputeJob.RECOMPUTE) or failing(project_id, RecomputeJob.RECOMPUTE):
            return None
        why = 'stored scores are not the desired ones' if stale else 'a recompute was left unfinished'
        return enqueue(project_id, RecomputeJob.RECOMPUTE, why)
    if policy.diverse:
        queued = queue_cluster_fill(project_id)
        if queued is not None:
            return queued
    if busy(project_id, RecomputeJob.CATCH_UP) or failing(project_id, RecomputeJob.CATCH_UP):
        return None
    if Prediction.objects.filter(project_id=project_id, id__gt=policy.prediction_watermark).exists():
        return enqueue(project_id, RecomputeJob.CATCH_UP, 'predictions added without signals')
    return None


def sweep():
    """Recover what a lost worker, a lost message or a broker that was down left behind.

    Running jobs without a batch done for ``stale_seconds()`` failed with their worker; queued jobs that
    old are published again (a duplicate message finds the job claimed and does nothing); then every
    project whose scores are stale gets its job (:func:`keep_fresh`), so a recompute cut off by a dead
    worker starts over. Returns the counts, for the log and the tests.
    """
    now = timezone.now()
    cutoff = now - timedelta(seconds=stale_seconds())
    lost = RecomputeJob.objects.filter(status=RecomputeJob.RUNNING, heartbeat_at__lt=cutoff).update(
        status=RecomputeJob.FAILED,
        finished_at=now,
        error=f'no progress for {stale_seconds():.0f} s: the worker running it stopped',
    )
    if lost:
        logger.warning('scoring: %s job(s) lost with their worker', lost)
    waiting = RecomputeJob.objects.filter(status=RecomputeJob.QUEUED, created_at__lt=cutoff)
    republished = sum(bool(publish(job_id)) for job_id in waiting.values_list('id', flat=True))
    queued = 0
    for project_id in ScoringPolicy.objects.values_list('project_id', flat=True):
        queued += keep_fresh(project_id) is not None
    return {'lost': lost, 'republished': republished, 'queued': queued}
