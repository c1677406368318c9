"""The production layout (Procfile.prod) on loopback: health of every process, static files from gunicorn,
Redis going away and coming back, migrate_once from two hosts at once, settings that refuse to start."""

import json
import re
import subprocess
import urllib.request

import pytest

from tests.support.prod_layout import ProdLayout
from tests.support.server import BIN, REPO, no_database_env

pytestmark = pytest.mark.postgres

PROCESSES = ['postgres', 'redis', 'web', 'worker-training', 'worker-prediction', 'beat', 'ml-backend']


@pytest.fixture(scope='module')
def layout(tmp_path_factory):
    # two migrate_once at once on the fresh database, as two web hosts starting together would
    with ProdLayout(tmp_path_factory.mktemp('prod'), web_workers=4, celery_workers=2, migrate_runners=2) as layout:
        print('start-up timings (s):', {k: round(v, 1) for k, v in layout.timings.items()})
        yield layout


def get(url, timeout=10):
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return response.status, dict(response.headers), response.read()


def test_every_process_is_healthy(layout):
    for name in PROCESSES:
        status, payload = layout.health(name)
        assert status == 200, (name, payload)
    _, web = layout.health('web')
    assert web['status'] == 'ok'
    assert {'database', 'migrations', 'broker', 'cache'} <= set(web['checks'])
    assert web['checks']['database']['vendor'] == 'postgresql'
    assert web['checks']['cache']['backend'] == 'redis'
    assert layout.health('worker-training')[1]['queues'] == ['celery', 'training']
    assert layout.health('worker-prediction')[1]['queues'] == ['prediction']
    status, _, body = get(layout.url + '/api/ls-ext/health/live/')
    assert status == 200


def test_requests_spread_over_four_gunicorn_workers(layout):
    workers = layout.web_workers()
    assert len(workers) == 4
    assert layout.answering_workers() == workers  # each of them serves (forced: see answering_workers)


def test_static_files_are_served_by_gunicorn(layout):
    status, headers, page = get(layout.url + '/user/login/')
    assert status == 200
    assert 'gunicorn' in headers.get('Server', '')
    assets = set(
        re.findall(r'(?:href|src)="(?:https?://[^/"]+)?(/(?:static|react-app)/[^"?]+\.(?:css|js))', page.decode())
    )
    assert any(a.startswith('/static/') for a in assets), assets
    assert any(a.startswith('/react-app/') for a in assets), assets
    for asset in [*assets, '/react-app/main.js', '/static/js/jquery.min.js']:
        status, _, body = get(layout.url + asset)
        assert status == 200 and len(body) > 100, asset


def test_migrate_once_from_two_hosts_serializes(layout):
    (code_a, out_a), (code_b, out_b) = layout.migrate_results
    assert code_a == code_b == 0, (out_a, out_b)
    outputs = [out_a, out_b]
    applied = [o for o in outputs if re.search(r'applied [1-9]\d*\)', o)]
    no_op = [o for o in outputs if 'applied 0)' in o]
    assert len(applied) == 1 and len(no_op) == 1, outputs
    assert 'another host is migrating' in no_op[0] and 'nothing to apply' in no_op[0]
    # and once more, both at once on the migrated database: two no-ops
    again = layout.migrate_once(2, args=['--skip-collectstatic'])
    assert all(code == 0 and 'applied 0)' in out for code, out in again), again


def test_redis_down_makes_web_and_workers_unready_then_recovers(layout):
    layout.stop('redis')
    try:
        payload = layout.wait_status('web', 503, timeout=20)
        assert payload['checks']['broker']['ok'] is False
        assert payload['checks']['database']['ok'] is True
        worker = layout.wait_status('worker-prediction', 503, timeout=30)
        assert worker['broker_reachable'] is False and str(layout.ports['redis']) not in json.dumps(worker)
        assert str(layout.ports['redis']) not in json.dumps(payload)  # nor in the web's answer
        # the pages still work on the database alone (the cache degrades to misses)
        assert get(layout.url + '/user/login/')[0] == 200
        assert get(layout.url + '/api/ls-ext/health/live/')[0] == 200
    finally:
        layout.start_process('redis')
    layout.wait_healthy(['redis', 'web', 'worker-training', 'worker-prediction'], timeout=90)


def test_database_down_health_names_the_check_not_the_error(layout):
    """PostgreSQL stopped for real: the anonymous answer says "database failed", not the driver's text
    (host, port, database and user name); the web log has the text."""
    layout.stop('postgres')
    try:
        payload = layout.wait_status('web', 503, timeout=30)
        assert 'database' in payload['failed'] and payload['checks']['database']['error'] == 'failed'
        assert payload['checks']['database']['ok'] is False and 'host' not in payload
        text = json.dumps(payload)
        hidden = [str(layout.ports['postgres']), '127.0.0.1', 'ls_extensions', 'connection', 'Operational']
        assert not [word for word in hidden if word in text], text
        assert 'health check database failed' in layout.log_tail('web', lines=400)
        assert get(layout.url + '/api/ls-ext/health/live/')[0] == 200  # the process itself is fine
    finally:
        layout.start_process('postgres')
    layout.wait_healthy(['postgres', 'web', 'worker-training', 'worker-prediction'], timeout=90)


def production_env(**overrides):
    env = {k: v for k, v in no_database_env().items() if not k.startswith('LABEL_STUDIO_')}
    env.update(
        DJANGO_SETTINGS_MODULE='settings.production',
        SECRET_KEY='x' * 50,
        CELERY_BROKER_URL='redis://127.0.0.1:1/0',
        DATABASE_URL='postgres://u:p@127.0.0.1:1/db',
    )
    for key, value in overrides.items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    return env


def load_settings(env):
    code = (
        'import django; django.setup(); from django.conf import settings; print(settings.DATABASES["default"]["NAME"])'
    )
    return subprocess.run(
        [str(BIN / 'python'), '-c', code], cwd=REPO, env=env, capture_output=True, text=True, timeout=120
    )


@pytest.mark.parametrize(
    'missing, message',
    [('SECRET_KEY', 'SECRET_KEY is not set'), ('CELERY_BROKER_URL', 'CELERY_BROKER_URL is not set')],
)
def test_production_settings_refuse_to_start_without(tmp_path, missing, message):
    result = load_settings(production_env(**{missing: None, 'LABEL_STUDIO_BASE_DATA_DIR': str(tmp_path)}))
    assert result.returncode != 0
    assert 'ImproperlyConfigured' in result.stderr and message in result.stderr, result.stderr[-2000:]
    assert not (tmp_path / '.env').exists()  # no random key written behind the operator's back


def test_production_settings_from_database_url(tmp_path):
    result = load_settings(production_env(LABEL_STUDIO_BASE_DATA_DIR=str(tmp_path)))
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().splitlines()[-1] == 'db'
