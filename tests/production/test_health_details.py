"""The web readiness check tells anonymous callers which check failed, never the exception text.

The fault is real: the broker URL names a user, a password and a loopback port where nothing listens,
so kombu's real Redis transport fails with a text that names the address. Anonymous callers (and
signed-in users who are not staff) get ``"error": "failed"``; the text is in the server log; staff see it.
The database down is in test_layout.py (PostgreSQL stopped under the running layout); here, that the
health paths make none of the queries Label Studio's middleware makes on every request (which is why,
with the database down, they used to be a 500 page).
"""

import json
import logging

import pytest

from tests.conftest import logged_in_client, make_user
from tests.support.server import free_port

pytestmark = pytest.mark.django_db

URL = '/api/ls-ext/health/'
BROKER_USER, BROKER_PASSWORD = 'broker-user', 'broker-pa55word'


@pytest.fixture
def broker_down(settings):
    port = free_port()  # bound and released: nothing listens there
    settings.CELERY_BROKER_URL = f'redis://{BROKER_USER}:{BROKER_PASSWORD}@127.0.0.1:{port}/0'
    return port


def secrets_of(port):
    return [str(port), BROKER_USER, BROKER_PASSWORD, '127.0.0.1', 'refused', 'Error ']


def test_anonymous_callers_learn_which_check_failed_not_why(client, broker_down, caplog):
    with caplog.at_level(logging.WARNING, logger='ls_extensions.health.checks'):
        response = client.get(URL)
    assert response.status_code == 503
    payload = response.json()
    assert payload['status'] == 'unavailable' and 'broker' in payload['failed']
    assert payload['checks']['broker']['ok'] is False and payload['checks']['broker']['error'] == 'failed'
    assert payload['checks']['database']['ok'] is True  # the other checks still say how they went
    assert 'host' not in payload
    text = response.content.decode()
    assert not [s for s in secrets_of(broker_down) if s in text], text
    logged = [r.getMessage() for r in caplog.records if 'health check broker failed' in r.getMessage()]
    assert logged and str(broker_down) in logged[0]  # the operator finds the reason in the log


def test_a_signed_in_user_who_is_not_staff_sees_no_more(broker_down):
    client = logged_in_client(make_user('annotator@example.org'))
    response = client.get(URL)
    assert response.status_code == 503 and response.json()['checks']['broker']['error'] == 'failed'
    assert str(broker_down) not in response.content.decode()


def test_staff_see_the_exception_text(broker_down):
    staff = make_user('admin@example.org')
    staff.is_staff = True
    staff.save(update_fields=['is_staff'])
    response = logged_in_client(staff).get(URL)
    assert response.status_code == 503
    payload = response.json()
    assert str(broker_down) in payload['checks']['broker']['error'], payload
    assert payload['host']


def test_a_healthy_answer_has_the_same_shape(client):
    response = client.get(URL)
    payload = json.loads(response.content)
    assert set(payload) == {'status', 'process', 'pid', 'failed', 'checks'}
    assert all(check['ok'] or check['error'] == 'failed' for check in payload['checks'].values())


def test_the_health_paths_run_ahead_of_label_studios_middleware(client, django_assert_num_queries):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    assert client.get('/user/login/').status_code == 200  # any other page: Label Studio's organization query
    with CaptureQueriesContext(connection) as page:
        client.get('/user/login/')
    assert any('FROM "organization"' in q['sql'] for q in page.captured_queries), page.captured_queries
    with CaptureQueriesContext(connection) as health:
        client.get(URL)
    assert health.captured_queries and not [q for q in health.captured_queries if '"organization"' in q['sql']]
    with django_assert_num_queries(0):
        assert client.get('/api/ls-ext/health/live/').status_code == 200
