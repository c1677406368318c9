"""The same fixtures and API on PostgreSQL (run by `make test` in its second pass)."""

import pytest
from django.db import connection

pytestmark = pytest.mark.postgres


def test_runs_on_postgresql(db):
    assert connection.vendor == 'postgresql'


def test_project_api_on_postgresql(client_owner, image_project, image_tasks, predictions):
    response = client_owner.get(f'/api/tasks?project={image_project.id}')
    assert response.status_code == 200, response.content
    assert response.json()['total'] == 5
