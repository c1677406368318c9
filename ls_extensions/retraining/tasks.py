"""Celery tasks: small, idempotent, taking ids; the work is in ``steps`` and ``recovery``.

Published by name (``queueing.enqueue``): nothing imports this module but the Celery app's autodiscovery.
"""

from celery.signals import worker_ready

from ls_extensions import migrations_ready
from ls_extensions.celery import app
from ls_extensions.retraining import queueing, recovery, steps


@app.task(name='ls_ext_retraining.start_run', acks_late=True, ignore_result=True)
def start_run(project_id, trigger='threshold'):
    run = steps.start_run(project_id, trigger)
    return run and run.id


@app.task(name='ls_ext_retraining.predict_served_version', acks_late=True, ignore_result=True)
def predict_served_version(project_id):
    steps.predict_served_version(project_id)


@app.task(name='ls_ext_retraining.begin_training', acks_late=True, ignore_result=True)
def begin_training(run_id):
    steps.begin_training(run_id)


@app.task(name='ls_ext_retraining.poll_training', acks_late=True, ignore_result=True)
def poll_training(run_id):
    steps.poll_training(run_id)


@app.task(name='ls_ext_retraining.repredict_batch', acks_late=True, ignore_result=True)
def repredict_batch(run_id):
    steps.repredict_batch(run_id)


@app.task(name='ls_ext_retraining.sweep', acks_late=True, ignore_result=True)
def sweep():
    if not migrations_ready.ready('retraining sweep'):  # a worker started before migrate finished
        return None
    return recovery.sweep()


@worker_ready.connect
def _sweep_on_worker_start(sender=None, **kwargs):
    """Triggers left pending while no worker (or no broker) was there start now."""
    queueing.enqueue('sweep')
