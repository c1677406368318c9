"""Label Studio 1.23.2 with ls_extensions on one machine (SQLite, embedded broker), nothing leaving it.

DJANGO_SETTINGS_MODULE=settings.offline label-studio start
"""

from settings import bootstrap  # noqa: I001  (must run before Label Studio is imported)
from settings import embedded

embedded.prepare()  # make run's data dir (also for manage.py), a persisted SECRET_KEY: before Label Studio reads them
from core.settings.base import *  # noqa: E402, F403, I001
from core.settings.label_studio import *  # noqa: E402, F403
from settings.overlay import *  # noqa: E402, F403

bootstrap.refresh_django_settings()
