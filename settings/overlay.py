"""What ls-extensions changes in Label Studio's settings; imported after Label Studio's own.

Every change here is a setting Label Studio reads; nothing of Label Studio is patched.
"""

import os

from core.settings.label_studio import *  # noqa: F403
from core.settings.label_studio import BASE_DATA_DIR, DATABASES, INSTALLED_APPS, LOGGING, MIDDLEWARE, ML_BLOCK_LOCAL_IP

from ls_extensions import ui
from ls_extensions.ml_backend import ssrf
from ls_extensions.privacy import csp
from ls_extensions.retraining import conf as retraining_conf
from ls_extensions.scoring import conf as scoring_conf
from ls_extensions.video import conf as video_conf
from settings import log_config, sqlite

# SQLite (the embedded default): WAL, a 30 s busy wait, write lock at BEGIN; see settings/sqlite.py
sqlite.harden(DATABASES)
LOGGING = log_config.once(LOGGING)  # each log line once (Label Studio's gives `django` the root's handler too)

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

# The template seam (ls_extensions/ui/__init__.py): our base.html extends Label Studio's and adds the
# "Retraining" links to its settings sidebar and Data Manager bar, which have no hook of their own.
TEMPLATES = [{**TEMPLATES[0], 'DIRS': [ui.TEMPLATE_DIR, *TEMPLATES[0]['DIRS']]}, *TEMPLATES[1:]]  # noqa: F405

# Legacy API tokens on for new organizations (Label Studio's own setting, off by default in 1.23): the
# token Label Studio's ML protocol hands a model server in /setup is the project creator's legacy token,
# so without it a connected model server gets 401 on every image. It reaches only ML backends the
# operator listed (LS_EXT_ML_BACKEND_URLS, egress guard) and our model server sends it only to --ls-url.
# LABEL_STUDIO_ENABLE_LEGACY_API_TOKEN=false turns it off (then give the model server LABEL_STUDIO_API_KEY).
LABEL_STUDIO_ENABLE_LEGACY_API_TOKEN = os.environ.get('LABEL_STUDIO_ENABLE_LEGACY_API_TOKEN', 'true').lower() in (
    '1',
    'true',
    'yes',
    'on',
)

# Usage telemetry is already off by COLLECT_ANALYTICS; the middleware is dropped as well so that
# no future default can switch the relay back on.
MIDDLEWARE = [m for m in MIDDLEWARE if m != 'core.middleware.ContextLogMiddleware']
# Health checks answer ahead of Label Studio's middleware, which queries the database on every request:
# a database outage is a 503 naming the check, not a 500 page (ls_extensions/health/middleware.py).
MIDDLEWARE.insert(0, 'ls_extensions.health.middleware.HealthFirstMiddleware')

# Content-Security-Policy, enforced (Label Studio ships it report-only): fetch directives allow
# 'self' plus the hosts the user allowed, so the browser cannot call out even if a template tries.
ENABLE_CSP = True
globals().update(csp.offline_policy())
if 'core.middleware.HumanSignalCspMiddleware' not in MIDDLEWARE:
    MIDDLEWARE.append('core.middleware.HumanSignalCspMiddleware')

# SSRF: Label Studio's checks stay as they ship (webhooks, exports, imports, storages, ML backends), except
# for the ML backends the operator names in LS_EXT_ML_BACKEND_URLS (e.g. a model server on loopback): while
# it names any, our /api/ml views do Label Studio's ML URL check, skipping those. See ls_extensions/ml_backend/ssrf.py.
globals().update(ssrf.ml_backend_settings(os.environ, ML_BLOCK_LOCAL_IP))

# Egress: an ML backend URL whose host the guard does not allow is a 400 before Label Studio looks it up or
# calls it (ls_extensions/privacy/backend_hosts.py; saving such a row any other way is refused by a signal).
MIDDLEWARE.append('ls_extensions.privacy.backend_hosts.MLBackendHostMiddleware')

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
        'schedule': retraining_conf.SWEEP_SECONDS.from_env(),
    }
}
# retraining steps: poll interval, when a step counts as lost, back-off base and retries on connection errors
LS_EXT_RETRAINING_POLL_SECONDS = retraining_conf.POLL_SECONDS.from_env()
LS_EXT_RETRAINING_STALE_SECONDS = retraining_conf.STALE_SECONDS.from_env()
LS_EXT_RETRAINING_RETRY_SECONDS = retraining_conf.RETRY_SECONDS.from_env()
LS_EXT_RETRAINING_MAX_RETRIES = retraining_conf.MAX_RETRIES.from_env()

# --- scoring ---
# ls_extensions.scoring plugs into Label Studio's own Data Manager hooks; ours wrap the previous values, kept here.
LS_EXT_SCORING_BASE_GET_ALL_COLUMNS = globals()['DATA_MANAGER_GET_ALL_COLUMNS']
LS_EXT_SCORING_BASE_FILTER_EXPRESSIONS = globals()['DATA_MANAGER_CUSTOM_FILTER_EXPRESSIONS']
DATA_MANAGER_GET_ALL_COLUMNS = 'ls_extensions.scoring.dm.get_all_columns'  # + "Uncertainty", "Model version"
DATA_MANAGER_CUSTOM_FILTER_EXPRESSIONS = 'ls_extensions.scoring.dm.custom_filter_expressions'  # indexed range filters
TASK_SERIALIZER = 'ls_extensions.scoring.task_serializer.ScoredTaskSerializer'  # the values reach the table
LS_EXT_SCORING_RUNNER = 'celery'  # recomputes and catch-ups: Celery tasks, or 'inline' (in the caller: tests, scripts)
# the sweep publishes queued jobs again (broker was down), fails jobs that stopped beating, queues stale scores
LS_EXT_SCORING_STALE_SECONDS = scoring_conf.STALE_SECONDS.from_env()
CELERY_BEAT_SCHEDULE['ls-ext-scoring-sweep'] = {
    'task': 'ls_ext_scoring.sweep',
    'schedule': scoring_conf.SWEEP_SECONDS.from_env(),
}
# --- end scoring ---

# --- video ---
# snapshot conversions run on a Celery worker; one without progress for this long is restarted (sweep on beat)
LS_EXT_VIDEO_CONVERSION_STALE_SECONDS = video_conf.CONVERSION_STALE_SECONDS.from_env()
CELERY_BEAT_SCHEDULE['ls-ext-video-conversion-sweep'] = {
    'task': 'ls_ext_video.sweep_conversions',
    'schedule': video_conf.CONVERSION_SWEEP_SECONDS.from_env(),
}
# the most frames one video may export (a stored framesCount of 10^12 is answered 422, naming this setting)
LS_EXT_VIDEO_MAX_FRAMES = video_conf.MAX_FRAMES.from_env()
# --- end video ---
