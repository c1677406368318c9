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


@pytest.mark.parametrize(
    'entry',
    [
        'http://',
        'host:99999',
        'host:abc',
        'bad host!',
        '10.0.0.0/99',
        '[::1]x',
        '*.',
        '[zz',
        '[::1:80',
        'http://[zz',
    ],
)
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


class Clock:
    """Time the test moves (the guard takes a clock so that expiry is tested without sleeping)."""

    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def answer(*addresses, port=443):
    """What getaddrinfo returns for these addresses."""
    return [(socket.AF_INET6 if ':' in a else socket.AF_INET, socket.SOCK_STREAM, 6, '', (a, port)) for a in addresses]


def test_allowed_name_lets_its_addresses_through():
    guard = Guard(parse_allow_list('files.lab'))
    guard.check('dns', 'files.lab', 443)
    guard.remember_resolution('files.lab', 443, answer('192.0.2.44'))
    guard.check('connect', '192.0.2.44', 443)  # resolved from an allowed name
    with pytest.raises(egress.EgressBlocked):
        guard.check('connect', '192.0.2.45', 443)


def test_a_resolution_opens_its_address_only_on_the_port_the_rule_allows():
    guard = Guard(parse_allow_list('gpu-box.lab:9000'))
    guard.check('dns', 'gpu-box.lab', 9000)
    guard.remember_resolution('gpu-box.lab', 9000, answer('192.0.2.9', '2001:db8::9', port=9000))
    assert guard.is_allowed('192.0.2.9', 9000) and guard.is_allowed('2001:db8::9', 9000)
    for port in (22, 5432, 9001):
        with pytest.raises(egress.EgressBlocked):
            guard.check('connect', '192.0.2.9', port)


def test_a_look_up_without_a_port_binds_the_address_to_the_rules_port():
    guard = Guard(parse_allow_list('gpu-box.lab:9000, gpu-box.lab:9001'))
    guard.check('dns', 'gpu-box.lab', None)  # gethostbyname-style: the name is allowed, the port comes later
    guard.remember_resolution('gpu-box.lab', None, answer('192.0.2.9'))
    assert guard.is_allowed('192.0.2.9', 9000) and guard.is_allowed('192.0.2.9', 9001)
    assert not guard.is_allowed('192.0.2.9', 9002)


def test_a_resolution_expires_and_a_new_look_up_renews_it():
    clock = Clock()
    guard = Guard(parse_allow_list('files.lab'), resolution_seconds=300, clock=clock)
    guard.remember_resolution('files.lab', 443, answer('192.0.2.44'))
    clock.now += 299
    assert guard.is_allowed('192.0.2.44', 443)
    clock.now += 2
    with pytest.raises(egress.EgressBlocked):
        guard.check('connect', '192.0.2.44', 443)
    guard.remember_resolution('files.lab', 443, answer('192.0.2.44'))
    assert guard.is_allowed('192.0.2.44', 443)
    clock.now += 301
    guard.remember_resolution('files.lab', 443, answer('192.0.2.45'))  # expired entries are dropped
    assert list(guard.resolutions) == [('192.0.2.45', None)]


def test_names_allowed_without_a_rule_open_no_address():
    """This machine's own name may be looked up (Django, Celery), but its answer opens nothing."""
    guard = Guard(parse_allow_list('files.lab:443'))
    guard.check('dns', guard.own_hostname, None)
    guard.remember_resolution(guard.own_hostname, None, answer('192.0.2.60'))
    guard.remember_resolution('other.lab', 443, answer('192.0.2.61'))  # a name no rule allows
    assert guard.resolutions == {}
    assert not guard.is_allowed('192.0.2.60', 80) and not guard.is_allowed('192.0.2.61', 443)


def test_service_names_count_as_their_port_numbers():
    rule = parse_rule('files.lab:443')
    assert rule.matches('files.lab', 'https') and rule.matches('files.lab', b'443')
    assert not rule.matches('files.lab', 'http')


@pytest.mark.parametrize(
    'call',
    [
        pytest.param(lambda s: s.sendto(b'x', ('192.0.2.1', 9)), id='sendto(data, address)'),
        pytest.param(lambda s: s.sendto(b'x', 0, ('192.0.2.1', 9)), id='sendto(data, flags, address)'),
        pytest.param(lambda s: s.sendmsg([b'x'], [], 0, ('192.0.2.1', 9)), id='sendmsg(..., address)'),
        pytest.param(lambda s: s.connect(('192.0.2.1', 9)), id='connect'),
    ],
)
def test_datagrams_with_their_own_destination_are_refused(call):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock, pytest.raises(egress.EgressBlocked):
        call(sock)


def test_datagrams_to_loopback_still_work():
    with (
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as server,
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender,
    ):
        server.bind(('127.0.0.1', 0))
        server.settimeout(5)
        sender.sendmsg([b'one'], [], 0, server.getsockname())
        sender.sendto(b'two', 0, server.getsockname())
        assert {server.recv(16), server.recv(16)} == {b'one', b'two'}


@pytest.mark.parametrize(
    'call',
    [
        pytest.param(lambda: socket.gethostbyaddr('192.0.2.1'), id='gethostbyaddr(address)'),
        pytest.param(lambda: socket.gethostbyaddr('telemetry.example.com'), id='gethostbyaddr(name)'),
        pytest.param(lambda: socket.getnameinfo(('192.0.2.1', 443), 0), id='getnameinfo'),
        pytest.param(lambda: socket.getnameinfo(('2001:db8::1', 443, 0, 0), socket.NI_NAMEREQD), id='getnameinfo v6'),
    ],
)
def test_reverse_look_ups_are_refused(call):
    with pytest.raises(socket.gaierror, match='egress guard'):
        call()


def test_reverse_look_ups_that_stay_local_still_work():
    assert socket.getnameinfo(('192.0.2.1', 443), socket.NI_NUMERICHOST | socket.NI_NUMERICSERV) == ('192.0.2.1', '443')
    assert socket.gethostbyaddr('127.0.0.1')[2] == ['127.0.0.1']
    # socket.getfqdn() (Django's DNS_NAME for mail) does this with the machine's own name
    assert socket.gethostbyaddr(socket.gethostname())[0]


def test_an_address_literal_is_not_a_look_up():
    """gethostbyname('192.0.2.7') asks nobody; the connection to it is what the guard decides on."""
    assert socket.gethostbyname('192.0.2.7') == '192.0.2.7'
    assert socket.gethostbyname_ex('192.0.2.7')[2] == ['192.0.2.7']
    with pytest.raises(ConnectionRefusedError, match='egress guard'):
        socket.create_connection(('192.0.2.7', 80), timeout=1)


def test_ml_backend_rows_allow_nothing(image_project):
    """The rule changed: a backend row in the database (however it got there) opens no destination."""
    from ml.models import MLBackend

    guard = egress.get_guard()
    before = list(guard.rules)
    # bulk_create sends no signal: the refusal at save (test_backend_hosts.py) is not what stops it here
    MLBackend.objects.bulk_create([MLBackend(project=image_project, url='http://gpu-box.lab:9090', title='detector')])
    assert not guard.is_allowed('gpu-box.lab', 9090)
    assert guard.rules == before
    with pytest.raises(socket.gaierror, match='egress guard'):
        socket.getaddrinfo('gpu-box.lab', 9090)
    assert not hasattr(guard, 'add_provider')  # the mechanism that read backend rows on a miss is gone


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
