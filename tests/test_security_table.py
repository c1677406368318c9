"""Every endpoint we add refuses anonymous users and members of another organization: a table test.

The table is derived from our URLconf: ``ls_extensions.urls.urlpatterns`` is walked recursively and
every route outside Label Studio's own ``core.urls`` is collected (our video export's four Label Studio
URLs are routed to our subclasses first, so they are collected too). Each collected route must be known
to ``ROUTES`` (how to fill its path parameters, which requests to send) or to ``PUBLIC`` (deliberately
open, with a reason): a new route that neither knows fails ``test_every_route_is_in_the_table`` and its
own case, so the table cannot silently skip an endpoint. The table lives in ``tests/support/routes.py``
(the fuzz test, ``tests/test_fuzz_endpoints.py``, sends its requests to the same routes).

For every route and every method its view serves (read from the view: a class's handlers among its
``http_method_names``, a function view's ``require_http_methods``, so a new method without requests in
the table fails):

- anonymous -> 401/403 (APIs), or a redirect to the login page (HTML pages);
- a member of another organization -> 403/404, and nothing of the project in the answer;
- a removed member of the project's organization -> 403/404;
- the owner -> neither 401, 403 nor 404 (the check is not vacuous; 400 for an empty body is fine);
- and each of them exactly the status the route's ``answers`` entry says (``tests/support/routes.py``:
  by the permission idiom of the view, ``ls_extensions/permissions.py``; the owner's by request).

Data Manager actions we register (``register_action`` entries whose function is ours) are checked the
same way through Label Studio's ``/api/dm/actions`` endpoint, which lets any authenticated user through
in the open-source edition (``Project.has_permission``): the action itself must refuse.

Side effects: a fresh database per test; the retraining app publishes Celery messages through
``ls_extensions.retraining.queueing.enqueue``, which is replaced by a recorder here (no broker, no
network); scoring jobs run inline (no background thread).
"""

from __future__ import annotations

import pytest
from django.urls import resolve

from tests.conftest import logged_in_client, make_project, make_user
from tests.label_configs import IMAGE_BOXES, VIDEO_TRACKING
from tests.support.routes import (
    EXPECTED_SOON,
    METHODS,
    PUBLIC,
    ROUTES,
    fill,
    fill_values,
    methods_of,
    our_actions,
    our_routes,
    send,
    view_of_match,
)

pytestmark = pytest.mark.django_db

MARKER = 'SECRET-7f3a-'  # in project titles and task data: must never reach a stranger
PERSONAS = ('anonymous', 'stranger', 'removed')


def cases():
    """(route, method) for every method of every route of ours except the public ones (tested apart)."""
    routes = our_routes().items()
    return [(route, method) for route, view in routes if route not in PUBLIC for method in methods_of(view, route)]


@pytest.fixture
def world(db, monkeypatch, settings):
    """The owner's organization with an image and a video project (task, snapshot), a stranger, a removed member."""
    from django.utils import timezone
    from organizations.models import OrganizationMember
    from tasks.models import Task

    from ls_extensions.retraining import queueing as retraining_queueing
    from ls_extensions.scoring import dm

    published = []
    # no Celery publish from this test: the retraining app's only way out is queueing.enqueue
    monkeypatch.setattr(retraining_queueing, 'enqueue', lambda *args, **kwargs: published.append(args) or True)
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
    from ml.models import MLBackend

    # bulk_create: no webhook (Label Studio's SSRF check refuses one to loopback), no health check
    MLBackend.objects.bulk_create([MLBackend(project=image, url='http://127.0.0.1:1', title=MARKER + 'backend')])
    objects = {'image': image, 'video': video, 'snapshot': Export.objects.get(pk=snapshot.json()['id'])}
    objects['backend'] = MLBackend.objects.get(project=image)
    converted = clients['owner'].post(
        f'/api/projects/{video.id}/exports/{objects["snapshot"].pk}/convert',
        {'export_type': 'VIDEO_JSON'},
        content_type='application/json',
    )
    assert converted.status_code == 200, converted.content
    from ls_extensions.video.conversions import run_conversion

    # the conversion's Celery task (never published here: nothing commits), run as the worker would
    assert run_conversion(converted.json()['converted_format'])  # the owner's download has a file to download
    return {'objects': objects, 'clients': clients, 'published': published}


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
            missing = [m for m in methods_of(view, route) if m not in ROUTES[route]]
            assert not missing, f'{route}: methods {missing} of {view} have no requests in the table'
            extra = [m for m in METHODS if m in ROUTES[route] and m not in methods_of(view, route)]
            assert not extra, f'{route}: the table has requests for {extra}, which {view} does not serve'


