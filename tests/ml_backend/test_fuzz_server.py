"""Property-based fuzz of the model server's endpoints (issue 12, hostile input), called in-process.

Every route of ``ModelServer.ROUTES`` (and paths and methods it does not serve) gets hostile requests:
malformed or lying ``Content-Length`` headers, chunked bodies, bodies that are not JSON or not an
object, protocol fields of the wrong type, deep nesting, NUL characters, huge numbers, garbage
``Authorization`` headers on a server with credentials (``tests/support/fuzz.py`` has the strategies).
For every request:

- the status is below 500 and the status line is one line of printable latin-1 (RFC 9112's reason-phrase);
- a 4xx changes nothing the server keeps: the connected projects, the stored model versions and the
  files of its model directory, the training queue and history, its counters.

The WSGI app is called directly (no socket, as in ``test_protocol.py``), so the fuzz can send what a
socket server would pass through; the stub adapter of ``support.py`` stands in for MMDetection (these
tests are about the protocol layer, not the model). A request that starts a training run waits for the
run to end before the next example (the trainer's own condition, no sleep), so every example sees a
quiet server. Hypothesis runs derandomized, without an example database, with bounded examples.
"""

from __future__ import annotations

import base64
import copy
import io
import json
import re

import numpy as np
import pytest
from hypothesis import event, given, note
from hypothesis import strategies as st

from ls_extensions.ml_backend.server import ModelServer
from tests.label_configs import IMAGE_BOXES
from tests.ml_backend.support import FixedAdapter, png_data_uri
from tests.support import fuzz

FIXED = 'tests.ml_backend.support.FixedAdapter'
CREDENTIALS = 'label-studio:s3cret-pass'
EXAMPLES = 60
FUZZ = fuzz.fuzz_settings(EXAMPLES)
STATUS_LINE = re.compile(r'[1-5][0-9]{2} [\t\x20-\x7e\x80-\xff]*')  # latin-1 minus control characters

PATHS = sorted({path for _, path in ModelServer.ROUTES})
PROTOCOL_KEYS = [
    'tasks',
    'project',
    'label_config',
    'schema',
    'hostname',
    'access_token',
    'action',
    'annotations',
    'job',
    'version',
    'model_version',
    'params',
    'context',
    'data',
    'id',
]
IMAGE = png_data_uri(np.full((24, 32, 3), 90, np.uint8))
TASK = {'id': 7, 'data': {'image': IMAGE}}
ANNOTATED = {
    **TASK,
    'annotations': [
        {
            'id': 1,
            'result': [
                {
                    'from_name': 'label',
                    'to_name': 'image',
                    'type': 'rectanglelabels',
                    'value': {'x': 10, 'y': 10, 'width': 50, 'height': 50, 'rectanglelabels': ['fish']},
                }
            ],
        }
    ],
}
# per path, a request Label Studio would send: the fuzz starts from it, so it gets past the first check
BASES = {
    '/setup': {'project': '1.1700000000', 'schema': IMAGE_BOXES, 'hostname': 'http://localhost:8080'},
    '/predict': {'project': '1.1700000000', 'tasks': [TASK], 'label_config': IMAGE_BOXES},
    '/webhook': {'action': 'ANNOTATION_CREATED', 'project': {'id': 1, 'label_config': IMAGE_BOXES}},
    '/train': {'project': '1.1700000000', 'label_config': IMAGE_BOXES, 'annotations': [ANNOTATED]},
    '/job_status': {'job': 'train-1-1'},
    '/rollback': {'version': 'fixed.v0'},
}
CONTENT_LENGTHS = ['', '0', 'abc', '-1', '+5', ' 5', '5 ', '1e3', '0x10', '\u0663', str(2**63), str(10**30), '١']

annotations = st.lists(
    st.fixed_dictionaries(
        {'result': st.lists(st.dictionaries(st.sampled_from(['type', 'value', 'from_name']), fuzz.json_values))}
    ),
    max_size=2,
)
task_objects = st.fixed_dictionaries(
    {'data': st.dictionaries(st.sampled_from(['image', 'video', '']), fuzz.field_values, max_size=2)},
    optional={'id': fuzz.json_leaves, 'annotations': st.one_of(annotations, annotations, fuzz.json_values)},
)


def protocol_bodies(path):
    """A body for ``path``: Label Studio's request with hostile fields, tasks with hostile data, or junk."""
    base = BASES.get(path, {})
    tasks = st.lists(st.one_of(task_objects, task_objects, task_objects, fuzz.json_values), max_size=4)
    with_tasks = tasks.map(lambda items: fuzz.dump({**base, 'tasks': items, 'annotations': items}))
    return st.one_of(fuzz.bodies(PROTOCOL_KEYS, base), with_tasks)


ANY_PATH = '<any path>'
TRANSFER_ENCODINGS = ['chunked', 'gzip, chunked', 'identity']


