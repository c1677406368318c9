"""Saving an ML backend whose host the egress guard does not allow is refused, whichever way it is saved.

In-process, on Label Studio's own model and API with the guard that ``settings.test`` installed. The real
server (a backend row written around the ORM, the API over HTTP) is in ``test_egress_server.py``.
"""

import json
import logging
import subprocess
import sys

import pytest

from ls_extensions.privacy import backend_hosts, egress
from ls_extensions.privacy.backend_hosts import BackendHostNotAllowed
from tests.support.server import REPO

SETTING = egress.ALLOWED_HOSTS_ENV


@pytest.fixture
def allowed(monkeypatch):
    """Add rules to this process's guard for one test, as the operator's LS_EXT_ALLOWED_HOSTS would."""
    guard = egress.get_guard()
    monkeypatch.setattr(guard, 'rules', list(guard.rules))  # restored after the test

    def allow(entry):
        guard.allow(entry, why='test')

    return allow


def loopback_backend(project, title='local'):
    """A backend row on loopback, written without signals (its creation would add Label Studio's webhook)."""
    from ml.models import MLBackend

    (backend,) = MLBackend.objects.bulk_create([MLBackend(project=project, url='http://127.0.0.1:9/', title=title)])
    return MLBackend.objects.get(pk=backend.pk)


@pytest.mark.parametrize(
    ('url', 'reason'),
    [
        ('http://127.0.0.1:9090', None),
        ('http://localhost:9090/', None),
        ('https://[::1]/', None),
        ('http://gpu-box.lab:9090', f'add gpu-box.lab:9090 to {SETTING}'),
        ('http://gpu-box.lab', f'add gpu-box.lab:80 to {SETTING}'),
        ('https://203.0.113.5/predict', f'add 203.0.113.5:443 to {SETTING}'),
        ('http://[2001:db8::5]:9090', f'add [2001:db8::5]:9090 to {SETTING}'),
        ('http://127.0.0.1:9090@gpu-box.lab/', f'add gpu-box.lab:80 to {SETTING}'),  # the host is after the @
        ('ftp://127.0.0.1/', 'not an http:// or https:// URL with a host'),
        ('localhost:9090', 'not an http:// or https:// URL with a host'),
        ('http://gpu-box.lab:99999', 'Port out of range'),
    ],
)
def test_the_rule_for_a_backend_url(url, reason):
    found = backend_hosts.refusal(url)
    if reason is None:
        assert found is None
    else:
        assert reason in found, found


def test_the_operator_rules_decide_with_their_ports():
    guard = egress.Guard(egress.parse_allow_list('gpu-box.lab:9090, 10.20.0.0/16'))
    assert backend_hosts.refusal('http://gpu-box.lab:9090/', guard) is None
    assert backend_hosts.refusal('http://10.20.3.4:8000', guard) is None
    assert SETTING in backend_hosts.refusal('http://gpu-box.lab:9091/', guard)
    assert SETTING in backend_hosts.refusal('http://10.21.0.1:8000', guard)


def test_a_resolution_does_not_make_a_backend_host_allowed():
    """Only the operator's rules count for a saved URL, not addresses an allowed name once resolved to."""
    guard = egress.Guard(egress.parse_allow_list('files.lab:443'))
    guard.remember_resolution('files.lab', 443, [(2, 1, 6, '', ('192.0.2.44', 443))])
    assert guard.is_allowed('192.0.2.44', 443)
    assert SETTING in backend_hosts.refusal('https://192.0.2.44/', guard)


def test_creating_a_backend_in_a_shell_is_refused_and_writes_nothing(image_project):
    from ml.models import MLBackend
    from webhooks.models import Webhook

    with pytest.raises(BackendHostNotAllowed) as refused:
        MLBackend.objects.create(project=image_project, url='http://gpu-box.invalid:9090', title='remote')
    assert f'add gpu-box.invalid:9090 to {SETTING}' in str(refused.value)
    assert not MLBackend.objects.exists() and not Webhook.objects.exists()


def test_changing_a_url_to_an_unlisted_host_is_refused(image_project):
    from ml.models import MLBackend

    backend = loopback_backend(image_project)
    backend.url = 'http://203.0.113.5:9090'
    with pytest.raises(BackendHostNotAllowed, match=SETTING):
        backend.save()
    with pytest.raises(BackendHostNotAllowed, match=SETTING):
        backend.save(update_fields=['url', 'title'])
    assert MLBackend.objects.get(pk=backend.pk).url == 'http://127.0.0.1:9/'


def test_changing_a_url_to_an_allowed_host_is_saved(image_project, allowed):
    from ml.models import MLBackend

    allowed('gpu-box.lab:9090')
    backend = loopback_backend(image_project)
    backend.url = 'http://gpu-box.lab:9090'
    backend.save()
    assert MLBackend.objects.get(pk=backend.pk).url == 'http://gpu-box.lab:9090'


