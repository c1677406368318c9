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
    """The methods a view serves: a class's handlers; a function view serves GET plus what its entry lists.

    (A function view's ``require_http_methods`` cannot be read back, so the table says which it takes.)
    """
    if isinstance(view, type):
        return [m for m in METHODS if hasattr(view, m)]
    spec = ROUTES.get(route, {})
    return ['get', *(m for m in METHODS if m != 'get' and m in spec)]


# ---------------------------------------------------------------- the table

# path parameter (or ``'<name>'`` placeholder in a query or body) -> the owner's object that fills it;
# ``pk`` is the project's unless the route's entry names another object (``'pk': 'backend'``)
PARAMS = {
    'pk': lambda objects, spec: objects[spec.get('pk', spec['project'])].pk,
    'project': lambda objects, spec: objects[spec['project']].pk,
    'export_pk': lambda objects, spec: objects['snapshot'].pk,
}

# route -> the project it is about, whether it is an HTML page, and per method the requests to send
# (label, query, body: JSON for APIs, a form for HTML pages). Every variant is sent by every persona.
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
    # Label Studio's ML backend API, routed to our subclasses (ml_backend/urls.py: the URL check)
    'api/ml/': {
        'project': 'image',
        'get': [('list', {'project': '<project>'}, None)],
        'post': [('connect', {}, {'project': '<project>', 'url': 'http://127.0.0.1:1', 'title': 'table'})],
    },
    'api/ml/<int:pk>': {
        'project': 'image',
        'pk': 'backend',
        'get': [('backend', {}, None)],
        'put': [('replace', {}, {'project': '<project>', 'url': 'http://127.0.0.1:1', 'title': 'renamed'})],
        'patch': [('rename', {}, {'title': 'renamed'})],
        'delete': [('remove', {}, None)],
    },
    'projects/<int:pk>/retraining/': {
        'project': 'image',
        'html': True,
        'get': [('page', {}, None)],
        'post': [('save the form', {}, {'threshold': '5', 'enabled': 'on'}), ('retrain', {}, {'action': 'retrain'})],
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
