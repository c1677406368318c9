"""Every call-home channel of Label Studio is off in our settings, channel by channel."""

import os

import pytest
from django.conf import settings


def test_backend_sentry_is_off():
    import sentry_sdk

    assert settings.SENTRY_DSN == ''
    assert sentry_sdk.get_client().is_active() is False


def test_switches_are_forced_over_user_variables():
    for variable in ('SENTRY_DSN', 'FRONTEND_SENTRY_DSN'):
        assert os.environ['LABEL_STUDIO_' + variable] == ''
    assert settings.LATEST_VERSION_CHECK is False
    assert settings.COLLECT_ANALYTICS is False
    assert settings.FEATURE_FLAGS_OFFLINE is True


def test_usage_telemetry_middleware_is_gone():
    assert 'core.middleware.ContextLogMiddleware' not in settings.MIDDLEWARE


def test_csp_is_enforced_and_names_no_foreign_host():
    assert settings.CSP_REPORT_ONLY is False
    for directive in ('DEFAULT', 'SCRIPT', 'IMG', 'CONNECT', 'FRAME', 'MEDIA', 'FONT', 'STYLE'):
        sources = getattr(settings, f'CSP_{directive}_SRC')
        assert all(s.startswith("'") or s in ('data:', 'blob:') for s in sources), (directive, sources)


def test_csp_adds_allowed_hosts():
    from ls_extensions.privacy.csp import offline_policy

    policy = offline_policy({'LS_EXT_ALLOWED_HOSTS': 'minio.lab:9000, *.bucket.lab, 10.0.0.0/8, 192.0.2.5'})
    assert policy['CSP_IMG_SRC'][-3:] == ('minio.lab:9000', '*.bucket.lab', '192.0.2.5')


@pytest.mark.parametrize('path', ['/user/login/', '/user/signup/'])
def test_login_pages_carry_no_tracker(db, client, path):
    response = client.get(path)
    html = response.content.decode()
    assert response.status_code == 200
    assert 'browser.sentry-cdn.com' not in html
    assert 'googletagmanager.com/gtag' not in html
    assert 'collect_analytics = false' in html
    assert "default-src 'self'" in response['Content-Security-Policy']


def test_heidi_tips_are_answered_locally_without_a_fetch(db, client):
    # the frontend asks for /heidi-tips (no slash): Django's redirect, then an empty collection, not a 404
    response = client.get('/heidi-tips', follow=True)
    assert response.status_code == 200
    assert response.json() == {}


def test_metrics_beacon_is_a_no_op(db, client):
    assert client.post('/__lsa/', data='{}', content_type='application/json').status_code == 204
