"""Our "Retrieve Predictions" in place of Label Studio's (ls_extensions/ml_backend/actions.py).

The seam: Label Studio's action of that id exists where we call it, and our registration keeps what the
Data Manager shows of it (title, order, permission, confirm dialog). What the user sees when an image
cannot be read, with a real model server: tests/ml_backend/test_fresh_install.py and
tests/browser/test_readme_walk.py.
"""

import json

import pytest
from data_manager.actions import basic
from django.conf import settings

from ls_extensions.ml_backend import actions
from tests.conftest import make_project
from tests.label_configs import IMAGE_BOXES

pytestmark = pytest.mark.django_db


def stock_entry():
    entries = [entry for entry in basic.actions if entry['entry_point'] is basic.retrieve_tasks_predictions]
    assert len(entries) == 1, (
        'Label Studio no longer registers retrieve_tasks_predictions in data_manager.actions.basic'
    )
    return entries[0]


def test_ours_replaces_label_studio_s_under_its_id_and_keeps_its_title_permission_and_dialog():
    assert basic.retrieve_tasks_predictions.__name__ == actions.ACTION_ID  # the id register_action derives
    registered = settings.DATA_MANAGER_ACTIONS[actions.ACTION_ID]
    assert registered['entry_point'] is actions.retrieve_tasks_predictions
    stock = stock_entry()
    for key in ('title', 'order', 'permission', 'dialog'):
        assert registered[key] == stock[key], key


def run(client, project, body=None):
    body = body or {'selectedItems': {'all': True, 'excluded': []}}
    url = f'/api/dm/actions?id={actions.ACTION_ID}&project={project.id}'
    return client.post(url, json.dumps(body), content_type='application/json')


def test_a_project_without_a_model_is_told_to_connect_one(client_owner, user):
    from tasks.models import Task

    project = make_project(user, IMAGE_BOXES)
    Task.objects.create(project=project, data={'image': '/data/upload/1/a.png'})
    response = run(client_owner, project)
    assert response.status_code == 400
    assert response.json()['detail'] == 'No model is connected to this project: connect one in Settings → Model.'


def test_a_member_of_another_organization_is_refused(client_stranger, user):
    project = make_project(user, IMAGE_BOXES)
    assert run(client_stranger, project).status_code == 403


def test_the_answer_names_the_tasks_without_a_prediction_and_the_first_reasons():
    reasons = {7: 'cannot read /data/upload/1/a.png from Label Studio: 404'}
    text = actions.describe_missing(30, list(range(7, 29)), 'v3', reasons)
    first, second = text.splitlines()
    assert first == (
        '8 of 30 tasks have a prediction of the served model (v3); 22 got none: tasks '
        + ', '.join(str(i) for i in range(7, 27))
        + ' and 2 more.'
    )
    assert second == 'Task 7: cannot read /data/upload/1/a.png from Label Studio: 404'
    assert actions.describe_missing(2, [5], 'v1', {}).startswith(
        '1 of 2 tasks have a prediction of the served model (v1); 1 got none: task 5.'
    )
