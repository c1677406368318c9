"""The egress guard: what it allows, what it refuses, and what it says."""

import json
import socket
import subprocess
import sys

import pytest

from ls_extensions.privacy import egress
from ls_extensions.privacy.egress import AllowListError, Guard, parse_allow_list, parse_rule


@pytest.mark.parametrize(
    ('entry', 'host', 'port', 'allowed'),
    [
        ('gpu-box', 'gpu-box', 9090, True),
        ('gpu-box', 'GPU-BOX.', 80, True),
        ('gpu-box', 'other-box', 80, False),
        ('gpu-box:9090', 'gpu-box', 9090, True),
        ('gpu-box:9090', 'gpu-box', 9091, False),
        ('*.storage.lab', 'minio.storage.lab', 443, True),
        ('*.storage.lab', 'storage.lab', 443, False),
        ('10.1.0.0/16', '10.1.2.3', 5432, True),
        ('10.1.0.0/16', '10.2.0.1', 5432, False),
        ('192.0.2.7', '192.0.2.7', 80, True),
        ('[2001:db8::1]:8080', '2001:db8::1', 8080, True),
        ('http://ml.lab:9090/predict', 'ml.lab', 9090, True),
        ('http://ml.lab:9090/predict', 'ml.lab', 80, False),
    ],
)
def test_rules_match_what_they_name(entry, host, port, allowed):
    assert parse_rule(entry).matches(host, port) is allowed


@pytest.mark.parametrize('entry', ['http://', 'host:99999', 'host:abc', 'bad host!', '10.0.0.0/99', '[::1]x', '*.'])
def test_unparsable_entries_are_named(entry):
    with pytest.raises(AllowListError, match='cannot parse entry'):
        parse_allow_list(f'good.host, {entry}')


def test_allow_list_takes_commas_and_spaces():
    rules = parse_allow_list('a.lab, b.lab c.lab:80')
    assert [r.host for r in rules] == ['a.lab', 'b.lab', 'c.lab']


@pytest.mark.parametrize('host', ['localhost', '127.0.0.1', '127.8.9.10', '::1', '0.0.0.0', 'app.localhost', None])
def test_loopback_is_always_allowed(host):
    assert egress.is_loopback(host)


@pytest.mark.parametrize('host', ['pypi.org', '10.0.0.1', '192.168.1.1', '8.8.8.8', '2001:db8::1'])
def test_everything_else_is_not_loopback(host):
    assert not egress.is_loopback(host)


def test_refusal_is_logged_once_with_destination_and_setting(tmp_path, caplog):
    guard = Guard(log_path=tmp_path / 'egress.jsonl')
    with caplog.at_level('WARNING', logger='ls_extensions.egress'), pytest.raises(egress.EgressBlocked):
        guard.check('connect', '192.0.2.10', 443)
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 1
    assert '192.0.2.10:443' in messages[0] and 'LS_EXT_ALLOWED_HOSTS' in messages[0]
    event = json.loads((tmp_path / 'egress.jsonl').read_text())
    assert event['verdict'] == 'blocked' and event['host'] == '192.0.2.10' and event['kind'] == 'connect'


def test_dns_refusal_is_a_gaierror_so_clients_report_a_lookup_failure():
    with pytest.raises(socket.gaierror):
        Guard().check('dns', 'telemetry.example.com', 443)


def test_the_guard_is_installed_in_this_process_and_refuses_for_real():
    """settings.test installed it: the socket module itself refuses before any packet leaves."""
    assert egress.get_guard() is not None
    with pytest.raises(socket.gaierror, match='egress guard'):
        socket.getaddrinfo('pypi.org', 443)
    with pytest.raises(ConnectionRefusedError, match='egress guard'):
        socket.create_connection(('192.0.2.1', 80), timeout=1)


def test_requests_sees_a_connection_error():
    import requests

    with pytest.raises(requests.ConnectionError):
        requests.get('https://pypi.org/pypi/label-studio/json', timeout=2)


def test_loopback_connections_still_work():
    with socket.socket() as server:
        server.bind(('127.0.0.1', 0))
        server.listen()
        with socket.create_connection(server.getsockname(), timeout=2):
            pass


def test_allowed_name_lets_its_addresses_through():
    guard = Guard(parse_allow_list('files.lab'))
    guard.check('dns', 'files.lab', 443)
    guard.remember_resolution([(socket.AF_INET, socket.SOCK_STREAM, 6, '', ('192.0.2.44', 443))])
    guard.check('connect', '192.0.2.44', 443)  # resolved from an allowed name
    with pytest.raises(egress.EgressBlocked):
        guard.check('connect', '192.0.2.45', 443)


def test_ml_backend_hosts_are_allowed_once_connected_to_a_project(image_project):
    from ml.models import MLBackend

    from ls_extensions.privacy.allow_list import ml_backend_hosts

    guard = Guard()
    guard.add_provider(ml_backend_hosts)
    # bulk_create: MLBackend.save() would resolve the (fictitious) host for its SSRF check
    MLBackend.objects.bulk_create([MLBackend(project=image_project, url='http://gpu-box.lab:9090', title='detector')])
    assert guard.is_allowed('gpu-box.lab', 9090)
    assert not guard.is_allowed('gpu-box.lab', 9091)


def test_configured_database_and_broker_hosts_are_allowed(settings):
    from ls_extensions.privacy.allow_list import configured_service_hosts

    settings.DATABASES = {'default': {**settings.DATABASES['default'], 'HOST': 'db.lab'}}
    settings.CELERY_BROKER_URL = 'redis://:secret@broker.lab:6379/0'
    hosts = configured_service_hosts()
    assert 'db.lab' in hosts and 'broker.lab' in hosts


def test_a_bad_allow_list_stops_start_up(tmp_path):
    env = {
        'PATH': '/usr/bin:/bin',
        'DJANGO_SETTINGS_MODULE': 'settings.offline',
        'LABEL_STUDIO_BASE_DATA_DIR': str(tmp_path),
        'LS_EXT_ALLOWED_HOSTS': 'ml.lab:notaport',
    }
    result = subprocess.run(
        [sys.executable, '-c', 'import django; django.setup()'], env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode != 0
    assert "LS_EXT_ALLOWED_HOSTS: cannot parse entry 'ml.lab:notaport'" in result.stderr
