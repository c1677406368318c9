"""The guard in a real ``label-studio start``: a backend row nobody allowed opens no connection.

Rows are written into the server's SQLite file directly (no ORM, no signal: what a migration, a restored
dump or another tool leaves), then the server is asked to use them the ways Label Studio does: the ML
settings page's list (health check, then ``/setup`` with the token if healthy), training, and the Data
Manager's "Retrieve predictions" (``/predict`` with the label config). The egress log must show every
attempt as blocked. Two kinds of destination reach the guard:

- ``gpu-box.invalid`` (RFC 6761: never resolves): the guard refuses the DNS look-up;
- ``[3fff::5]`` (RFC 9637 documentation prefix, not routed, and not in Label Studio's SSRF list):
  the guard refuses the connection.

An address in TEST-NET (203.0.113.5) never reaches the guard here: Label Studio's SSRF adapter refuses
it first, as a reserved network. It is used for the API's refusal instead.
"""

import sqlite3
from datetime import UTC, datetime

import pytest

from tests.label_configs import IMAGE_BOXES
from tests.support.api import TokenApi
from tests.support.server import LabelStudioServer, migrated_database

TOKEN = 'egress-test-token-0123456789'
ENV = {
    'LABEL_STUDIO_USERNAME': 'egress@example.org',
    'LABEL_STUDIO_PASSWORD': 'secret-pass-123',
    'LABEL_STUDIO_USER_TOKEN': TOKEN,
    'LABEL_STUDIO_ENABLE_LEGACY_API_TOKEN': 'true',
    'LS_EXT_ALLOWED_HOSTS': '',  # the operator allowed nothing beyond loopback
}
BY_NAME = 'http://gpu-box.invalid:9090'
BY_ADDRESS = 'http://[3fff::5]:9090'


@pytest.fixture(scope='module')
def template_db(tmp_path_factory):
    return migrated_database(tmp_path_factory)


def insert_backend(db_path, project_id, url, title):
    """An ``ml_mlbackend`` row written with SQL, bypassing Label Studio and our checks."""
    now = datetime.now(UTC).isoformat(sep=' ')
    with sqlite3.connect(db_path, timeout=30) as db:
        cursor = db.execute(
            'INSERT INTO ml_mlbackend (state, is_interactive, url, title, auth_method, basic_auth_user, '
            'basic_auth_pass, description, model_version, timeout, project_id, created_at, updated_at, auto_update) '
            "VALUES ('CO', 0, ?, ?, 'NONE', '', '', '', 'v1', 100.0, ?, ?, ?, 1)",
            (url, title, project_id, now, now),
        )
        return cursor.lastrowid


def stored_urls(db_path):
    with sqlite3.connect(db_path, timeout=30) as db:
        return dict(db.execute('SELECT id, url FROM ml_mlbackend'))


def test_backend_rows_open_nothing_and_the_api_refuses_unlisted_hosts(tmp_path, template_db):
    with LabelStudioServer(tmp_path / 'ls', template_db, env=ENV) as server:
        db_path = server.data_dir / 'label_studio.sqlite3'
        api = TokenApi(server.url, TOKEN)
        pid = api('POST', '/api/projects', json={'title': 'boxes', 'label_config': IMAGE_BOXES})['id']
        api('POST', f'/api/projects/{pid}/import', json=[{'image': '/data/upload/1/fish.png'}])
        by_name = insert_backend(db_path, pid, BY_NAME, 'by name')
        by_address = insert_backend(db_path, pid, BY_ADDRESS, 'by address')

        # training sends the project (label config) straight away; "Retrieve predictions" checks health first
        for backend in (by_name, by_address):
            api('POST', f'/api/ml/{backend}/train')
        refused = api(
            'POST',
            f'/api/dm/actions?id=retrieve_tasks_predictions&project={pid}',
            expect=(400,),
            json={'selectedItems': {'all': True, 'excluded': []}},
        )
        assert 'refused (LS_EXT_ALLOWED_HOSTS)' in refused['detail'], refused
        assert 'Nothing was predicted' in refused['detail'], refused
        # the ML settings page: Label Studio refreshes each backend (health check, then /setup with a token)
        listed = {b['id']: b for b in api('GET', f'/api/ml?project={pid}')}
        assert {listed[by_name]['readable_state'], listed[by_address]['readable_state']} == {'Disconnected'}

        # the API: a new backend, or an existing one moved, on a host nobody allowed
        created = api.session.post(
            server.url + '/api/ml', json={'url': 'http://refused.invalid:9090', 'project': pid}, timeout=60
        )
        moved = api.session.patch(
            server.url + f'/api/ml/{by_name}', json={'url': 'http://203.0.113.5:9090'}, timeout=60
        )
        events = server.egress_events()

    for answer, target in ((created, 'refused.invalid:9090'), (moved, '203.0.113.5:9090')):
        assert answer.status_code == 400, (answer.status_code, answer.text[:800])
        (message,) = answer.json()['validation_errors']['url']
        assert f'add {target} to LS_EXT_ALLOWED_HOSTS' in message, message
    assert stored_urls(db_path) == {by_name: BY_NAME, by_address: BY_ADDRESS}  # nothing written, nothing moved

    assert events, 'the egress log recorded nothing: the server never tried the backends'
    assert [e for e in events if e['verdict'] != 'blocked'] == []
    name_attempts = [e for e in events if e['host'] == 'gpu-box.invalid']
    address_attempts = [e for e in events if e['host'] == '3fff::5']
    assert name_attempts and {(e['kind'], e['port']) for e in name_attempts} == {('dns', 9090)}
    assert address_attempts and {(e['kind'], e['port']) for e in address_attempts} == {('connect', 9090)}
    assert {e['host'] for e in events} == {'gpu-box.invalid', '3fff::5'}  # refused.invalid: not even looked up
    print(f'\nblocked: {len(name_attempts)} look-ups of gpu-box.invalid, {len(address_attempts)} connects to 3fff::5')
