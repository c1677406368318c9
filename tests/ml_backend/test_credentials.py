"""The model server's credentials: with ``LS_EXT_ML_BASIC_AUTH`` set, every route wants them.

The table is derived from ``ModelServer.ROUTES`` (a new route is covered without editing this file) and
sent over a real socket: no credentials -> 401, wrong ones -> 401, right ones -> anything but 401.
``/health`` is not open when credentials are set (Label Studio's own health check sends them; an
orchestrator probe has to send them too, or probe the TCP port): its 401 says nothing of the model.
Label Studio's own ``MLBackend`` with "Basic Authentication" connects (``update_state``).
"""

import base64
import threading
from wsgiref.simple_server import make_server

import pytest

from ls_extensions.ml_backend.server import ModelServer, build_server
from ls_extensions.ml_backend.wsgi_app import _QuietHandler, _ThreadingWSGIServer
from tests.label_configs import IMAGE_BOXES
from tests.ml_backend.support import http

FIXED = 'tests.ml_backend.support.FixedAdapter'
USER, PASSWORD = 'label-studio', 'pa:ss wörd-7'  # a colon, a space and a non-ASCII letter in the password
REFUSED_BODY = {'error': 'basic auth required'}

# a body per POST route that exercises it without starting work (training is recorded, not run)
BODIES = {
    '/setup': {'project': '1.1700000000', 'schema': IMAGE_BOXES},
    '/predict': {'project': '1.1700000000', 'label_config': IMAGE_BOXES, 'tasks': []},
    '/webhook': {'action': 'PROJECT_UPDATED', 'project': {'id': 1}},
    '/train': {'project': 1, 'annotations': []},
    '/job_status': {'job': 'train-0-0'},
    '/rollback': {},
}


def basic(user, password, encoding='utf-8'):
    return 'Basic ' + base64.b64encode(f'{user}:{password}'.encode(encoding)).decode()


WRONG = {
    'none': None,
    'wrong password': basic(USER, 'nope'),
    'wrong user': basic('admin', PASSWORD),
    'password only': 'Basic ' + base64.b64encode(PASSWORD.encode()).decode(),
    'not basic': 'Bearer ' + base64.b64encode(f'{USER}:{PASSWORD}'.encode()).decode(),
    'not base64': 'Basic !!!',
    'empty': 'Basic ',
}


@pytest.fixture
def guarded(tmp_path):
    """The model server on loopback with credentials, in a thread; training requests are recorded."""
    app = ModelServer(adapter=FIXED, model_dir=tmp_path / 'models', basic_auth=f'{USER}:{PASSWORD}')
    trained = []
    app.trainer.request = lambda *args, **kwargs: trained.append(args) or {'status': 'started', 'job': 'recorded'}
    httpd = make_server('127.0.0.1', 0, app, server_class=_ThreadingWSGIServer, handler_class=_QuietHandler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    app.url = f'http://127.0.0.1:{httpd.server_port}'
    app.trained = trained
    yield app
    httpd.shutdown()
    httpd.server_close()
    thread.join(5)


def routes():
    return sorted(ModelServer.ROUTES)


def send(app, method, path, authorization):
    headers = {'Authorization': authorization} if authorization else {}
    payload = BODIES.get(path, {}) if method == 'POST' else None
    return http(method, app.url + path, payload, headers=headers, timeout=30)


@pytest.mark.parametrize(('method', 'path'), routes())
def test_every_route_wants_the_credentials(guarded, method, path):
    for label, authorization in WRONG.items():
        status, body, reason = send(guarded, method, path, authorization)
        assert status == 401, (label, status, body)
        assert body == REFUSED_BODY, (label, body)  # nothing of the model, its version or its projects
        assert guarded.version not in reason
    status, body, _ = send(guarded, method, path, basic(USER, PASSWORD))
    assert status != 401 and status < 500, (status, body)


def test_the_table_covers_the_protocol():
    """Label Studio 1.23's routes are all there (the table above runs over whatever ROUTES holds)."""
    paths = {path for _, path in ModelServer.ROUTES}
    assert {'/health', '/setup', '/predict', '/webhook', '/versions', '/train', '/training'} <= paths


def test_right_credentials_reach_the_handlers(guarded):
    auth = basic(USER, PASSWORD)
    status, body, _ = send(guarded, 'GET', '/health', auth)
    assert status == 200 and body['status'] == 'UP' and body['model_version'] == guarded.version
    assert send(guarded, 'POST', '/train', auth)[0] == 201 and guarded.trained
    # Label Studio (requests) encodes basic credentials as latin-1: a non-ASCII password still matches
    assert send(guarded, 'GET', '/health', basic(USER, PASSWORD, 'latin-1'))[0] == 200


def test_unknown_paths_are_refused_before_they_are_named(guarded):
    """Without credentials an unknown path is a 401 too: the routes cannot be probed."""
    assert send(guarded, 'GET', '/nothing-here', None)[0] == 401
    assert send(guarded, 'GET', '/nothing-here', basic(USER, PASSWORD))[0] == 404


def test_without_credentials_configured_the_server_is_open(tmp_path):
    from tests.ml_backend.support import call

    app = ModelServer(adapter=FIXED, model_dir=tmp_path / 'models')
    assert call(app, 'GET', '/health')[0] == 200


def test_the_credentials_come_from_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv('LS_EXT_ML_BASIC_AUTH', f'{USER}:{PASSWORD}')
    app = build_server({'adapter': FIXED, 'model_dir': str(tmp_path / 'models'), 'threads': 0})
    assert app.basic_auth == f'{USER}:{PASSWORD}'
    monkeypatch.setenv('LS_EXT_ML_BASIC_AUTH', '')
    assert build_server({'adapter': FIXED, 'model_dir': str(tmp_path / 'm2'), 'threads': 0}).basic_auth is None


@pytest.mark.django_db
@pytest.mark.parametrize(
    ('auth_method', 'password', 'state'),
    [('BASIC_AUTH', PASSWORD, 'CO'), ('BASIC_AUTH', 'wrong', 'DI'), ('NONE', None, 'DI')],
    ids=['right credentials', 'wrong password', 'no credentials'],
)
def test_label_studio_connects_with_basic_auth(guarded, image_project, auth_method, password, state):
    """Label Studio's own MLBackend, as "Add Model" with "Basic Authentication" leaves it."""
    from ml.models import MLBackend

    backend = MLBackend.objects.create(
        project=image_project,
        url=guarded.url,
        title='guarded',
        auth_method=auth_method,
        basic_auth_user=USER if password else None,
        basic_auth_pass=password,
    )
    backend.update_state()
    backend.refresh_from_db()
    assert backend.state == state, backend.error_message
    if state == 'CO':
        assert image_project.id in guarded.projects  # /setup reached the server
        versions = backend.api.get_versions(image_project)
        assert not versions.is_error and guarded.version in versions.response['versions']
    else:
        assert image_project.id not in guarded.projects
