"""Every endpoint we add refuses anonymous users and members of another organization: a table test.

The table is derived from our URLconf: ``ls_extensions.urls.urlpatterns`` is walked recursively and
every route outside Label Studio's own ``core.urls`` is collected (our video export's four Label Studio
URLs are routed to our subclasses first, so they are collected too). Each collected route must be known
to ``ROUTES`` (how to fill its path parameters, which requests to send) or to ``PUBLIC`` (deliberately
open, with a reason): a new route that neither knows fails ``test_every_route_is_in_the_table`` and its
own case, so the table cannot silently skip an endpoint.

For every route and every method its view serves:

- anonymous -> 401/403 (APIs), or a redirect to the login page (HTML pages);
- a member of another organization -> 403/404, and nothing of the project in the answer;
- a removed member of the project's organization -> 403/404;
- the owner -> neither 401, 403 nor 404 (the check is not vacuous; 400 for an empty body is fine).

Data Manager actions we register (``register_action`` entries whose function is ours) are checked the
same way through Label Studio's ``/api/dm/actions`` endpoint, which lets any authenticated user through
in the open-source edition (``Project.has_permission``): the action itself must refuse.

Side effects: a fresh database per test; the retraining app publishes Celery messages through
``ls_extensions.retraining.services.enqueue``, which is replaced by a recorder here (no broker, no
network); scoring jobs run inline (no background thread).
"""

from __future__ import annotations

import re

import pytest
from django.urls import URLPattern, URLResolver, resolve

from tests.conftest import logged_in_client, make_project, make_user
from tests.label_configs import IMAGE_BOXES, VIDEO_TRACKING

pytestmark = pytest.mark.django_db

METHODS = ('get', 'post', 'put', 'patch', 'delete')
MARKER = 'SECRET-7f3a-'  # in project titles and task data: must never reach a stranger
LS_URLCONF = 'core.urls'


# ---------------------------------------------------------------- the routes, from the URLconf


def _view_of(pattern: URLPattern):
    callback = pattern.callback
    return getattr(callback, 'view_class', None) or getattr(callback, 'cls', None) or callback


def _walk(patterns, prefix=''):
    for entry in patterns:
        route = prefix + str(entry.pattern)
        if isinstance(entry, URLResolver):
            if getattr(entry.urlconf_name, '__name__', entry.urlconf_name) == LS_URLCONF:
                continue  # Label Studio's own routes (ours shadow some of them: those are collected above it)
            yield from _walk(entry.url_patterns, route)
        elif isinstance(entry, URLPattern):
            yield route, _view_of(entry)


def our_routes() -> dict[str, object]:
    """{route: view} for every route of ours; the first one of a route wins, as in Django's resolution."""
    from ls_extensions import urls

    found = {}
    for route, view in _walk(urls.urlpatterns):
        found.setdefault(route, view)
    return found


def methods_of(view) -> list[str]:
    if isinstance(view, type):
        return [m for m in METHODS if hasattr(view, m)]
    return ['get']  # a function view: GET is what it serves


def cases():
    """(route, method) for every method of every route of ours except the public ones (tested apart)."""
    routes = our_routes().items()
    return [(route, method) for route, view in routes if route not in PUBLIC for method in methods_of(view)]


# ---------------------------------------------------------------- the table

# path parameter -> the object of the owner's organization that fills it
PARAMS = {
    'pk': lambda objects, spec: objects[spec['project']].pk,
    'export_pk': lambda objects, spec: objects['snapshot'].pk,
}

