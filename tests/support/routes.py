"""The table of every route and Data Manager action we add, shared by the security table and the fuzz test.

The routes are derived from our URLconf: ``ls_extensions.urls.urlpatterns`` is walked recursively and
every route outside Label Studio's own ``core.urls`` is collected (our video export's four Label Studio
URLs are routed to our subclasses first, so they are collected too). Each collected route must be known
to ``ROUTES`` (how to fill its path parameters, which requests to send) or to ``PUBLIC`` (deliberately
open, with a reason); ``tests/test_security_table.py::test_every_route_is_in_the_table`` fails on a new
route that neither knows, so neither test can silently skip an endpoint.

The actions are the ``register_action`` entries whose function is ours (Label Studio's endpoint:
``POST /api/dm/actions?id=<action>&project=<id>``).
"""

from __future__ import annotations

import re

from django.urls import URLPattern, URLResolver

METHODS = ('get', 'post', 'put', 'patch', 'delete')
LS_URLCONF = 'core.urls'


# ---------------------------------------------------------------- the routes, from the URLconf


def view_of(pattern: URLPattern):
    callback = pattern.callback
    return getattr(callback, 'view_class', None) or getattr(callback, 'cls', None) or callback


def view_of_match(match):
    func = match.func
    return getattr(func, 'view_class', None) or getattr(func, 'cls', None) or func


def _walk(patterns, prefix=''):
    for entry in patterns:
        route = prefix + str(entry.pattern)
        if isinstance(entry, URLResolver):
            if getattr(entry.urlconf_name, '__name__', entry.urlconf_name) == LS_URLCONF:
                continue  # Label Studio's own routes (ours shadow some of them: those are collected above it)
            yield from _walk(entry.url_patterns, route)
        elif isinstance(entry, URLPattern):
            yield route, view_of(entry)


def our_routes() -> dict[str, object]:
    """{route: view} for every route of ours; the first one of a route wins, as in Django's resolution."""
    from ls_extensions import urls

    found = {}
    for route, view in _walk(urls.urlpatterns):
        found.setdefault(route, view)
    return found


def methods_of(view, route: str | None = None) -> list[str]:
    """The methods a view serves, read from the view itself (``route`` is unused, kept for the callers).

    A class: its handlers among its ``http_method_names``. A function view: probed (``probed_methods``).
    """
    if isinstance(view, type):
        names = getattr(view, 'http_method_names', METHODS)
        return [m for m in METHODS if m in names and hasattr(view, m)]
    return probed_methods(view)


class _SignedIn:
    """The probe's user: gets past ``login_required`` (it is never used further: see ``probed_methods``)."""

    is_authenticated = True
    is_active = True
    pk = id = None


def probed_methods(view) -> list[str]:
    """A function view's methods: what its ``require_http_methods`` answers to a method nobody serves.

    The decorator answers 405 with ``Allow`` before the view runs (after ``login_required``, which the
    probe's stand-in user passes). A view without it serves every method: the probe then ran the view
    itself, which must answer without its URL parameters (else decorate it: the probe fails loudly).
    """
    from django.test import RequestFactory

    request = RequestFactory().generic('PROBE', '/probe')
    request.user = _SignedIn()
    try:
        response = view(request)
    except Exception as exc:  # noqa: BLE001 - the message says what to do
        raise AssertionError(f'{view}: decorate it with require_http_methods so that its methods can be read') from exc
    if response.status_code != 405:
        return list(METHODS)  # no method check: every method reaches the view
    allowed = [m.strip().lower() for m in response['Allow'].split(',')]
    return [m for m in METHODS if m in allowed]


# ---------------------------------------------------------------- the table

# path parameter (or ``'<name>'`` placeholder in a query or body) -> the owner's object that fills it;
# ``pk`` is the project's unless the route's entry names another object (``'pk': 'backend'``)
PARAMS = {
    'pk': lambda objects, spec: objects[spec.get('pk', spec['project'])].pk,
    'project': lambda objects, spec: objects[spec['project']].pk,
    'export_pk': lambda objects, spec: objects['snapshot'].pk,
}

