"""Celery tasks of the scoring app: thin, idempotent, taking ids; the work is in ``jobs``.

Published by name (``jobs.publish``) from the publisher thread (``ls_extensions.publishing``) after the
transaction that created the job commits, so a request never waits on the broker. A broker that is
down never fails the request that asked: the job stays queued in the database and the sweep (beat, and
each worker start) publishes it again.
"""

import logging

from celery.signals import worker_ready

from ls_extensions import migrations_ready
from ls_extensions.celery import app
from ls_extensions.scoring import jobs

logger = logging.getLogger(__name__)


@app.task(name='ls_ext_scoring.run_job', acks_late=True, ignore_result=True)
def run_job(job_id):
    jobs.run_job(job_id)


@app.task(name='ls_ext_scoring.sweep', acks_late=True, ignore_result=True)
def sweep():
    if not migrations_ready.ready('scoring sweep'):  # a worker started before migrate finished
        return None
    return jobs.sweep()


def publish(job_id):
    """Send job ``job_id`` to a worker (``jobs.publish``, by the task's name); never raises."""
    return jobs.publish(job_id)


@worker_ready.connect
def _sweep_on_worker_start(sender=None, **kwargs):
    """Jobs queued while no worker (or no broker) was there run now."""
    try:
        sweep.apply_async(retry=False)
    except Exception as exc:  # noqa: BLE001 - the beat sweep comes anyway
        logger.warning('scoring sweep not published at worker start: %s', exc)