@st.composite
def requests(draw, route=ANY_PATH):
    """(method, path, body bytes, environ headers) for ``route``: mostly its own method and a well-formed
    envelope with a hostile body; sometimes another method, a lying or malformed envelope.

    Hypothesis picks the branches of ``one_of`` evenly, so the common case is listed several times.
    """
    if route == ANY_PATH:
        path = draw(st.text(alphabet=st.characters(max_codepoint=255), max_size=20).map(lambda p: '/' + p))
    else:
        path = draw(st.sampled_from([route, route, route, route.rstrip('/') + '/']), label='path')
    served = [method for method, served_path in ModelServer.ROUTES if served_path == (path.rstrip('/') or '/')]
    method = draw(
        st.one_of(*[st.sampled_from(served or ['GET'])] * 4, st.sampled_from(['GET', 'POST', 'PUT', 'DELETE'])),
        label='method',
    )
    body = draw(st.one_of(protocol_bodies(path.rstrip('/') or '/'), st.just(b'')), label='body')
    length = draw(
        st.one_of(
            *[st.just(str(len(body)))] * 4,
            st.just(None),
            st.sampled_from(CONTENT_LENGTHS),
            st.sampled_from([str(len(body) + 10), str(max(len(body) - 1, 0))]),  # longer / shorter than sent
        ),
        label='Content-Length',
    )
    headers = {}
    if length is not None:
        headers['CONTENT_LENGTH'] = length
    encoding = draw(st.sampled_from([None] * 6 + TRANSFER_ENCODINGS), label='Transfer-Encoding')
    if encoding is not None:
        headers['HTTP_TRANSFER_ENCODING'] = encoding
    return method, path, body, headers


def call_raw(app, method, path, body, headers):
    """The WSGI app called the way wsgiref's server calls it: (status line, response headers, body)."""
    from wsgiref.util import setup_testing_defaults

    environ = {'REQUEST_METHOD': method, 'PATH_INFO': path, 'wsgi.input': io.BytesIO(body), **headers}
    setup_testing_defaults(environ)
    captured = {}

    def start_response(status, response_headers, exc_info=None):
        captured['status'], captured['headers'] = status, response_headers

    data = b''.join(app(environ, start_response))
    return captured['status'], captured['headers'], data


def wait_idle(app, timeout=120):
    """Until no training job runs or waits (the trainer notifies its condition when a job ends)."""
    trainer = app.trainer
    with trainer._cond:
        assert trainer._cond.wait_for(lambda: trainer.running is None and trainer.queued is None, timeout)


def kept_state(app):
    """What the server keeps between requests, read through its own read-only endpoints and its files."""
    state = {'projects': copy.deepcopy(app.projects)}
    for path in ('/versions', '/training', '/metrics', '/health'):
        _, _, data = call_raw(app, 'GET', path, b'', {'HTTP_AUTHORIZATION': basic(CREDENTIALS)})
        state[path] = json.loads(data)
    root = app.registry.versions_dir.parent
    state['files'] = sorted(
        (str(p.relative_to(root)), p.stat().st_size, p.read_bytes()) for p in root.rglob('*') if p.is_file()
    )
    return state


def basic(credentials: str, encoding='utf-8') -> str:
    return 'Basic ' + base64.b64encode(credentials.encode(encoding)).decode()


def check(app, method, path, body, headers):
    wait_idle(app)
    before = kept_state(app)
    status_line, response_headers, data = call_raw(app, method, path, body, headers)
    wait_idle(app)
    status = int(status_line[:3])
    route = path.rstrip('/') or '/'
    event(f'{method} {route if route in PATHS else "<other path>"} -> {status}')
    note(f'{method} {path!r} {headers!r} body={body[:300]!r} -> {status_line!r} {data[:300]!r}')
    assert status < 500, (status_line, data[:2000])
    assert STATUS_LINE.fullmatch(status_line), status_line
    for name, value in response_headers:
        assert not re.search(r'[\x00-\x1f\x7f]', name + value), (name, value)
    answer = json.loads(data)  # every answer is JSON, errors included
    if 400 <= status < 500:
        assert answer.get('error'), (status_line, answer)
        after = kept_state(app)
        changed = {key: (before[key], after[key]) for key in before if before[key] != after[key]}
        assert not changed, (status_line, answer, changed)
    return status


@pytest.fixture
def app(tmp_path):
    FixedAdapter.batches.clear()
    server = ModelServer(adapter=FIXED, model_dir=tmp_path / 'models', score_threshold=0.3, batch_size=2)
    body = fuzz.dump(BASES['/setup'])
    status, _, data = call_raw(server, 'POST', '/setup', body, {'CONTENT_LENGTH': str(len(body))})
    assert status.startswith('200'), data
    return server


@pytest.fixture
def guarded_app(tmp_path):
    return ModelServer(adapter=FIXED, model_dir=tmp_path / 'guarded', basic_auth=CREDENTIALS)


@pytest.mark.parametrize('route', [*PATHS, ANY_PATH])
@FUZZ
@given(data=st.data())
def test_routes_answer_hostile_requests_without_5xx_or_changes(app, route, data):
    check(app, *data.draw(requests(route), label='request'))


BAD_AUTHORIZATIONS = [
    'Basic',
    'Basic ',
    'Basic !!!!',
    'Basic ' + base64.b64encode(b'\xff\xfe\x00').decode(),
    'Basic ' + base64.b64encode(CREDENTIALS.encode() + b'\x00').decode(),
    'Basic ' + base64.b64encode(b'label-studio').decode(),
    'basic ' + base64.b64encode(b'label-studio:wrong').decode(),
    'Bearer ' + CREDENTIALS,
    basic(CREDENTIALS + 'x'),
    basic(CREDENTIALS.upper()),
    basic(CREDENTIALS) + ' trailing',
    basic(CREDENTIALS)[:-2],
]


@FUZZ
@given(call=requests(), header=st.one_of(st.none(), st.text(max_size=40), st.sampled_from(BAD_AUTHORIZATIONS)))
def test_credentials_refuse_hostile_authorization_headers_with_401(guarded_app, call, header):
    method, path, body, headers = call
    if header is not None:
        headers = {**headers, 'HTTP_AUTHORIZATION': header.encode('utf-8', 'surrogatepass').decode('latin-1')}
    note(f'Authorization: {header!r}')
    status = check(guarded_app, method, path, body, headers)
    assert status == 401, (header, status)