# The status each persona must get (``answers``: anonymous, another organization's member, a member
# removed from the project's organization; the owner's per request label), by the idiom of the view
# (ls_extensions/permissions.py): our project APIs and pages answer a non-member 404; Label Studio's
# views we build on answer as Label Studio does.
PROJECT_API = {'anonymous': 401, 'stranger': 404, 'removed': 404}  # ProjectMemberAPIMixin
PROJECT_PAGE = {'anonymous': 302, 'stranger': 404, 'removed': 404}  # login_required + member_project_or_404
# the user's organization's projects (404), then Label Studio's object check (403: the removed member's
# organization is still the active one)
LS_EXPORT = {'anonymous': 401, 'stranger': 404, 'removed': 403}
LS_ML_BACKEND = {'anonymous': 401, 'stranger': 403, 'removed': 403}  # Label Studio's view + membership on the object

# route -> the project it is about, whether it is an HTML page, per method the requests to send
# (label, query, body: JSON for APIs, a form for HTML pages), and the answers each persona must get
# (``owner``: by request label). Every variant is sent by every persona.
ROUTES = {
    'api/projects/<int:pk>/export/video-frames': {
        'project': 'video',
        'get': [('VIDEO_JSON', {'format': 'VIDEO_JSON'}, None)],
        'answers': {**PROJECT_API, 'owner': {'VIDEO_JSON': 200}},
    },
    'api/projects/<int:pk>/export': {
        'project': 'video',
        'get': [
            ('ours: VIDEO_JSON', {'exportType': 'VIDEO_JSON'}, None),
            ("Label Studio's JSON", {'exportType': 'JSON'}, None),
        ],
        'answers': {**LS_EXPORT, 'owner': {'ours: VIDEO_JSON': 200, "Label Studio's JSON": 200}},
    },
    'api/projects/<int:pk>/export/formats': {
        'project': 'video',
        'get': [('list', {}, None)],
        'answers': {**LS_EXPORT, 'owner': {'list': 200}},
    },
    'api/projects/<int:pk>/exports/<int:export_pk>/convert': {
        'project': 'video',
        'post': [
            ('ours: VIDEO_CSV', {}, {'export_type': 'VIDEO_CSV'}),
            ("Label Studio's JSON_MIN", {}, {'export_type': 'JSON_MIN'}),
        ],
        'answers': {**LS_EXPORT, 'owner': {'ours: VIDEO_CSV': 200, "Label Studio's JSON_MIN": 200}},
    },
    'api/projects/<int:pk>/exports/<int:export_pk>/download': {
        'project': 'video',
        'get': [
            ('ours: VIDEO_JSON', {'exportType': 'VIDEO_JSON'}, None),
            ("Label Studio's JSON", {}, None),
        ],
        'answers': {**LS_EXPORT, 'owner': {'ours: VIDEO_JSON': 200, "Label Studio's JSON": 200}},
    },
    'api/projects/<int:pk>/uncertainty/': {
        'project': 'image',
        'get': [('policy', {}, None)],
        'patch': [('stream on', {}, {'stream': True})],
        'answers': {**PROJECT_API, 'owner': {'policy': 200, 'stream on': 200}},
    },
    'api/projects/<int:pk>/uncertainty/recompute/': {
        'project': 'image',
        'post': [('recompute', {}, {})],
        'answers': {**PROJECT_API, 'owner': {'recompute': 202}},
    },
    'api/projects/<int:pk>/mistakes/': {
        'project': 'image',
        'get': [('mistakes', {}, None), ('by kind', {'kind': 'missing', 'min_value': '0.5'}, None)],
        'answers': {**PROJECT_API, 'owner': {'mistakes': 200, 'by kind': 200}},
    },
    'api/projects/<int:pk>/retraining/': {
        'project': 'image',
        'get': [('policy', {}, None)],
        'patch': [('enable', {}, {'enabled': True})],
        'answers': {**PROJECT_API, 'owner': {'policy': 200, 'enable': 200}},
    },
    'api/projects/<int:pk>/retraining/runs/': {
        'project': 'image',
        'get': [('runs', {}, None)],
        'answers': {**PROJECT_API, 'owner': {'runs': 200}},
    },
    'api/projects/<int:pk>/retraining/train/': {
        'project': 'image',
        'post': [('train', {}, {})],
        'answers': {**PROJECT_API, 'owner': {'train': 202}},
    },
    # Label Studio's ML backend API, routed to our subclasses (ml_backend/urls.py: the URL check)
    'api/ml/': {
        'project': 'image',
        'get': [('list', {'project': '<project>'}, None)],
        'post': [('connect', {}, {'project': '<project>', 'url': 'http://127.0.0.1:1', 'title': 'table'})],
        # the backend at port 1 never answers: Label Studio's health check refuses it (400) after the checks
        'answers': {**LS_ML_BACKEND, 'owner': {'list': 200, 'connect': 400}},
    },
    'api/ml/<int:pk>': {
        'project': 'image',
        'pk': 'backend',
        'get': [('backend', {}, None)],
        'put': [('replace', {}, {'project': '<project>', 'url': 'http://127.0.0.1:1', 'title': 'renamed'})],
        'patch': [('rename', {}, {'title': 'renamed'})],
        'delete': [('remove', {}, None)],
        'answers': {**LS_ML_BACKEND, 'owner': {'backend': 200, 'replace': 400, 'rename': 400, 'remove': 204}},
    },
    'projects/<int:pk>/retraining/': {
        'project': 'image',
        'html': True,
        'get': [('page', {}, None)],
        'post': [('save the form', {}, {'threshold': '5', 'enabled': 'on'}), ('retrain', {}, {'action': 'retrain'})],
        # the form without its other numbers: the page again with the errors (400); retrain: back to the page
        'answers': {**PROJECT_PAGE, 'owner': {'page': 200, 'save the form': 400, 'retrain': 302}},
    },
}
EXPECTED_SOON: set[str] = set()  # routes known to the table before they are routed (none now)

