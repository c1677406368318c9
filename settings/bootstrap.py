"""First import of every settings module: offline switches, the egress guard, Label Studio on sys.path.

Must run before anything of Label Studio is imported; see ls_extensions.privacy.offline_env.
"""

from django.core.exceptions import ImproperlyConfigured

from ls_extensions.privacy import egress, offline_env

offline_env.apply()
try:
    guard = egress.install_from_env()
except egress.AllowListError as exc:
    raise ImproperlyConfigured(str(exc)) from None


def refresh_django_settings():
    """Drop the snapshot Django took while our settings module was half-imported.

    Label Studio reads ``django.conf.settings`` while its settings module is being imported
    (``core.utils.common`` at import time), so Django snapshots our module before the overlay
    below that import has run. Resetting the lazy wrapper makes the next access read the
    finished module.
    """
    from django.conf import settings
    from django.utils.functional import empty

    if settings.configured:
        settings._wrapped = empty
