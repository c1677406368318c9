"""Settings for the test suite: the offline overlay on a throw-away data directory.

``make test`` runs the suite twice: on SQLite, then the ``postgres`` tests with ``DJANGO_DB=postgresql``
and ``POSTGRE_*`` pointing at the server it started on loopback.
"""

import os
import tempfile

os.environ.setdefault('LABEL_STUDIO_BASE_DATA_DIR', tempfile.mkdtemp(prefix='ls-ext-test-'))
os.environ.setdefault('LABEL_STUDIO_TEST_ENVIRONMENT', '1')
os.environ.setdefault('LABEL_STUDIO_USE_ENFORCE_CSRF_CHECKS', 'false')
# the model servers of our tests listen on loopback, on ports picked at random: the operator allows them
# (ls_extensions/ml_backend/ssrf.py); Label Studio's own suite runs with none (tests/label_studio_suite)
os.environ.setdefault('LS_EXT_ML_BACKEND_URLS', '127.0.0.1')

from settings import bootstrap  # noqa: E402, I001
from core.settings.base import *  # noqa: E402, F403
from core.settings.label_studio import *  # noqa: E402, F403
from settings.overlay import *  # noqa: E402, F403

PASSWORD_HASHERS = ['django.contrib.auth.hashers.MD5PasswordHasher']  # fast user creation
LS_EXT_PUBLISH_IN_BACKGROUND = False  # in-process tests record publishes in order (ls_extensions.publishing)
LS_EXT_SCORING_RUNNER = 'inline'  # scoring jobs run in the caller; tests of the Celery path set 'celery'
bootstrap.refresh_django_settings()