# route -> the project it is about, whether it is an HTML page, and per method the requests to send
# (label, query, JSON body). Every variant is sent by every persona.
ROUTES = {
    'api/projects/<int:pk>/export/video-frames': {
        'project': 'video',
        'get': [('VIDEO_JSON', {'format': 'VIDEO_JSON'}, None)],
    },
    'api/projects/<int:pk>/export': {
        'project': 'video',
        'get': [
            ('ours: VIDEO_JSON', {'exportType': 'VIDEO_JSON'}, None),
            ("Label Studio's JSON", {'exportType': 'JSON'}, None),
        ],
    },
    'api/projects/<int:pk>/export/formats': {'project': 'video', 'get': [('list', {}, None)]},
    'api/projects/<int:pk>/exports/<int:export_pk>/convert': {
        'project': 'video',
        'post': [
            ('ours: VIDEO_CSV', {}, {'export_type': 'VIDEO_CSV'}),
            ("Label Studio's JSON_MIN", {}, {'export_type': 'JSON_MIN'}),
        ],
    },
    'api/projects/<int:pk>/exports/<int:export_pk>/download': {
        'project': 'video',
        'get': [
            ('ours: VIDEO_JSON', {'exportType': 'VIDEO_JSON'}, None),
            ("Label Studio's JSON", {}, None),
        ],
    },
    'api/projects/<int:pk>/uncertainty/': {
        'project': 'image',
        'get': [('policy', {}, None)],
        'patch': [('stream on', {}, {'stream': True})],
    },
    'api/projects/<int:pk>/uncertainty/recompute/': {'project': 'image', 'post': [('recompute', {}, {})]},
    'api/projects/<int:pk>/retraining/': {
        'project': 'image',
        'get': [('policy', {}, None)],
        'patch': [('enable', {}, {'enabled': True})],
    },
    'api/projects/<int:pk>/retraining/runs/': {'project': 'image', 'get': [('runs', {}, None)]},
    'api/projects/<int:pk>/retraining/train/': {'project': 'image', 'post': [('train', {}, {})]},
    'projects/<int:pk>/retraining/': {'project': 'image', 'html': True, 'get': [('page', {}, None)]},
}
EXPECTED_SOON: set[str] = set()  # routes known to the table before they are routed (none now)

# deliberately open routes: the reason, and they must answer nothing of any project
PUBLIC = {
    'heidi-tips/': "replaces Label Studio's GitHub tips fetch with a local 404 (offline); LS's frontend calls it",
    'api/ls-ext/health/': 'readiness probe for load balancers/orchestrators: check names, timings, no data',
    'api/ls-ext/health/live/': 'liveness probe for orchestrators: status and pid only',
}


@pytest.fixture
def world(db, monkeypatch, settings):
    """The owner's organization with an image and a video project (task, snapshot), a stranger, a removed member."""
    from django.utils import timezone
    from organizations.models import OrganizationMember
    from tasks.models import Task

    from ls_extensions.retraining import services as retraining_services
    from ls_extensions.scoring import dm

    published = []
    # no Celery publish from this test: the retraining app's only way out is services.enqueue
    monkeypatch.setattr(retraining_services, 'enqueue', lambda *args, **kwargs: published.append(args) or True)
    settings.LS_EXT_SCORING_RUNNER = 'inline'  # scoring jobs run in the request, no thread
    dm._checked.clear()
    dm._base_columns.clear()

    owner = make_user('owner@example.org')
    organization = owner.active_organization
    stranger = make_user('stranger@example.org')
    removed = make_user('removed@example.org', organization)
    OrganizationMember.objects.filter(user=removed, organization=organization).update(deleted_at=timezone.now())

    image = make_project(owner, IMAGE_BOXES, MARKER + 'images')
    video = make_project(owner, VIDEO_TRACKING, MARKER + 'videos')
    Task.objects.create(project=image, data={'image': f'/data/upload/1/{MARKER}img.jpg'})
    Task.objects.create(project=video, data={'video': f'/data/upload/1/{MARKER}clip.mp4'})

    clients = {'owner': logged_in_client(owner), 'stranger': logged_in_client(stranger)}
    clients['removed'] = logged_in_client(removed)
    snapshot = clients['owner'].post(f'/api/projects/{video.id}/exports/', {}, content_type='application/json')
    assert snapshot.status_code == 201, snapshot.content
    from data_export.models import Export

    objects = {'image': image, 'video': video, 'snapshot': Export.objects.get(pk=snapshot.json()['id'])}
    converted = clients['owner'].post(
        f'/api/projects/{video.id}/exports/{objects["snapshot"].pk}/convert',
        {'export_type': 'VIDEO_JSON'},
        content_type='application/json',
    )
    assert converted.status_code == 200, converted.content  # the owner's download has a file to download
    return {'objects': objects, 'clients': clients, 'published': published}


