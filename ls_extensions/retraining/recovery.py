"""Recovering what a lost worker or broker left behind: the periodic ``sweep``."""

import logging

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from ls_extensions.retraining import queueing
from ls_extensions.retraining.models import RetrainingPolicy, TrainingRun
from ls_extensions.retraining.steps import fail, follows_backend_live, publish_follow_up
from ls_extensions.retraining.timing import stale_seconds
from ls_extensions.retraining.triggers import ACTIVE, seconds_until_due

logger = logging.getLogger(__name__)
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
            published += queueing.enqueue(STEP_OF_STATUS[run.status], run.id)
    for policy in RetrainingPolicy.objects.filter(**ACTIVE, pending=True, running=False):
        if seconds_until_due(policy, now) <= 0:
            published += queueing.enqueue('start_run', policy.project_id, 'sweep')
    for policy in RetrainingPolicy.objects.filter(**ACTIVE, running=False).select_related('project'):
        # a pre-annotation never published, or failed: retried after the back-off, until the budget stops it
        due = seconds_until_due(policy, now) <= 0 and follows_backend_live(policy.project)
        if due and not pre_annotated(policy.project):
            published += queueing.enqueue('predict_served_version', policy.project_id)
    return published


def pre_annotated(project):
    """The last pre-annotation succeeded with the version the project uses now.

    A backend titled like the version it serves leaves the project "following it live" after its
    pre-annotation succeeded: without this, every sweep would start another one.
    """
    last = TrainingRun.objects.filter(project_id=project.id, metrics__predict_only=True).order_by('-id').first()
    return last is not None and last.status == TrainingRun.SUCCEEDED and last.version_after == project.model_version
