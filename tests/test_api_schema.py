"""Every API route of ours is in Label Studio's API docs (``/docs/api/``), with every method it serves.

The schema is built in-process by drf-spectacular's generator over our URLconf (what Label Studio's
``/docs/api/schema/`` view serves, ``manage.py spectacular`` writes); the routes and their methods come
from the URLconf and the views themselves (``tests/support/routes.py``), so a new route or method
without docs fails here. HTML pages (the retraining page) are not API routes: they must stay out.
Generation must emit no warning or error about a view of ours; every operation of ours has a tag
other than drf-spectacular's default ``api`` (what Label Studio's ``tests/test_docs.py`` checks), a
summary, and documented answers, the refusals included.
"""

from __future__ import annotations

import re

import pytest

from tests.support.routes import ROUTES, methods_of, our_routes

OURS = 'ls_extensions'
REFUSALS = {'401', '403', '404'}  # a project endpoint documents at least one of them

# deliberate gaps, each with its reason; the tests fail when one is no longer a gap (remove it then)
UNDOCUMENTED = {
    ('api/ml/<int:pk>', 'put'): "Label Studio's view, documented by Label Studio, which leaves PUT out "
    '(ml/api.py: extend_schema(exclude=True)); PATCH is documented',
}


def openapi_path(route: str) -> str:
    """``api/projects/<int:pk>/export`` -> ``/api/projects/{id}/export``: drf-spectacular's path template
    (``SCHEMA_COERCE_PATH_PK``: ``pk`` is named ``id``)."""
    path = '/' + re.sub(r'<(?:\w+:)?(\w+)>', r'{\1}', route)
    return path.replace('{pk}', '{id}')


@pytest.fixture(scope='module')
def generated():
    """(schema, warnings and errors about our views) from one generation."""
    from drf_spectacular.drainage import GENERATOR_STATS
    from drf_spectacular.generators import SchemaGenerator

    GENERATOR_STATS.reset()
    with GENERATOR_STATS.silence():
        schema = SchemaGenerator().get_schema(request=None, public=True)
    messages = [*GENERATOR_STATS._warn_cache, *GENERATOR_STATS._error_cache]
    GENERATOR_STATS.reset()
    # a message names the source file, then the breadcrumbs: "[ViewName > SerializerName]"
    names = {view.__name__ for view in our_routes().values() if getattr(view, '__module__', '').startswith(OURS)}
    ours = [m for m in messages if OURS in m or any(f'[{name}' in m for name in names)]
    return schema, ours


def api_routes():
    """(route, view) of ours under /api/, with the view's methods."""
    return [(route, view) for route, view in our_routes().items() if route.startswith('api/')]


def test_there_are_routes_to_check():
    routes = dict(api_routes())
    assert {'api/projects/<int:pk>/retraining/', 'api/projects/<int:pk>/uncertainty/', 'api/ls-ext/health/'} <= set(
        routes
    )


@pytest.mark.parametrize('route', [route for route, _ in api_routes()])
def test_every_method_of_every_api_route_is_documented(generated, route):
    schema, _ = generated
    view = our_routes()[route]
    methods = methods_of(view, route)
    assert methods, f'{route}: {view} serves no method?'
    path = openapi_path(route)
    assert path in schema['paths'], f'{path} is not in the API schema: add extend_schema to {view}'
    documented = schema['paths'][path]
    gaps = [m for m in methods if (route, m) in UNDOCUMENTED]
    assert not [m for m in gaps if m in documented], f'{route}: documented now, remove it from UNDOCUMENTED'
    missing = [m for m in methods if m not in documented and m not in gaps]
    assert not missing, f'{path}: methods {missing} of {view} are not in the API schema'
    for method in (m for m in methods if m not in gaps):
        operation = documented[method]
        assert operation.get('tags') and 'api' not in operation['tags'], (path, method, operation.get('tags'))
        if getattr(view, '__module__', '').startswith(OURS + '.') and view.__module__.endswith('.api'):
            assert operation.get('summary'), (path, method, 'no summary')
            answers = set(operation.get('responses', {}))
            assert any(code.startswith('2') for code in answers), (path, method, answers)
            if route in ROUTES:  # a project's endpoint: its refusals are documented too
                assert answers & REFUSALS, (path, method, answers)


def test_our_views_generate_without_warnings(generated):
    _, ours = generated
    assert not ours, '\n'.join(ours)


def test_html_pages_are_not_in_the_schema(generated):
    schema, _ = generated
    pages = [route for route, spec in ROUTES.items() if spec.get('html')]
    assert pages, 'the retraining page is in the security table'
    for route in pages:
        assert openapi_path(route) not in schema['paths'], route


def test_label_studio_docs_check_passes_for_every_operation(generated):
    """Label Studio's ``tests/utils.verify_docs``: no operation keeps the default ``api`` tag."""
    schema, _ = generated
    untagged = [
        f'{method.upper()} {path}'
        for path, operations in schema['paths'].items()
        for method, operation in operations.items()
        if isinstance(operation, dict) and 'api' in operation.get('tags', [])
    ]
    assert not untagged, untagged
