"""What starts a run: counting annotation changes, the threshold, "Retrain now", resuming a stopped policy.

Each trigger sets the policy ``pending`` in the database first, then publishes ``start_run`` after commit.
"""

import logging
from datetime import timedelta

from django.db import DatabaseError, transaction
from django.db.models import F
from django.utils import timezone

from ls_extensions.retraining import queueing
from ls_extensions.retraining.models import RetrainingPolicy
from ls_extensions.retraining.timing import retry_seconds

logger = logging.getLogger(__name__)
ACTIVE = {'enabled': True, 'stopped_reason': ''}  # a policy that may start runs by itself


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
            transaction.on_commit(lambda: queueing.enqueue_in_background('start_run', project_id, 'threshold'))
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
        queueing.enqueue_on_commit('start_run', project_id, trigger)
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
            queueing.enqueue_on_commit('start_run', project_id, 'threshold')
    return bool(resumed)


def disable_builtin_training(project_id):
    """Label Studio's own receiver would call ``train()`` inside the annotation request: keep it off."""
    from projects.models import Project

    Project.objects.filter(pk=project_id).exclude(min_annotations_to_start_training=0).update(
        min_annotations_to_start_training=0
    )


def seconds_until_due(policy, now=None):
    """Seconds before the policy may start a run: its minimum interval, or the back-off after failures."""
    if not policy.last_run_at:
        return 0.0
    now = now or timezone.now()
    gap = float(policy.min_interval_seconds)
    if policy.failed_attempts:
        gap = max(gap, retry_seconds(policy.failed_attempts))
    return max((policy.last_run_at + timedelta(seconds=gap) - now).total_seconds(), 0.0)