def test_every_request_of_the_table_says_what_each_persona_gets():
    for route, spec in ROUTES.items():
        answers = spec.get('answers', {})
        assert set(PERSONAS) <= set(answers), f'{route}: answers for {sorted(set(PERSONAS) - set(answers))}'
        labels = [label for method in METHODS for label, _, _ in spec.get(method, [])]
        assert len(labels) == len(set(labels)), f'{route}: request labels must be unique'
        assert set(answers.get('owner', {})) == set(labels), f"{route}: the owner's answer by label: {labels}"


def test_function_views_are_probed_for_their_methods():
    """The retraining page (a function view) serves GET and POST, as its require_http_methods says."""
    routes = our_routes()
    assert methods_of(routes['projects/<int:pk>/retraining/']) == ['get', 'post']
    assert methods_of(routes['api/ls-ext/health/']) == ['get']


def test_the_overridden_label_studio_urls_resolve_to_our_views(world):
    """The four export URLs Label Studio also serves are ours first (else the table tests the wrong view)."""
    routes = our_routes()
    for route, spec in ROUTES.items():
        if route not in routes:
            continue
        match = resolve(fill(route, spec, world['objects']))
        assert view_of_match(match) is routes[route], route


@pytest.mark.parametrize(('route', 'method'), cases())
def test_route_refuses_anonymous_and_other_organizations(route, method, world, client):
    spec = ROUTES.get(route)
    if spec is None:
        pytest.fail(f'{route} is not in the security table: add it to ROUTES (or PUBLIC with a reason)')
    variants = spec.get(method)
    if not variants:
        pytest.fail(f'{route}: {method.upper()} is served but has no requests in the table')
    objects, clients, answers = world['objects'], world['clients'], spec['answers']
    path, form = fill(route, spec, objects), spec.get('html', False)
    for label, query, body in variants:
        query, body = fill_values(query, spec, objects), fill_values(body, spec, objects)
        anonymous = send(client, method, path, query, body, form)
        if spec.get('html'):
            assert anonymous.status_code == 302 and '/user/login' in anonymous['Location'], (label, anonymous)
        else:
            assert anonymous.status_code in (401, 403), (label, anonymous.status_code, text_of(anonymous)[:300])
        assert anonymous.status_code == answers['anonymous'], (label, anonymous.status_code, answers)
        assert MARKER not in text_of(anonymous)
        refused = {}
        for persona in ('stranger', 'removed'):
            response = send(clients[persona], method, path, query, body, form)
            content = text_of(response)
            assert response.status_code in (403, 404), (persona, label, response.status_code, content[:300])
            assert response.status_code == answers[persona], (persona, label, response.status_code, answers)
            assert MARKER not in content, (persona, label)
            refused[persona] = response.status_code
        owner = send(clients['owner'], method, path, query, body, form)
        content = text_of(owner)
        assert owner.status_code not in (401, 403, 404), (label, owner.status_code, content[:300])
        assert owner.status_code < 500, (label, owner.status_code, content[:300])
        assert owner.status_code == answers['owner'][label], (label, owner.status_code, content[:300])
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


# the world's ML backend (port 1) never answers: the owner passes the permission check and is told so
OWNER_ANSWER = {'retrieve_tasks_predictions': 400}
# every action of ours: Label Studio's endpoint refuses anonymous users (401), ``action_refusal`` a
# non-member (403: the idiom of ls_extensions/permissions.py); the dialog form ``require_member`` (403)
ACTION_REFUSALS = {'anonymous': 401, 'stranger': 403, 'removed': 403}
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
    assert anonymous.status_code == ACTION_REFUSALS['anonymous'], anonymous.status_code
    refused = {}
    for persona in ('stranger', 'removed'):
        response = world['clients'][persona].post(url, body, content_type='application/json')
        refused[persona] = response.status_code
        project.refresh_from_db()
        after = (project.sampling, RecomputeJob.objects.count(), RetrainingPolicy.objects.filter(pending=True).count())
        assert after == before and not world['published'], (persona, response.status_code, response.content[:300])
        assert response.status_code in (403, 404), (persona, response.status_code, response.content[:300])
        assert response.status_code == ACTION_REFUSALS[persona], (persona, response.status_code)
    owner = world['clients']['owner'].post(url, body, content_type='application/json')
    assert owner.status_code == OWNER_ANSWER.get(action_id, 200), owner.content
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
            assert response.status_code == ACTION_REFUSALS[persona], (persona, response.status_code)
