"""Property-based fuzz of every endpoint and Data Manager action we add (issue 12, hostile input).

The routes are the security table's (``tests/support/routes.py``, derived from our URLconf); the
actions are our ``register_action`` entries, called through Label Studio's ``POST /api/dm/actions``.
Hostile query strings and bodies (``tests/support/fuzz.py``: id lists of tens of thousands, numbers
huge, negative or spelled NaN/inf, unicode, NUL characters, long strings, arbitrary, wrongly typed or
deeply nested JSON, bodies that are not JSON) are sent by the project's owner, the user who gets past
the permission checks, so the input reaches our code. For every request:

- the status is below 500, and a streamed answer streams to its end (a crash mid-stream is a broken file);
- a 4xx changes nothing stored: every row of our models and of Label Studio's projects, tasks,
  annotations, predictions, ML backends, export snapshots and conversions is the same after it;
- a 400 or 422 says why (its answer is not empty).

``KNOWN_HOSTILE`` sends the inputs that broke a route on every run, whatever Hypothesis draws.
Hypothesis runs derandomized, without an example database, with a bounded number of examples per route,
so a CI run is deterministic and short; the examples of a route run one after another on one database
(a 2xx may change it: each example compares its own before and after).

Label Studio's own input handling is not fuzzed where our code never sees the value: ``/api/dm/actions``
gets a JSON object with a well-formed ``selectedItems`` (its ids are fuzzed) and no ``query``/``view``
parameters (Label Studio's ``get_prepare_params`` parses those before any action runs).

Side effects: like the security table, the retraining app's Celery publishes go to a recorder (no
broker), scoring jobs run inline, and nothing leaves the machine.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from django.conf import settings as django_settings
from hypothesis import currently_in_test_context, given, note, settings
from hypothesis import strategies as st

from tests.conftest import logged_in_client, make_project, make_user
from tests.label_configs import IMAGE_BOXES, VIDEO_TRACKING
from tests.support import fuzz
from tests.support.routes import PUBLIC, ROUTES, fill, fill_values, methods_of, our_actions, our_routes, send

pytestmark = pytest.mark.django_db

EXAMPLES = 30  # per route and method
FUZZ = fuzz.fuzz_settings(EXAMPLES)

# Label Studio's rows our endpoints could touch, besides every model of our own apps
LABEL_STUDIO_MODELS = (
    'projects.Project',
    'tasks.Task',
    'tasks.Annotation',
    'tasks.Prediction',
    'ml.MLBackend',
    'data_export.Export',
    'data_export.ConvertedFormat',
)
# columns Label Studio rewrites on every request that reads the row, whatever the answer: the ML backend API's
# get_object() runs a health check and saves the connection state (MLBackend.update_state)
REFRESHED_ON_READ = {'ml.MLBackend': {'state', 'error_message', 'model_version', 'updated_at'}}
# parameters the views read outside a serializer (the serializers' fields are collected below)
READ_BY_VIEWS = ['exportType', 'export_type', 'format', 'stride', 'ids[]', 'labels[]', 'action', 'done', 'measure']
# Label Studio's /api/dm/actions parameters, parsed before our action runs (not fuzzed, see the docstring)
DM_OWN_PARAMS = {'project', 'id', 'query', 'view', 'selectedItems', 'filters', 'ordering'}
# path parameters: besides the owner's objects, ids no row has and ids past every integer column
PATH_IDS = st.one_of(st.none(), st.sampled_from([0, 999_999, 2**31, 2**63, 10**30]))


def serializer_fields() -> list[str]:
    """Every field name of every serializer in our apps: what a request body or query can carry."""
    import importlib
    import inspect

    from django.apps import apps
    from rest_framework import serializers

    names = set()
    for config in apps.get_app_configs():
        if not config.name.startswith('ls_extensions.'):
            continue
        try:
            module = importlib.import_module(f'{config.name}.serializers')
        except ModuleNotFoundError:
            continue
        for _, cls in inspect.getmembers(module, inspect.isclass):
            if issubclass(cls, serializers.BaseSerializer) and cls.__module__ == module.__name__:
                names.update(cls().fields)
    return sorted(names)


def format_names() -> list[str]:
    from ls_extensions.video.export import chosen_formats, format_names

    names = [*format_names(), *(chosen.name for chosen in chosen_formats())]
    return sorted({*names, *(name.lower() for name in names), 'JSON', 'CSV', 'JSON_MIN', 'COCO', 'YOLO'})


KEYS = sorted({*serializer_fields(), *READ_BY_VIEWS})
FORMAT_KEYS = {'format', 'exportType', 'export_type'}


def stored_state() -> dict:
    """Every row of our models and of the Label Studio tables above, as dicts (``updated_at`` included, except
    for the ``REFRESHED_ON_READ`` columns)."""
    from django.apps import apps

    models = [m for c in apps.get_app_configs() if c.name.startswith('ls_extensions.') for m in c.get_models()]
    models += [apps.get_model(label) for label in LABEL_STUDIO_MODELS]
    state = {}
    for model in models:
        label, skipped = model._meta.label, REFRESHED_ON_READ.get(model._meta.label, set())
        fields = [f.attname for f in model._meta.concrete_fields if f.attname not in skipped]
        state[label] = {row['pk']: row for row in model.objects.values('pk', *fields)}
    return state


def changed_tables(before: dict, after: dict) -> dict:
    """{table: [(row before, row after), ...]} for the rows that differ (added and removed rows: None on one side)."""
    changes = {}
    for label in before:
        old, new = before[label], after[label]
        rows = [(old.get(pk), new.get(pk)) for pk in sorted({*old, *new}) if old.get(pk) != new.get(pk)]
        if rows:
            changes[label] = rows
    return changes


def consume(response) -> bytes:
    """The whole answer; for a streamed one, the stream to its end (an error in it fails the example)."""
    if getattr(response, 'streaming', False):
        try:
            return b''.join(response.streaming_content)
        finally:
            response.close()
    return response.content


def request(client, method, path, query, body, form=False):
    """Send one request; ``body`` is raw bytes (sent as JSON) or, for ``form``, a dict of form fields."""
    if method == 'get' or form:
        return send(client, method, path, query, body, form)
    from urllib.parse import urlencode

    url = path + ('?' + urlencode(query, doseq=True) if query else '')
    return getattr(client, method)(url, body, content_type='application/json')


def check(response, before, shown):
    """The properties every fuzzed request must have (see the module docstring)."""
    content = consume(response)
    status = response.status_code
    if currently_in_test_context():  # a Hypothesis example (not the KNOWN_HOSTILE table)
        note(f'{shown} -> {status} {content[:300]!r}')
    assert status < 500, (shown, status, content[:2000])
    if 400 <= status < 500:
        changes = changed_tables(before, stored_state())
        assert not changes, (shown, status, content[:300], changes)
    if status in (400, 422):
        assert content.strip(), (shown, status, 'a refusal without a reason')
    return status


@pytest.fixture
def world(db, monkeypatch, settings):
    """The owner's organization: an image project (tasks, predictions, an annotation, an ML backend) and a
    video project (a real uploaded video with a tracked box, a task whose video is missing, a snapshot
    with a conversion)."""
    from data_export.models import Export
    from data_import.models import FileUpload
    from ml.models import MLBackend
    from tasks.models import Annotation, Prediction, Task

    from ls_extensions.retraining import queueing as retraining_queueing
    from ls_extensions.scoring import dm
    from tests.conftest import box
    from tests.support.media import write_video

    published = []
    # no Celery publish from this test (no broker): the retraining app's only way out is queueing.enqueue
    monkeypatch.setattr(retraining_queueing, 'enqueue', lambda *args, **kwargs: published.append(args) or True)
    settings.LS_EXT_SCORING_RUNNER = 'inline'
    dm._checked.clear()
    dm._base_columns.clear()

    owner = make_user('owner@example.org')
    image = make_project(owner, IMAGE_BOXES, 'images')
    for i in range(3):
        task = Task.objects.create(project=image, data={'image': f'/data/upload/{image.id}/img{i}.jpg'})
        Prediction.objects.create(
            task=task, project=image, model_version='v1', score=0.2 + 0.3 * i, result=[box(10, 10, 20, 20, score=0.5)]
        )
    Annotation.objects.create(task=task, project=image, completed_by=owner, result=[box(5, 5, 10, 10)])
    stranger = make_user('stranger@example.org')
    foreign = make_project(stranger, IMAGE_BOXES, 'theirs')
    # bulk_create: the rows are what the retraining policy refers to; saving them one by one would create
    # Label Studio's webhook (its SSRF check refuses loopback) and meet the egress guard (refuses other hosts)
    MLBackend.objects.bulk_create(
        [
            MLBackend(project=image, url='http://127.0.0.1:1', title='fuzzed backend'),
            MLBackend(project=foreign, url='http://127.0.0.1:2', title='their backend'),
        ]
    )

    video = make_project(owner, VIDEO_TRACKING, 'videos')
    relative = f'{django_settings.UPLOAD_DIR}/{video.id}/abcd1234-clip.mp4'
    path = Path(django_settings.MEDIA_ROOT, relative)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_video(path, frames=12, width=64, height=48)
    FileUpload.objects.create(user=owner, project=video, file=relative)
    keyframes = [
        {'frame': 1, 'enabled': True, 'x': 10.0, 'y': 10.0, 'width': 20.0, 'height': 20.0, 'rotation': 0.0},
        {'frame': 5, 'enabled': False, 'x': 50.0, 'y': 10.0, 'width': 20.0, 'height': 20.0, 'rotation': 0.0},
    ]
    track = {
        'id': 'r-fish',
        'from_name': 'box',
        'to_name': 'video',
        'type': 'videorectangle',
        'origin': 'manual',
        'value': {'sequence': keyframes, 'labels': ['fish'], 'framesCount': 12, 'duration': 0.48},
    }
    for url in (f'/data/{relative}', f'/data/upload/{video.id}/missing.mp4'):
        task = Task.objects.create(project=video, data={'video': url})
        Annotation.objects.create(task=task, project=video, completed_by=owner, result=[track])

    client = logged_in_client(owner)
    made = client.post(f'/api/projects/{video.id}/exports/', {}, content_type='application/json')
    assert made.status_code == 201, made.content
    objects = {'image': image, 'video': video, 'snapshot': Export.objects.get(pk=made.json()['id'])}
    objects['backend'] = MLBackend.objects.get(project=image)
    converted = client.post(
        f'/api/projects/{video.id}/exports/{objects["snapshot"].pk}/convert',
        {'export_type': 'VIDEO_JSON'},
        content_type='application/json',
    )
    assert converted.status_code == 200, converted.content
    return {'objects': objects, 'client': client, 'published': published}


@pytest.fixture
def visited(world, route):
    """The world after the route's table requests were sent once (its policies exist, as after a first visit),
    except DELETE (the objects stay for the fuzz)."""
    spec, objects = ROUTES.get(route, {}), world['objects']
    for method in methods_of(our_routes()[route], route):
        for _, query, body in spec.get(method, []) if method != 'delete' else []:
            query, body = fill_values(query, spec, objects), fill_values(body, spec, objects)
            consume(send(world['client'], method, fill(route, spec, objects), query, body, spec.get('html', False)))
    return world


def cases():
    routes = our_routes().items()
    return [(route, method) for route, view in routes if route not in PUBLIC for method in methods_of(view, route)]


def hostile_query(keys, base):
    """Queries whose format-like parameters often name a real format (so the fuzz gets past the name check)."""
    formats = st.sampled_from(format_names())
    named = st.fixed_dictionaries({}, optional={key: formats for key in FORMAT_KEYS & set(base)})
    return st.tuples(fuzz.queries(keys, base), named).map(lambda t: {**t[0], **t[1]})


@pytest.mark.parametrize(('route', 'method'), cases())
@FUZZ
@given(data=st.data())
def test_route_answers_hostile_input_without_5xx_or_changes(route, method, visited, data):
    world = visited
    spec = ROUTES.get(route)
    if spec is None or not spec.get(method):
        pytest.fail(f'{route} {method.upper()} has no requests in tests/support/routes.py ROUTES: add them')
    form = spec.get('html', False)
    label, base_query, base_body = data.draw(st.sampled_from(spec[method]), label='variant')
    base_query, base_body = (
        fill_values(base_query, spec, world['objects']),
        fill_values(base_body, spec, world['objects']),
    )
    params = {name: data.draw(PATH_IDS, label=f'<{name}>') for name in ('pk', 'export_pk') if f'{name}>' in route}
    path = fill(route, spec, world['objects'], {name: value for name, value in params.items() if value is not None})
    query = data.draw(hostile_query(KEYS, base_query), label='query')
    if method == 'get':
        body = None
    elif form:
        body = data.draw(fuzz.queries(KEYS, base_body), label='form')
    else:
        formats = st.sampled_from(format_names())
        body_base = dict(base_body or {})
        if 'export_type' in body_base:
            body_base['export_type'] = data.draw(st.one_of(formats, fuzz.field_values), label='export_type')
        body = data.draw(fuzz.bodies(KEYS, body_base), label='body')
    before = stored_state()
    shown = f'{method.upper()} {path} ({label}) query={query!r:.300} body={body!r:.300}'
    check(request(world['client'], method, path, query, body, form), before, shown)


DEEP_JSON = b'[' * 100_000 + b']' * 100_000
MANY_IDS = ','.join(str(i) for i in range(1, 40_001))  # past SQLite's default 32 766 variables per statement
# the inputs that broke a route (or were reported to), sent on every run whatever Hypothesis draws:
# (route, method, path parameters, query, body); '<name>' placeholders are filled as in the table
KNOWN_HOSTILE = [
    ('api/projects/<int:pk>/export/video-frames', 'get', {}, {'format': 'VIDEO_JSON', 'ids': MANY_IDS}, None),
    ('api/projects/<int:pk>/export/video-frames', 'get', {}, {'format': 'VIDEO_JSON', 'ids': str(10**25)}, None),
    ('api/projects/<int:pk>/export/video-frames', 'get', {}, {'format': 'VIDEO_JSON\x00'}, None),
    ('api/projects/<int:pk>/export/video-frames', 'get', {}, {'format': 'VIDEO_MOT', 'frame_stride': '9' * 40}, None),
    ('api/projects/<int:pk>/export/video-frames', 'get', {}, {'format': 'VIDEO_YOLO', 'width': str(2**63)}, None),
    ('api/projects/<int:pk>/export', 'get', {}, {'exportType': 'COCO-video'}, None),  # LS's view: a 500
    ('api/projects/<int:pk>/export', 'get', {}, {'exportType': 'VIDEO_JSON', 'ids[]': MANY_IDS}, None),
    ('api/projects/<int:pk>/exports/<int:export_pk>/download', 'get', {}, {'exportType': ''}, None),  # LS's: 500
    ('api/projects/<int:pk>/exports/<int:export_pk>/convert', 'post', {'pk': 2**63}, {}, b'{}'),  # OverflowError
    ('api/projects/<int:pk>/exports/<int:export_pk>/convert', 'post', {}, {}, b'[1, 2]'),  # list body
    ('api/projects/<int:pk>/exports/<int:export_pk>/convert', 'post', {}, {}, DEEP_JSON),  # RecursionError
    ('api/projects/<int:pk>/uncertainty/', 'patch', {}, {}, DEEP_JSON),
    ('api/projects/<int:pk>/retraining/', 'patch', {}, {}, DEEP_JSON),
    ('api/projects/<int:pk>/retraining/', 'patch', {}, {}, b'{"threshold": 1e400, "batch_size": 9223372036854775808}'),
    ('api/ml/', 'post', {}, {}, DEEP_JSON),
    ('api/ml/<int:pk>', 'patch', {}, {}, DEEP_JSON),
    ('api/ml/<int:pk>', 'patch', {}, {}, b'{"title": "renamed"}'),  # LS's view: healthcheck_() without url
]


@pytest.mark.parametrize(
    ('route', 'method', 'params', 'query', 'body'),
    KNOWN_HOSTILE,
    ids=[f'{method}-{route}-{i}' for i, (route, method, *_) in enumerate(KNOWN_HOSTILE)],
)
def test_known_hostile_request_is_refused_without_5xx_or_changes(route, method, params, query, body, visited):
    world = visited
    spec, objects = ROUTES[route], world['objects']
    path = fill(route, spec, objects, params)
    before = stored_state()
    shown = f'{method.upper()} {path} query={query!r:.200} body={body!r:.200}'
    check(request(world['client'], method, path, fill_values(query, spec, objects), body), before, shown)


ACTION_KEYS = sorted(set(KEYS) - DM_OWN_PARAMS)
selected_items = st.one_of(
    st.fixed_dictionaries({'all': st.booleans(), 'excluded': st.one_of(fuzz.id_lists, st.just([]))}),
    st.fixed_dictionaries({'all': st.just(False), 'included': fuzz.id_lists}),
)


@pytest.mark.parametrize('action_id', our_actions())
@FUZZ
@given(data=st.data())
def test_data_manager_action_answers_hostile_input_without_5xx_or_changes(action_id, world, data):
    project = world['objects'][data.draw(st.sampled_from(['image', 'video']), label='project')]
    extra = data.draw(fuzz.queries(ACTION_KEYS), label='query')
    query = {**{k: v for k, v in extra.items() if k not in DM_OWN_PARAMS}, 'project': project.pk, 'id': action_id}
    fields = data.draw(fuzz.objects_with(ACTION_KEYS), label='fields')
    body = {**{k: v for k, v in fields.items() if k not in DM_OWN_PARAMS}}
    body['selectedItems'] = data.draw(selected_items, label='selectedItems')
    before = stored_state()
    shown = f'POST DM action {action_id} query={query!r:.300} body={body!r:.300}'
    check(request(world['client'], 'post', '/api/dm/actions', query, fuzz.dump(body)), before, shown)

    form = f'/api/dm/actions/{action_id}/form/'
    shown = f'GET {form} query={extra!r:.300}'
    before = stored_state()
    check(send(world['client'], 'get', form, {**extra, 'project': project.pk}, None), before, shown)


@pytest.mark.parametrize('route', sorted(PUBLIC))
@settings(FUZZ, max_examples=10)
@given(data=st.data())
def test_public_route_ignores_hostile_query(route, world, client, data):
    """Open routes answer as without a query (503 is the readiness probe's "not ready"), or refuse it with a 4xx
    (Django's 400 for more than ``DATA_UPLOAD_MAX_NUMBER_FIELDS`` parameters)."""
    routes = our_routes()
    if route not in routes:
        pytest.skip(f'{route} is not routed (yet)')
    baseline = client.get('/' + route).status_code
    query = data.draw(fuzz.queries(KEYS), label='query')
    before = stored_state()
    response = send(client, 'get', '/' + route, query, None)
    content = consume(response)
    note(f'GET /{route} query={query!r:.300} -> {response.status_code} {content[:300]!r}')
    assert response.status_code == baseline or 400 <= response.status_code < 500, (query, response.status_code)
    assert not changed_tables(before, stored_state())