# deliberately open routes: the reason, and they must answer nothing of any project
PUBLIC = {
    'heidi-tips/': "replaces Label Studio's GitHub tips fetch with a local empty collection (offline); LS's frontend calls it",
    'api/ls-ext/health/': 'readiness probe for load balancers/orchestrators: check names, timings, no data',
    'api/ls-ext/health/live/': 'liveness probe for orchestrators: status and pid only',
}


def fill(route: str, spec: dict, objects: dict, overrides: dict | None = None) -> str:
    """The route with its path parameters filled by the owner's objects (or ``overrides``, by parameter name).

    An unknown parameter fails.
    """
    names = re.findall(r'<(?:\w+:)?(\w+)>', route)
    unknown = [name for name in names if name not in PARAMS]
    assert not unknown, f'{route}: no fixture object for path parameter(s) {unknown}: extend PARAMS'
    overrides = overrides or {}

    def value(match):
        name = match.group(1)
        return str(overrides[name] if name in overrides else PARAMS[name](objects, spec))

    path = re.sub(r'<(?:\w+:)?(\w+)>', value, route)
    assert not re.search(r'[<>^$()]', path), f'{route}: a regex route, fill it by hand in this test'
    return '/' + path


def fill_values(value, spec: dict, objects: dict):
    """A query or body with its ``'<name>'`` placeholders (whole strings) filled like path parameters."""
    if isinstance(value, dict):
        return {key: fill_values(item, spec, objects) for key, item in value.items()}
    if isinstance(value, list):
        return [fill_values(item, spec, objects) for item in value]
    match = re.fullmatch(r'<(\w+)>', value) if isinstance(value, str) else None
    if match and match.group(1) in PARAMS:
        return PARAMS[match.group(1)](objects, spec)
    return value


def send(client, method, path, query, body, form=False):
    """One request of the table: the query string encoded, the body as JSON (APIs) or a form (``form``)."""
    from urllib.parse import urlencode

    url = path + ('?' + urlencode(query, doseq=True) if query else '')
    if method == 'get':
        return client.get(url)
    if form:
        assert method == 'post', f'{method.upper()} with a form body'
        return client.post(url, body or {})
    return getattr(client, method)(url, body or {}, content_type='application/json')


# ---------------------------------------------------------------- Data Manager actions


def our_actions() -> list[str]:
    from django.conf import settings

    return sorted(
        action_id
        for action_id, action in settings.DATA_MANAGER_ACTIONS.items()
        if getattr(action.get('entry_point'), '__module__', '').startswith('ls_extensions.')
    )
