"""Celery tasks of the video app: snapshot conversions and their recovery; the work is in ``conversions``."""

from celery.signals import worker_ready

from ls_extensions import migrations_ready
from ls_extensions.celery import app
from ls_extensions.video import conversions


@app.task(name='ls_ext_video.convert_snapshot', acks_late=True, ignore_result=True)
def convert_snapshot(converted_format_id):
    return conversions.run_conversion(converted_format_id)


@app.task(name='ls_ext_video.sweep_conversions', acks_late=True, ignore_result=True)
def sweep_conversions():
    if not migrations_ready.ready('video conversion sweep'):  # a worker started before migrate finished
        return None
    return conversions.sweep()


@worker_ready.connect
def _sweep_on_worker_start(sender=None, **kwargs):
    """Conversions left by a worker that died (or published while no broker was up) restart now."""
    conversions.publish_sweep()
