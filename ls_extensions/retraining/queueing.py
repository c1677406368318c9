"""Publishing the retraining steps by name: a broker that is down never fails the caller, a wrong name does.

The steps are Celery tasks (``tasks.py``) named ``ls_ext_retraining.<step>``; they are published by that
name (``publishing.publish_named``), so nothing that enqueues a step imports the tasks module. A name that
is not in :data:`STEPS` raises :class:`LookupError` before anything is published: it is never read (and
logged) as a broker that is down.
"""

from django.db import transaction

from ls_extensions import publishing

STEPS = ('start_run', 'predict_served_version', 'begin_training', 'poll_training', 'repredict_batch', 'sweep')


def celery_name(step):
    """The Celery task name of retraining step ``step``; LookupError for a name that is no step."""
    if step not in STEPS:
        raise LookupError(f'no retraining step {step!r} (steps: {", ".join(STEPS)})')
    return f'ls_ext_retraining.{step}'


def enqueue(task_name, *args, countdown=None):
    """Publish the retraining step ``task_name`` now; a broker that is down is logged and reported, never raised.

    A trigger whose publish fails stays ``pending`` in the database; ``sweep`` (periodic, and at
    worker start) publishes it again. A name that is not a step raises LookupError here.
    """
    return publishing.publish_named(celery_name(task_name), *args, countdown=countdown)


def enqueue_on_commit(task_name, *args, countdown=None):
    celery_name(task_name)  # a wrong name fails here, in the caller, not after its commit
    transaction.on_commit(lambda: enqueue(task_name, *args, countdown=countdown))


def enqueue_in_background(task_name, *args):
    """Publish from the publisher thread: an annotation request never waits on the broker, even an unreachable one.

    If the process dies before the publish (or the broker is down), what was to be published is still
    recorded in the database (a ``pending`` trigger, a project that still follows its backend live), and
    ``sweep`` publishes it. A wrong name raises here, in the caller, not in the thread.
    """
    celery_name(task_name)
    publishing.in_background(enqueue, task_name, *args)
