"""``GET /api/ls-ext/health/`` (readiness: 200 or 503 with every check) and ``/api/ls-ext/health/live/`` (liveness).

Anonymous on purpose (load balancers and orchestrators call them). An anonymous caller learns which
check failed (``"failed": ["database"]``), never why: exception texts name hosts, users and URLs. They
are in the server log, and a signed-in staff user (or superuser) sees them in the answer too.

DRF views only so that they are in the API docs (``/docs/api/``): no authentication, no permission,
no content negotiation (any ``Accept`` gets the JSON), GET only, never cached. ``HealthFirstMiddleware``
calls them ahead of the session and auth middleware; the session's user is read lazily from the
Django request (``signed_in_user``), never through DRF's authentication, which would set it anonymous.
"""

import logging
import os
import socket
from importlib import import_module

from django.conf import settings
from django.contrib import auth
from django.http import JsonResponse
from django.utils.cache import add_never_cache_headers
from drf_spectacular.utils import OpenApiResponse, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.negotiation import BaseContentNegotiation
from rest_framework.permissions import AllowAny
from rest_framework.views import APIView

from ls_extensions.health import checks

FAILED = 'failed'
logger = logging.getLogger(__name__)


def may_see_details(user):
    return bool(user is not None and user.is_authenticated and (user.is_staff or user.is_superuser))


def signed_in_user(request):
    """The session's user. ``HealthFirstMiddleware`` runs this view ahead of the session and auth
    middleware, so the session is read here; None without one, or when the database is down."""
    user = getattr(request, 'user', None)
    if user is not None:
        return user
    key = request.COOKIES.get(settings.SESSION_COOKIE_NAME)
    if not key:
        return None
    try:
        request.session = import_module(settings.SESSION_ENGINE).SessionStore(key)
        return auth.get_user(request)
    except Exception as exc:  # noqa: BLE001 - no user is an anonymous answer, never an error
        logger.info('health: session user not read (%s)', type(exc).__name__)
        return None


def redacted(results):
    """The check results without the exception texts: a failed check says ``"error": "failed"``."""
    return {
        name: {**{k: v for k, v in result.items() if k != 'error'}, **({} if result['ok'] else {'error': FAILED})}
        for name, result in results.items()
    }


def ready_payload(request):
    """The readiness answer: its JSON and status (200 when every check passed, else 503)."""
    report = checks.run_all()
    details = may_see_details(signed_in_user(request))
    payload = {
        'status': 'ok' if report['ok'] else 'unavailable',
        'process': 'web',
        'pid': os.getpid(),
        'failed': [name for name, result in report['checks'].items() if not result['ok']],
        'checks': report['checks'] if details else redacted(report['checks']),
    }
    if details:
        payload['host'] = socket.gethostname()
    return payload, 200 if report['ok'] else 503


class AnyAcceptGetsJSON(BaseContentNegotiation):
    """A probe's ``Accept`` header is not a reason to fail it (DRF's default would answer 406)."""

    def select_parser(self, request, parsers):
        return parsers[0] if parsers else None

    def select_renderer(self, request, renderers, format_suffix=None):
        return renderers[0], renderers[0].media_type


class HealthView(APIView):
    """Anonymous, GET only, never cached (as ``never_cache`` and ``require_GET`` did)."""

    authentication_classes = []
    permission_classes = [AllowAny]
    content_negotiation_class = AnyAcceptGetsJSON
    http_method_names = ['get']

    def perform_authentication(self, request):
        """Nothing: DRF's would set the Django request's user to anonymous (see ``signed_in_user``)."""

    def answer(self, request):
        raise NotImplementedError

    def get(self, request):
        payload, status = self.answer(request._request)
        response = JsonResponse(payload, status=status)
        add_never_cache_headers(response)
        return response


CHECK = inline_serializer(
    'HealthCheckResult',
    {
        'ok': serializers.BooleanField(),
        'ms': serializers.FloatField(required=False, help_text='How long the check took (milliseconds)'),
        'error': serializers.CharField(required=False, help_text=f'"{FAILED}", or the exception text for staff users'),
    },
)
PROCESS = {
    'status': serializers.CharField(help_text='"ok", or "unavailable" when a check failed'),
    'process': serializers.CharField(help_text='"web"'),
    'pid': serializers.IntegerField(),
}
READY = inline_serializer(
    'HealthReady',
    {
        **PROCESS,
        'failed': serializers.ListField(child=serializers.CharField(), help_text='The names of the failed checks'),
        'checks': serializers.DictField(child=CHECK, help_text='Every check by name: database, broker, ...'),
        'host': serializers.CharField(required=False, help_text='The host name (staff users only)'),
    },
)


@extend_schema(
    tags=['Health'],
    summary='Readiness',
    description='Runs every check (database, broker, ...). Anonymous callers learn which check failed, never '
    'why; signed-in staff users also get the exception texts and the host name.',
    auth=[],
    responses={200: READY, 503: OpenApiResponse(READY, description='A check failed: the same shape')},
)
class ReadyView(HealthView):
    def answer(self, request):
        return ready_payload(request)


@extend_schema(
    tags=['Health'],
    summary='Liveness',
    description='The process answers requests; nothing else is checked (restart it only when this fails).',
    auth=[],
    responses={200: inline_serializer('HealthLive', PROCESS)},
)
class LiveView(HealthView):
    def answer(self, request):
        return {'status': 'ok', 'process': 'web', 'pid': os.getpid()}, 200


ready = ReadyView.as_view()
live = LiveView.as_view()