def fill(route: str, spec: dict, objects: dict) -> str:
    """The route with its path parameters filled by the owner's objects; an unknown parameter fails."""
    names = re.findall(r'<(?:\w+:)?(\w+)>', route)
    unknown = [name for name in names if name not in PARAMS]
    assert not unknown, f'{route}: no fixture object for path parameter(s) {unknown}: extend PARAMS'
    path = re.sub(r'<(?:\w+:)?(\w+)>', lambda m: str(PARAMS[m.group(1)](objects, spec)), route)
    assert not re.search(r'[<>^$()]', path), f'{route}: a regex route, fill it by hand in this test'
    return '/' + path


def send(client, method, path, query, body):
    from urllib.parse import urlencode

    url = path + ('?' + urlencode(query) if query else '')
    if method == 'get':
        return client.get(url)
    return getattr(client, method)(url, body or {}, content_type='application/json')


def text_of(response) -> str:
    if getattr(response, 'streaming', False):
        return b''.join(response.streaming_content).decode(errors='replace')
    return response.content.decode(errors='replace')


def test_every_route_is_in_the_table():
    routes = our_routes()
    unknown = sorted(set(routes) - set(ROUTES) - set(PUBLIC))
    assert not unknown, f'routes neither in ROUTES nor in PUBLIC (add them to the security table): {unknown}'
    stale = sorted(set(ROUTES) - set(routes) - EXPECTED_SOON)
    assert not stale, f'table entries without a route: {stale}'
    for route, view in routes.items():
        if route in ROUTES:
            missing = [m for m in methods_of(view) if m not in ROUTES[route]]
            assert not missing, f'{route}: methods {missing} of {view} have no requests in the table'


def test_the_overridden_label_studio_urls_resolve_to_our_views(world):
    """The four export URLs Label Studio also serves are ours first (else the table tests the wrong view)."""
    routes = our_routes()
    for route, spec in ROUTES.items():
        if route not in routes:
            continue
        match = resolve(fill(route, spec, world['objects']))
        assert _view_of_match(match) is routes[route], route


def _view_of_match(match):
    func = match.func
    return getattr(func, 'view_class', None) or getattr(func, 'cls', None) or func


@pytest.mark.parametrize(('route', 'method'), cases())
def test_route_refuses_anonymous_and_other_organizations(route, method, world, client):
    spec = ROUTES.get(route)
    if spec is None:
        pytest.fail(f'{route} is not in the security table: add it to ROUTES (or PUBLIC with a reason)')
    variants = spec.get(method)
    if not variants:
        pytest.fail(f'{route}: {method.upper()} is served but has no requests in the table')
    objects, clients = world['objects'], world['clients']
    path = fill(route, spec, objects)
    for label, query, body in variants:
        anonymous = send(client, method, path, query, body)
        if spec.get('html'):
            assert anonymous.status_code == 302 and '/user/login' in anonymous['Location'], (label, anonymous)
        else:
            assert anonymous.status_code in (401, 403), (label, anonymous.status_code, text_of(anonymous)[:300])
        assert MARKER not in text_of(anonymous)
        refused = {}
        for persona in ('stranger', 'removed'):
            response = send(clients[persona], method, path, query, body)
            content = text_of(response)
            assert response.status_code in (403, 404), (persona, label, response.status_code, content[:300])
            assert MARKER not in content, (persona, label)
            refused[persona] = response.status_code
        owner = send(clients['owner'], method, path, query, body)
        content = text_of(owner)
        assert owner.status_code not in (401, 403, 404), (label, owner.status_code, content[:300])
        assert owner.status_code < 500, (label, owner.status_code, content[:300])
        print(
            f'\nROW | /{route} | {method.upper()} {label} | {anonymous.status_code} | {refused["stranger"]} '
            f'| {refused["removed"]} | {owner.status_code}'
        )


