"""``GET /api/ls-ext/health/`` (readiness: 200 or 503 with every check) and ``/api/ls-ext/health/live/`` (liveness).

Anonymous on purpose (load balancers and orchestrators call them); they show no data, only check names,
timings and error classes.
"""

import os
import socket

from django.http import JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from ls_extensions.health import checks


@never_cache
@require_GET
def ready(request):
    report = checks.run_all()
    payload = {
        'status': 'ok' if report['ok'] else 'unavailable',
        'process': 'web',
        'host': socket.gethostname(),
        'pid': os.getpid(),
        'checks': report['checks'],
    }
    return JsonResponse(payload, status=200 if report['ok'] else 503)


@never_cache
@require_GET
def live(request):
    """The process answers requests; nothing else is checked (restart it only when this fails)."""
    return JsonResponse({'status': 'ok', 'process': 'web', 'pid': os.getpid()})
