"""Celery tasks of the model-server integration, published by name (`background_predictions.PREDICT_TASKS`)."""

from ls_extensions.celery import app
from ls_extensions.ml_backend import background_predictions


@app.task(name=background_predictions.PREDICT_TASKS, acks_late=True, ignore_result=True)
def predict_tasks(project_id, task_ids):
    return background_predictions.predict_tasks(project_id, task_ids)
