"""Switches for Label Studio's call-home channels that must be set before its settings are imported.

Label Studio reads these from the environment at import time (Sentry is initialised, the
latest-version check runs), so assigning a setting afterwards is too late. Its ``get_env``
tries ``LABEL_STUDIO_<X>`` first, then ``HEARTEX_<X>``, then ``<X>``: we force the first so
a stray variable of a lower priority cannot switch a channel back on.
"""

import os
import sys

# channel -> (variable, value that switches it off)
OFFLINE_SWITCHES = {
    'backend Sentry (vendor DSN, send_default_pii)': ('SENTRY_DSN', ''),
    'frontend Sentry (CDN script tag and envelopes)': ('FRONTEND_SENTRY_DSN', ''),
    'latest-version check against the package index': ('LATEST_VERSION_CHECK', 'false'),
    'usage telemetry, gtag, tracking iframe, /__lsa/ relay': ('COLLECT_ANALYTICS', 'false'),
    'LaunchDarkly feature flags (read from the bundled file)': ('FEATURE_FLAGS_OFFLINE', 'true'),
}


def label_studio_package_dir():
    """Label Studio's own modules import each other by top-level name (``core``, ``tasks``...)."""
    import label_studio

    return os.path.dirname(label_studio.__file__)


def apply(environ=os.environ):
    """Force every switch off and put Label Studio's package directory on ``sys.path``."""
    for variable, value in OFFLINE_SWITCHES.values():
        environ['LABEL_STUDIO_' + variable] = value
    path = label_studio_package_dir()
    if path not in sys.path:
        sys.path.insert(0, path)