@pytest.mark.parametrize('route', sorted(PUBLIC))
def test_public_routes_answer_no_project_data(route, world, client):
    routes = our_routes()
    if route not in routes:
        pytest.skip(f'{route} is not routed (yet)')
    for who, http in (('anonymous', client), ('stranger', world['clients']['stranger'])):
        for method in methods_of(routes[route]):
            response = send(http, method, '/' + route, {}, None)
            assert response.status_code in (200, 404, 503), (who, method, response.status_code)  # 503: not ready
            assert MARKER not in text_of(response), (who, method)
            print(f'\nROW | /{route} (public) | {method.upper()} | {who}: {response.status_code}')


# ---------------------------------------------------------------- Data Manager actions


def our_actions() -> list[str]:
    from django.conf import settings

    return sorted(
        action_id
        for action_id, action in settings.DATA_MANAGER_ACTIONS.items()
        if getattr(action.get('entry_point'), '__module__', '').startswith('ls_extensions.')
    )


KNOWN_HOLES = {}  # action id -> reason: a hole found and not fixed yet (strict xfail, so a fix shows)


def test_our_actions_are_found():
    assert {'recompute_uncertainty', 'label_most_uncertain_first', 'retrain_now'} <= set(our_actions())


@pytest.mark.parametrize(
    'action_id',
    [
        pytest.param(a, marks=pytest.mark.xfail(strict=True, reason=KNOWN_HOLES[a])) if a in KNOWN_HOLES else a
        for a in our_actions()
    ],
)
def test_data_manager_action_refuses_other_organizations(action_id, world, client):
    from ls_extensions.retraining.models import RetrainingPolicy
    from ls_extensions.scoring.models import RecomputeJob

    project = world['objects']['image']
    url = f'/api/dm/actions?project={project.pk}&id={action_id}'
    body = {'selectedItems': {'all': True, 'excluded': []}}
    before = (project.sampling, RecomputeJob.objects.count(), RetrainingPolicy.objects.filter(pending=True).count())

    anonymous = client.post(url, body, content_type='application/json')
    assert anonymous.status_code in (401, 403), anonymous.status_code
    refused = {}
    for persona in ('stranger', 'removed'):
        response = world['clients'][persona].post(url, body, content_type='application/json')
        refused[persona] = response.status_code
        project.refresh_from_db()
        after = (project.sampling, RecomputeJob.objects.count(), RetrainingPolicy.objects.filter(pending=True).count())
        assert after == before and not world['published'], (persona, response.status_code, response.content[:300])
        assert response.status_code in (403, 404), (persona, response.status_code, response.content[:300])
    owner = world['clients']['owner'].post(url, body, content_type='application/json')
    assert owner.status_code == 200, owner.content
    print(
        f'\nROW | DM action {action_id} | POST | {anonymous.status_code} | {refused["stranger"]} '
        f'| {refused["removed"]} | {owner.status_code}'
    )

    form = f'/api/dm/actions/{action_id}/form/?project={project.pk}'  # a form may show the project's settings
    owner_form = world['clients']['owner'].get(form)
    assert owner_form.status_code == 200, owner_form.content
    if owner_form.json():
        for persona in ('stranger', 'removed'):
            response = world['clients'][persona].get(form)
            assert response.status_code in (403, 404), (persona, response.status_code, response.content[:300])
