"""Health answers ahead of Label Studio's middleware, so that a database outage reads as one.

Label Studio's ``DummyGetSessionMiddleware`` queries the organization table on every request: with the
database down every URL is a 500 page, the readiness check included (it never got to say "database
failed") and the liveness check too (an orchestrator would restart healthy processes). Placed first in
``MIDDLEWARE`` (settings/overlay.py), this answers the two health paths itself and passes every other
request on untouched.
"""

from ls_extensions.health import views

PATHS = {'/api/ls-ext/health': views.ready, '/api/ls-ext/health/live': views.live}


class HealthFirstMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        view = PATHS.get(request.path_info.rstrip('/'))
        if view is None:
            return self.get_response(request)
        return view(request)
