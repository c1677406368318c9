"""settings.test plus the retraining app and its Celery settings (until settings/overlay.py lists them).

    DJANGO_SETTINGS_MODULE=tests.retraining.settings .venv/bin/pytest tests/retraining

Built like settings/test.py (bootstrap first: Label Studio reads Django settings while they import).
"""

import os
import tempfile

os.environ.setdefault('LABEL_STUDIO_BASE_DATA_DIR', tempfile.mkdtemp(prefix='ls-ext-test-'))
os.environ.setdefault('LABEL_STUDIO_TEST_ENVIRONMENT', '1')
os.environ.setdefault('LABEL_STUDIO_USE_ENFORCE_CSRF_CHECKS', 'false')

from settings import bootstrap  # noqa: E402, I001
from core.settings.base import *  # noqa: E402, F403
from core.settings.label_studio import *  # noqa: E402, F403
from settings.overlay import *  # noqa: E402, F403
from settings.overlay import INSTALLED_APPS  # noqa: E402

PASSWORD_HASHERS = ['django.contrib.auth.hashers.MD5PasswordHasher']
if 'ls_extensions.retraining' not in INSTALLED_APPS:
    INSTALLED_APPS = [*INSTALLED_APPS, 'ls_extensions.retraining']
CELERY_BROKER_URL = os.environ.get(
    'CELERY_BROKER_URL', f'sqla+sqlite:///{os.environ["LABEL_STUDIO_BASE_DATA_DIR"]}/celery-broker.sqlite3'
)
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_IGNORE_RESULT = True
CELERY_BROKER_CONNECTION_TIMEOUT = 2
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
LS_EXT_RETRAINING_POLL_SECONDS = 1
if os.environ.get('LS_EXT_TEST_URLS', '1') == '1':
    ROOT_URLCONF = 'tests.retraining.urls'
bootstrap.refresh_django_settings()
