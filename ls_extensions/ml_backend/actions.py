"""The Data Manager's "Retrieve Predictions", answering with what was stored.

Label Studio's own action answers "Retrieved N predictions" for N selected tasks whatever happened. When
the model server cannot read a task's image (a file deleted from the uploads, a storage it cannot reach),
it returns an error for that task; Label Studio logs it and drops the task, and the user is told nothing.
This action runs Label Studio's own, then counts the selected tasks that have no prediction of the
served model. When some are missing, its answer is an error the Data Manager shows in a dialog: how many
were stored, which tasks got none, and the model server's reason for the first few (asked again for those
tasks only; Label Studio keeps no reason).

It replaces Label Studio's action under the same id (``register_action`` rewrites an entry of that name,
``ml_backend/apps.py``), keeping its title, order, permission and confirm dialog; guarded by
``tests/ml_backend/test_retrieve_action.py``.
"""

from data_manager.actions import basic
from django.conf import settings
from django.db.models import Q
from tasks.models import Prediction, Task
from tasks.serializers import TaskSimpleSerializer

from ls_extensions.permissions import action_refusal

ACTION_ID = 'retrieve_tasks_predictions'
REASONS_ASKED = 5  # tasks asked again for the model server's reason; bounds the extra time to one small request
TASKS_NAMED = 20


def stock_registration():
    """Label Studio's registration of the action, which ours keeps apart from the entry point."""
    return dict(settings.DATA_MANAGER_ACTIONS[ACTION_ID])


def retrieve_tasks_predictions(project, queryset, **kwargs):
    """Label Studio's "Retrieve Predictions", then a 422 naming the tasks left without a prediction."""
    refusal = action_refusal(project, kwargs)
    if refusal:
        return refusal
    backend = project.ml_backend
    if backend is None:
        return {
            'response_code': 400,
            'detail': 'No model is connected to this project: connect one in Settings → Model.',
        }
    selected = list(queryset.values_list('id', flat=True))
    before = Prediction.objects.filter(project=project).order_by('-id').values_list('id', flat=True).first() or 0
    result = basic.retrieve_tasks_predictions(project, queryset, **kwargs)
    backend.refresh_from_db()
    if backend.not_ready:
        reason = backend.error_message or 'it does not answer'
        return {
            'response_code': 400,
            'detail': f'The model "{backend.title}" is {backend.get_state_display().lower()}: {reason}. '
            'Nothing was predicted; see Settings → Model.',
        }
    missing = uncovered(project, selected, before, backend.model_version)
    if not missing:
        n = len(selected)
        return {
            **result,
            'detail': f'{n} of {n} tasks have a prediction of the served model ({backend.model_version}).',
        }
    return {
        'response_code': 422,
        'detail': describe_missing(
            len(selected), missing, backend.model_version, reasons(backend, project, missing[:REASONS_ASKED])
        ),
        'tasks_without_prediction': missing[:TASKS_NAMED],
    }


def uncovered(project, selected, before, served_version):
    """Selected task ids with neither a prediction made by this run nor one of the served model version."""
    new = Prediction.objects.filter(project=project, id__gt=before)
    versions = set(new.values_list('model_version', flat=True).distinct()) | {served_version or ''}
    covered = Prediction.objects.filter(task_id__in=selected).filter(Q(id__gt=before) | Q(model_version__in=versions))
    return sorted(set(selected) - set(covered.values_list('task_id', flat=True)))


def reasons(backend, project, task_ids):
    """``{task id: reason}`` from asking the model server again for these tasks."""
    tasks = TaskSimpleSerializer(Task.objects.filter(id__in=task_ids), many=True).data
    answer = backend.api.make_predictions(tasks, project)
    if answer.is_error:
        return dict.fromkeys(task_ids, answer.error_message or f'the model server answered {answer.status_code}')
    body = answer.response if isinstance(answer.response, dict) else {}
    results = body.get('results')
    found = {}
    for item in body.get('errors') or []:  # ls_extensions' model server names each task's failure
        if isinstance(item, dict) and item.get('task') in task_ids:
            found[item['task']] = str(item.get('error'))[:300]
    if isinstance(results, list) and len(results) == len(tasks):
        for task, item in zip(tasks, results, strict=True):
            if task['id'] not in found and not (isinstance(item, dict) and 'result' in item):
                found[task['id']] = str(item.get('error') if isinstance(item, dict) else item)[:300]
    return {task_id: found.get(task_id, 'the model server returned no prediction for it') for task_id in task_ids}


def describe_missing(selected_count, missing, version, reasons_by_task):
    covered = selected_count - len(missing)
    named = ', '.join(str(task_id) for task_id in missing[:TASKS_NAMED])
    if len(missing) > TASKS_NAMED:
        named += f' and {len(missing) - TASKS_NAMED} more'
    lines = [
        f'{covered} of {selected_count} tasks have a prediction of the served model ({version}); '
        f'{len(missing)} got none: {"task" if len(missing) == 1 else "tasks"} {named}.',
        *(f'Task {task_id}: {reason}' for task_id, reason in reasons_by_task.items()),
    ]
    return '\n'.join(lines)
