"""What ls-extensions changes in Label Studio's settings; imported after Label Studio's own.

Every change here is a setting Label Studio reads; nothing of Label Studio is patched.
"""

from core.settings.label_studio import *  # noqa: F403
from core.settings.label_studio import INSTALLED_APPS, MIDDLEWARE, USER_ADDITIONAL_BANNED_SUBNETS

from ls_extensions.ml_backend.ssrf import BANNED_SUBNETS_EXCEPT_LOOPBACK
from ls_extensions.privacy import csp

INSTALLED_APPS = [
    *INSTALLED_APPS,
    'ls_extensions',
    'ls_extensions.video',
    'ls_extensions.scoring',
    'ls_extensions.ml_backend',
]
ROOT_URLCONF = 'ls_extensions.urls'

# Usage telemetry is already off by COLLECT_ANALYTICS; the middleware is dropped as well so that
# no future default can switch the relay back on.
MIDDLEWARE = [m for m in MIDDLEWARE if m != 'core.middleware.ContextLogMiddleware']

# Content-Security-Policy, enforced (Label Studio ships it report-only): fetch directives allow
# 'self' plus the hosts the user allowed, so the browser cannot call out even if a template tries.
ENABLE_CSP = True
globals().update(csp.offline_policy())
if 'core.middleware.HumanSignalCspMiddleware' not in MIDDLEWARE:
    MIDDLEWARE.append('core.middleware.HumanSignalCspMiddleware')

# ML backends on this machine: Label Studio's SSRF list minus loopback (private networks and the metadata
# address stay blocked; the egress guard still limits every non-loopback host). See ls_extensions/ml_backend/ssrf.py.
USE_DEFAULT_BANNED_SUBNETS = False
USER_ADDITIONAL_BANNED_SUBNETS = [*BANNED_SUBNETS_EXCEPT_LOOPBACK, *USER_ADDITIONAL_BANNED_SUBNETS]
