"""settings.offline plus the retraining app and its Celery settings, for the server and worker subprocesses
of test_worker.py and benchmarks/annotation_latency.py (until settings/overlay.py lists them).

Label Studio puts its own ``tests`` package on sys.path, so the subprocesses get this file and urls.py
copied as top-level modules (``tests/retraining/support.py:subprocess_modules``); LS_EXT_TEST_ROOT_URLCONF names the copy of urls.py.
"""

import os  # noqa: I001  (bootstrap must run before Label Studio is imported)

from settings import bootstrap
from core.settings.base import *  # noqa: F403
from core.settings.label_studio import *  # noqa: F403
from settings.overlay import *  # noqa: F403
from settings.overlay import BASE_DATA_DIR, INSTALLED_APPS

if 'ls_extensions.retraining' not in INSTALLED_APPS:
    INSTALLED_APPS = [*INSTALLED_APPS, 'ls_extensions.retraining']
CELERY_BROKER_URL = os.environ.get('CELERY_BROKER_URL', f'sqla+sqlite:///{BASE_DATA_DIR}/celery-broker.sqlite3')
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_IGNORE_RESULT = True
CELERY_BROKER_CONNECTION_TIMEOUT = 2
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_BEAT_SCHEDULE = {'ls-ext-retraining-sweep': {'task': 'ls_ext_retraining.sweep', 'schedule': 60.0}}
LS_EXT_RETRAINING_POLL_SECONDS = float(os.environ.get('LS_EXT_RETRAINING_POLL_SECONDS', '5'))
ROOT_URLCONF = os.environ.get('LS_EXT_TEST_ROOT_URLCONF', 'tests.retraining.urls')
if os.environ.get('LS_EXT_RETRAINING_OFF') == '1':  # the benchmark's baseline: no retraining receivers
    INSTALLED_APPS = [a for a in INSTALLED_APPS if a != 'ls_extensions.retraining']
    ROOT_URLCONF = 'ls_extensions.urls'
bootstrap.refresh_django_settings()
