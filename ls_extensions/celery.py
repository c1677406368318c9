"""The Celery app of ls_extensions, configured from Django settings (``CELERY_*``).

    DJANGO_SETTINGS_MODULE=settings.offline celery -A ls_extensions worker -B --concurrency 1

By default the broker is kombu's SQLAlchemy transport on a SQLite file in Label Studio's data
directory (no service to run); production sets ``CELERY_BROKER_URL`` to Redis.
"""

import os

from celery import Celery

os.environ.setdefault('DJANGO_SETTINGS_MODULE', 'settings.offline')

app = Celery('ls_extensions')
app.config_from_object('django.conf:settings', namespace='CELERY')
app.autodiscover_tasks(
    ['ls_extensions.retraining', 'ls_extensions.scoring', 'ls_extensions.video', 'ls_extensions.ml_backend'],
    related_name='tasks',
)

# LS_EXT_WORKER_HEALTH_PORT=8101: each worker answers GET /health (ls_extensions/health/worker.py)
from ls_extensions.health import worker as _worker_health  # noqa: E402

_worker_health.connect(app)
