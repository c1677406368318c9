"""Video tasks are never predicted inside a request: Label Studio's in-request predictions go to the worker.

Label Studio predicts the tasks that have no prediction yet inside the request that shows them: the task
API (an annotator opening a task, when predictions are shown to annotators) and the Data Manager's task
list (when predictions are retrieved automatically), through `evaluate_predictions`, looked up by name
in `tasks.api` and `data_manager.api` when called. An image takes milliseconds; a video of a few
thousand frames takes a minute, past Label Studio's 100 s for the backend call, and the annotator's page
would wait for it. :func:`install` replaces the name in those two modules with
:func:`evaluate_predictions`: a project with a `Video` publishes the tasks to the worker
(`ls_ext_ml_backend.predict_tasks`, one video per backend call) and the request goes on without them;
every other project keeps Label Studio's call. Declared with the other seams in `ls_extensions/compat.py`.
"""

import logging
import threading
import time

from ls_extensions import publishing

logger = logging.getLogger(__name__)

PATCHED_NAME = 'evaluate_predictions'
MODULES = ('tasks.api', 'data_manager.api')
PREDICT_TASKS = 'ls_ext_ml_backend.predict_tasks'
QUEUED_SECONDS = 600.0  # a task published this recently is not published again by the next page view
MOST_PER_CALL = 500  # tasks published from one request (a Data Manager page shows 30)

original = None
_queued = {}
_lock = threading.Lock()


def is_video_project(project):
    """A project whose config has a `Video` object tag (Label Studio's stored `data_types`, no XML read)."""
    return any(str(tag).lower() == 'video' for tag in (project.data_types or {}).values())


def _task_ids(tasks):
    if hasattr(tasks, 'values_list'):
        return list(tasks.values_list('id', flat=True)[:MOST_PER_CALL])
    return [task.id for task in list(tasks)[:MOST_PER_CALL]]


def _not_queued_recently(ids):
    now = time.monotonic()
    with _lock:
        for task_id, at in list(_queued.items()):
            if now - at > QUEUED_SECONDS:
                del _queued[task_id]
        fresh = [task_id for task_id in ids if task_id not in _queued]
        _queued.update(dict.fromkeys(fresh, now))
    return fresh


def evaluate_predictions(tasks):
    """Label Studio's `evaluate_predictions(tasks)`, except that video tasks are published to the worker."""
    if not tasks:
        return original(tasks)
    project = tasks[0].project
    if not is_video_project(project) or project.ml_backend is None:
        return original(tasks)
    ids = _not_queued_recently(_task_ids(tasks))
    if ids:
        publishing.in_background(publishing.publish_named, PREDICT_TASKS, project.id, ids)
    return None


evaluate_predictions.ls_ext_patch = True


def install():
    """Swap in :func:`evaluate_predictions` in both modules, once."""
    import importlib

    global original
    for name in MODULES:
        module = importlib.import_module(name)
        current = getattr(module, PATCHED_NAME)
        if getattr(current, 'ls_ext_patch', False):
            continue
        original = original or current
        setattr(module, PATCHED_NAME, evaluate_predictions)


def predict_tasks(project_id, task_ids):
    """The worker's side: each task that still has no prediction, one backend call per task."""
    from projects.models import Project
    from tasks.models import Task

    project = Project.objects.filter(pk=project_id).first()
    backend = project.ml_backend if project is not None else None
    if backend is None:
        return 0
    predicted = 0
    for task_id in task_ids:
        task = Task.objects.filter(pk=task_id, project_id=project_id, predictions__isnull=True)
        if not task.exists():
            continue  # predicted meanwhile (a retraining run, another page view), or deleted
        backend.predict_tasks(task)
        predicted += 1
    logger.info('predicted %s of %s video tasks of project %s in the background', predicted, len(task_ids), project_id)
    return predicted
