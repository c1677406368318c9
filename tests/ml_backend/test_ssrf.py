"""SSRF: Label Studio's checks as it ships them, except for the ML backends the operator lists.

Through Label Studio's own API (``/api/ml``, ``/api/webhooks``) with a real model-server stand-in on
loopback that records every request, so "refused before any request left" is observed, not assumed.
The test settings list ``127.0.0.1`` (settings/test.py); tests of an unlisted URL narrow the list.
"""

import json
import threading
from wsgiref.simple_server import WSGIRequestHandler, make_server

import pytest
from django.test import override_settings

from ls_extensions.ml_backend import ssrf
from ls_extensions.privacy.egress import AllowListError
from tests.conftest import logged_in_client


class _Quiet(WSGIRequestHandler):
    def log_message(self, *args):
        pass


class RecordingBackend:
    """Answers /health and /setup as an ML backend does and records each path it is asked for."""

    def __init__(self):
        self.paths = []
        self.server = make_server('127.0.0.1', 0, self.app, handler_class=_Quiet)
        self.url = f'http://127.0.0.1:{self.server.server_port}'
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def app(self, environ, start_response):
        self.paths.append(environ['PATH_INFO'])
        body = json.dumps({'status': 'UP', 'model_version': 'v0'}).encode()
        start_response('200 OK', [('Content-Type', 'application/json'), ('Content-Length', str(len(body)))])
        return [body]

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def backend():
    with RecordingBackend() as b:
        yield b


@pytest.fixture
def owner_client(user):
    return logged_in_client(user)


def only_listed(*entries):
    """The settings the overlay builds for ``LS_EXT_ML_BACKEND_URLS=<entries>``."""
    return override_settings(**ssrf.ml_backend_settings({ssrf.ML_BACKEND_URLS_ENV: ' '.join(entries)}, True))


def connect(client, project, url, path='/api/ml/'):
    return client.post(path, {'url': url, 'project': project.id, 'title': 'm'}, content_type='application/json')


# --- the pure part -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ('url', 'listed'),
    [
        ('http://127.0.0.1:9090', True),
        ('http://127.0.0.1:9090/', True),
        ('https://127.0.0.1:9090/predict', True),
        ('http://127.0.0.1:9091', False),  # another port of the same host
        ('http://127.0.0.1', False),  # port 80
        ('http://localhost:9090', True),
        ('http://LOCALHOST.:9090', True),
        ('http://[::1]:9090', False),  # listed by name/address as typed, not by what it resolves to
        ('http://127.0.0.1:9090@169.254.169.254/', False),  # userinfo: the connection goes to .254
        ('http://169.254.169.254#@127.0.0.1:9090', False),
        ('ftp://127.0.0.1:9090', False),
        ('http://', False),
        ('http://gpu-box.lab:9090', True),
        ('http://10.0.0.7:8000', True),
        ('http://10.0.1.7:8000', False),
    ],
)
def test_is_listed_matches_the_host_and_port_a_connection_would_use(url, listed):
    entries = ssrf.parse_backend_urls('http://127.0.0.1:9090, localhost:9090 gpu-box.lab 10.0.0.0/24')
    assert ssrf.is_listed(url, entries) is listed


def test_a_bad_entry_stops_start_up_naming_the_variable():
    with pytest.raises(AllowListError, match=r'LS_EXT_ML_BACKEND_URLS: .*http://:9090'):
        ssrf.parse_backend_urls('127.0.0.1:9090 http://:9090')


@pytest.mark.parametrize(
    ('listed', 'label_studio_switch', 'ours', 'label_studios'),
    [
        ('', True, False, True),  # nothing listed: Label Studio's check, as it ships
        ('127.0.0.1:9090', True, True, False),  # listed: ours instead, which skips the listed URLs
        ('127.0.0.1:9090', False, False, False),  # the operator switched Label Studio's check off
        ('', False, False, False),
    ],
)
def test_exactly_one_check_of_ml_backend_urls_is_on(listed, label_studio_switch, ours, label_studios):
    got = ssrf.ml_backend_settings({ssrf.ML_BACKEND_URLS_ENV: listed}, label_studio_switch)
    assert (got['LS_EXT_ML_URL_CHECK'], got['ML_BLOCK_LOCAL_IP']) == (ours, label_studios)


def test_env_allows_loopback_or_the_given_urls():
    assert ssrf.env() == {'LS_EXT_ML_BACKEND_URLS': '127.0.0.1'}
    assert ssrf.env('http://127.0.0.1:9090', 'http://gpu:1') == {
        'LS_EXT_ML_BACKEND_URLS': 'http://127.0.0.1:9090 http://gpu:1'
    }


# --- Label Studio's checks everywhere else ------------------------------------------------------------------


def test_label_studio_block_list_is_its_default():
    """What webhooks, export media, import from URL and storage endpoints are checked against."""
    from core.utils.exceptions import SsrfBlockedUrlError
    from core.utils.io import validate_ip
    from django.conf import settings

    assert settings.SSRF_PROTECTION_ENABLED is True
    assert settings.USE_DEFAULT_BANNED_SUBNETS is True and settings.USER_ADDITIONAL_BANNED_SUBNETS == []
    for address in ('127.0.0.1', '::1', '10.1.2.3', '169.254.169.254'):
        with pytest.raises(SsrfBlockedUrlError, match='reserved network address'):
            validate_ip(address)


