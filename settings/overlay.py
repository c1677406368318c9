"""What ls-extensions changes in Label Studio's settings; imported after Label Studio's own.

Every change here is a setting Label Studio reads; nothing of Label Studio is patched.
"""

import os

from core.settings.label_studio import *  # noqa: F403
from core.settings.label_studio import BASE_DATA_DIR, INSTALLED_APPS, MIDDLEWARE, USER_ADDITIONAL_BANNED_SUBNETS

from ls_extensions.ml_backend.ssrf import BANNED_SUBNETS_EXCEPT_LOOPBACK
from ls_extensions.privacy import csp

INSTALLED_APPS = [
    *INSTALLED_APPS,
    'ls_extensions',
    'ls_extensions.video',
    'ls_extensions.scoring',
    'ls_extensions.ml_backend',
    'ls_extensions.retraining',
    'ls_extensions.deploy',  # manage.py migrate_once
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

# Celery (retraining jobs): an embedded broker on a SQLite file in the data dir needs no service;
# CELERY_BROKER_URL=redis://... in the environment for production.
CELERY_BROKER_URL = os.environ.get('CELERY_BROKER_URL', f'sqla+sqlite:///{BASE_DATA_DIR}/celery-broker.sqlite3')
CELERY_TASK_ACKS_LATE = True  # a run survives a worker crash: redelivered, idempotent
CELERY_TASK_IGNORE_RESULT = True
CELERY_BROKER_CONNECTION_TIMEOUT = 2  # an annotation submit never waits long on a dead broker
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_BEAT_SCHEDULE = {
    'ls-ext-retraining-sweep': {
        'task': 'ls_ext_retraining.sweep',
        'schedule': float(os.environ.get('LS_EXT_RETRAINING_SWEEP_SECONDS', '60')),
    }
}
# retraining steps: poll interval, when a step counts as lost, back-off base and retries on connection errors
LS_EXT_RETRAINING_POLL_SECONDS = float(os.environ.get('LS_EXT_RETRAINING_POLL_SECONDS', '5'))
LS_EXT_RETRAINING_STALE_SECONDS = float(os.environ.get('LS_EXT_RETRAINING_STALE_SECONDS', '300'))
LS_EXT_RETRAINING_RETRY_SECONDS = float(os.environ.get('LS_EXT_RETRAINING_RETRY_SECONDS', '5'))
LS_EXT_RETRAINING_MAX_RETRIES = int(os.environ.get('LS_EXT_RETRAINING_MAX_RETRIES', '4'))

# --- scoring ---
# ls_extensions.scoring plugs into Label Studio's own Data Manager hooks; ours wrap the previous values, kept here.
LS_EXT_SCORING_BASE_GET_ALL_COLUMNS = globals()['DATA_MANAGER_GET_ALL_COLUMNS']
LS_EXT_SCORING_BASE_FILTER_EXPRESSIONS = globals()['DATA_MANAGER_CUSTOM_FILTER_EXPRESSIONS']
DATA_MANAGER_GET_ALL_COLUMNS = 'ls_extensions.scoring.dm.get_all_columns'  # + "Uncertainty", "Model version"
DATA_MANAGER_CUSTOM_FILTER_EXPRESSIONS = 'ls_extensions.scoring.dm.custom_filter_expressions'  # indexed range filters
TASK_SERIALIZER = 'ls_extensions.scoring.task_serializer.ScoredTaskSerializer'  # the values reach the table
LS_EXT_SCORING_RUNNER = 'thread'  # background recompute: 'thread' (one worker per process) or 'inline'
# --- end scoring ---
