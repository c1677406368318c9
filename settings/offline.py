"""Label Studio 1.23.2 with ls_extensions on one machine (SQLite, embedded broker), nothing leaving it.

DJANGO_SETTINGS_MODULE=settings.offline label-studio start
"""

from settings import bootstrap  # noqa: I001  (must run before Label Studio is imported)
from core.settings.base import *  # noqa: F403
from core.settings.label_studio import *  # noqa: F403
from settings.overlay import *  # noqa: F403

bootstrap.refresh_django_settings()
