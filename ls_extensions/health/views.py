"""``GET /api/ls-ext/health/`` (readiness: 200 or 503 with every check) and ``/api/ls-ext/health/live/`` (liveness).

Anonymous on purpose (load balancers and orchestrators call them). An anonymous caller learns which
check failed (``"failed": ["database"]``), never why: exception texts name hosts, users and URLs. They
are in the server log, and a signed-in staff user (or superuser) sees them in the answer too.
"""

import logging
import os
import socket
from importlib import import_module

from django.conf import settings
from django.contrib import auth
from django.http import JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

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


@never_cache
@require_GET
def ready(request):
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
    return JsonResponse(payload, status=200 if report['ok'] else 503)


@never_cache
@require_GET
def live(request):
    """The process answers requests; nothing else is checked (restart it only when this fails)."""
    return JsonResponse({'status': 'ok', 'process': 'web', 'pid': os.getpid()})