@pytest.mark.django_db
def test_a_webhook_to_loopback_is_refused(owner_client, image_project, backend):
    response = owner_client.post(
        '/api/webhooks/', {'project': image_project.id, 'url': backend.url + '/hook'}, content_type='application/json'
    )
    assert response.status_code == 403, response.content
    assert 'reserved network address' in response.json()['detail']
    assert backend.paths == []


# --- ML backends: the listed ones connect, the others get Label Studio's check ------------------------------


@pytest.mark.django_db
def test_a_listed_backend_on_loopback_connects(owner_client, image_project, backend):
    from ml.models import MLBackend

    with only_listed(backend.url):
        response = connect(owner_client, image_project, backend.url)
    assert response.status_code == 201, response.content
    assert response.json()['readable_state'] == 'Connected'
    assert {'/health', '/setup'} <= set(backend.paths)
    # Label Studio creates its webhook for a backend only where webhooks may go: not to loopback
    assert not MLBackend.objects.get(pk=response.json()['id']).project.webhooks.exists()


@pytest.mark.django_db
@pytest.mark.parametrize('path', ['/api/ml/', '/api/ml'])
def test_an_unlisted_loopback_backend_is_refused_before_any_request(owner_client, image_project, backend, path):
    from ml.models import MLBackend

    with only_listed('127.0.0.1:1'):
        response = connect(owner_client, image_project, backend.url, path)
    assert response.status_code == 403, response.content
    assert 'reserved network address' in response.json()['detail']
    assert backend.paths == []  # no health check, no setup with the creator's token
    assert not MLBackend.objects.filter(project=image_project).exists()


@pytest.fixture
def guard_allows(monkeypatch):
    """Let the egress guard pass a host, so that what answers is Label Studio's SSRF check behind it."""
    from ls_extensions.privacy import egress

    guard = egress.get_guard()

    def allow(url):
        if guard is not None:
            monkeypatch.setattr(guard, 'rules', [*guard.rules, egress.parse_rule(url)])

    return allow


@pytest.mark.django_db
@pytest.mark.parametrize('url', ['http://10.0.0.9:9090', 'http://169.254.169.254/latest/meta-data/'])
def test_private_and_metadata_addresses_stay_refused(owner_client, image_project, guard_allows, url):
    guard_allows(url)
    response = connect(owner_client, image_project, url)
    assert response.status_code == 403, response.content
    assert 'reserved network address' in response.json()['detail']


@pytest.mark.django_db
def test_an_address_label_studio_cannot_resolve_is_a_400(owner_client, image_project):
    response = connect(owner_client, image_project, 'http://[::1]:9')
    assert response.status_code == 400, response.content
    assert "Can't resolve hostname" in json.dumps(response.json()['validation_errors'])


@pytest.mark.django_db
def test_changing_a_backend_url_to_an_unlisted_address_is_refused(owner_client, image_project, backend):
    from ml.models import MLBackend

    with only_listed(backend.url):
        created = connect(owner_client, image_project, backend.url).json()
        backend.paths.clear()
        response = owner_client.patch(
            f'/api/ml/{created["id"]}', {'url': 'http://127.0.0.1:5432'}, content_type='application/json'
        )
    assert response.status_code == 403, response.content
    assert 'reserved network address' in response.json()['detail']
    assert MLBackend.objects.get(pk=created['id']).url == backend.url


@pytest.mark.django_db
def test_with_nothing_listed_label_studio_refuses_loopback_itself(owner_client, image_project, backend):
    """The default (no LS_EXT_ML_BACKEND_URLS): Label Studio's own ML_BLOCK_LOCAL_IP check, ours off."""
    with only_listed():
        from django.conf import settings

        assert settings.ML_BLOCK_LOCAL_IP is True and settings.LS_EXT_ML_URL_CHECK is False
        response = connect(owner_client, image_project, backend.url)
    assert response.status_code == 403, response.content
    assert 'reserved network address' in response.json()['detail']
    assert backend.paths == []


# --- the one re-wiring: Label Studio's webhook receiver for new backends -------------------------------------


@pytest.mark.django_db
def test_label_studio_still_refuses_the_webhook_of_a_loopback_backend(image_project):
    """Why ssrf_hooks swaps ``create_ml_webhook``: it raises out of save(). If this fails, drop the swap."""
    from core.utils.exceptions import SsrfBlockedUrlError
    from django.db.models.signals import post_save
    from ml.models import MLBackend, create_ml_webhook

    from ls_extensions.ml_backend import ssrf_hooks

    receivers, _async = post_save._live_receivers(MLBackend)
    assert ssrf_hooks.create_ml_webhook_unless_refused in receivers and create_ml_webhook not in receivers
    (backend,) = MLBackend.objects.bulk_create([MLBackend(project=image_project, url='http://127.0.0.1:9', title='m')])
    with pytest.raises(SsrfBlockedUrlError):
        create_ml_webhook(MLBackend, backend, created=True)


@pytest.mark.django_db
def test_only_a_listed_backend_is_saved_without_its_webhook(image_project):
    from core.utils.exceptions import SsrfBlockedUrlError
    from ml.models import MLBackend

    with only_listed('127.0.0.1:9'):
        MLBackend.objects.create(project=image_project, url='http://127.0.0.1:9', title='listed')
        with pytest.raises(SsrfBlockedUrlError):  # as in Label Studio
            MLBackend.objects.create(project=image_project, url='http://127.0.0.1:10', title='unlisted')
    assert not image_project.webhooks.exists()
