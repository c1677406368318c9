"""Proof of the offline promise: the same walk in a real browser, with our settings and with stock ones.

With our settings neither the browser nor the server may try to reach a non-loopback host.
With stock settings the same walk must show the call-home channels (so this test can fail);
the guard records them and refuses them, so nothing is sent.
"""

import pytest
from playwright.sync_api import sync_playwright

from tests.browser.walk import walk
from tests.support.server import LabelStudioServer

pytestmark = pytest.mark.browser


def non_local(events):
    return [e for e in events if e['verdict'] == 'blocked' or e['verdict'] == 'allowed']


def test_overlay_walk_makes_no_external_request(tmp_path, template_db, media):
    with LabelStudioServer(tmp_path / 'data', template_db) as server, sync_playwright() as pw:
        record = walk(pw, server.url, 'walker@example.org', media['image'], media['video'], tmp_path)
        events = server.egress_events()
    assert len(record.project_ids) == 2, record.pages
    assert record.external_requests == []
    assert non_local(events) == [], events


def test_stock_walk_shows_the_channels_the_overlay_closes(tmp_path, template_db, media):
    with LabelStudioServer(tmp_path / 'data', template_db, stock=True) as server, sync_playwright() as pw:
        record = walk(pw, server.url, 'walker@example.org', media['image'], media['video'], tmp_path)
        events = server.egress_events()
    browser_hosts = {url.split('/')[2] for url in record.external_requests}
    server_hosts = {e['host'] for e in events if e['verdict'] == 'blocked'}
    assert 'browser.sentry-cdn.com' in browser_hosts, browser_hosts
    assert any('googletagmanager.com' in h for h in browser_hosts), browser_hosts
    assert 'pypi.org' in server_hosts, events
    assert all(e['verdict'] == 'blocked' for e in events)