def test_a_row_written_around_the_orm_is_refreshed_without_a_connection(image_project, caplog):
    """Label Studio re-saves every backend when it refreshes its state: that save is not refused,
    and the refresh itself (its health check) is what the guard refuses."""
    from ml.models import MLBackend

    (row,) = MLBackend.objects.bulk_create([MLBackend(project=image_project, url='http://gpu-box.invalid:9090')])
    backend = MLBackend.objects.get(pk=row.pk)
    backend.state = 'CO'  # pretend it was connected once
    backend.save(update_fields=['state'])
    with caplog.at_level(logging.WARNING, logger='ls_extensions.egress'):
        backend.update_state()  # Label Studio's own: health check, then setup (with the token) if healthy
    backend.refresh_from_db()
    assert backend.get_state_display() == 'Disconnected'
    refused = [r.getMessage() for r in caplog.records if r.name == 'ls_extensions.egress']
    assert refused and all('refused outbound DNS look-up to gpu-box.invalid:9090' in m for m in refused), refused


def test_the_api_refuses_an_unlisted_host_with_a_400_and_writes_nothing(image_project, client_owner, caplog):
    from ml.models import MLBackend
    from webhooks.models import Webhook

    body = {'url': 'http://gpu-box.invalid:9090', 'project': image_project.id, 'title': 'remote'}
    with caplog.at_level(logging.WARNING, logger='ls_extensions.egress'):
        response = client_owner.post('/api/ml/', body, content_type='application/json')
        form = client_owner.post('/api/ml/', body)  # the UI's form encoding is parsed the same way
    for answer in (response, form):
        assert answer.status_code == 400, answer.content
        (message,) = answer.json()['validation_errors']['url']
        assert f'add gpu-box.invalid:9090 to {SETTING}' in message
    assert not MLBackend.objects.exists() and not Webhook.objects.exists()
    looked_up = [r.getMessage() for r in caplog.records if r.name == 'ls_extensions.egress']
    assert looked_up == []  # refused before Label Studio's serializer looked the name up


@pytest.mark.parametrize('method', ['patch', 'put'])
def test_the_api_refuses_changing_a_backend_to_an_unlisted_host(method, image_project, client_owner):
    from ml.models import MLBackend

    backend = loopback_backend(image_project)
    body = {'url': 'http://203.0.113.5:9090', 'project': image_project.id, 'title': 'moved'}
    response = getattr(client_owner, method)(f'/api/ml/{backend.pk}', body, content_type='application/json')
    assert response.status_code == 400, response.content
    assert f'add 203.0.113.5:9090 to {SETTING}' in json.dumps(response.json())
    stored = MLBackend.objects.get(pk=backend.pk)
    assert (stored.url, stored.title) == ('http://127.0.0.1:9/', 'local')


@pytest.mark.parametrize(
    'url',
    ['ftp://127.0.0.1/', 'http://gpu-box.lab:99999', 'http://', 12345, 'http://[::1'],
)
def test_the_api_answers_a_malformed_url_with_a_400(url, image_project, client_owner):
    from ml.models import MLBackend

    body = {'url': url, 'project': image_project.id}
    response = client_owner.post('/api/ml/', body, content_type='application/json')
    assert response.status_code == 400, response.content
    assert not MLBackend.objects.exists()


def test_anonymous_callers_get_label_studio_s_401_first(image_project, client):
    from ml.models import MLBackend

    body = {'url': 'http://gpu-box.invalid:9090', 'project': image_project.id}
    response = client.post('/api/ml/', body, content_type='application/json')
    assert response.status_code == 401, response.content
    assert SETTING not in response.content.decode() and not MLBackend.objects.exists()


def _in_a_label_studio_process(argv, code):
    """Run ``code`` after django.setup() in a process whose command line is ``argv``, as label-studio's is."""
    script = f"""
import json, sys
sys.argv = {argv!r}
import label_studio.core.argparser  # label_studio.server imports it before it parses and sets Django up
import django
django.setup()
{code}
"""
    env = {'PATH': '/usr/bin:/bin', 'DJANGO_SETTINGS_MODULE': 'settings.offline', 'LS_EXT_ALLOWED_HOSTS': ''}
    result = subprocess.run(
        [sys.executable, '-c', script], env=env, cwd=REPO, capture_output=True, text=True, timeout=180
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


CHECK_HOSTS = """
from ls_extensions.privacy import backend_hosts
urls = ['http://gpu-box.lab:9090', 'http://gpu-box.lab:9091', 'https://10.0.0.7/', 'http://other.lab:9090']
print(json.dumps({url: backend_hosts.refusal(url) is None for url in urls}))
"""


def test_backends_named_on_the_command_line_are_allowed_in_that_process(tmp_path):
    argv = [
        'label-studio',
        'start',
        'boxes',
        '--init',
        '--data-dir',
        str(tmp_path),
        '--ml-backends',
        'http://gpu-box.lab:9090',
        'https://10.0.0.7',
    ]
    allowed = _in_a_label_studio_process(argv, CHECK_HOSTS)
    assert allowed == {
        'http://gpu-box.lab:9090': True,
        'http://gpu-box.lab:9091': False,  # the port it was named with, not every port
        'https://10.0.0.7/': True,
        'http://other.lab:9090': False,
    }


def test_the_same_urls_allow_nothing_outside_label_studio_s_command_line(tmp_path):
    """Only label-studio's own argument ``--ml-backends`` counts: another program's argv is not read."""
    argv = ['celery', '-A', 'ls_extensions', 'worker', '--ml-backends', 'http://gpu-box.lab:9090']
    allowed = _in_a_label_studio_process(argv, CHECK_HOSTS)
    assert not any(allowed.values())
