"""Label Studio 1.23.2 with ls_extensions for several processes and machines, configured only from the environment.

    DJANGO_SETTINGS_MODULE=settings.production gunicorn ls_extensions.deploy.wsgi:application

Required:
  SECRET_KEY              signs sessions and JWTs; the same value on every web host
  CELERY_BROKER_URL       redis://host:6379/0 (or rediss://)
  DATABASE_URL            postgres://user:password@host:5432/name, or Label Studio's own
                          DJANGO_DB=postgresql + POSTGRE_NAME/USER/PASSWORD/HOST/PORT
Optional:
  LS_EXT_CACHE_URL        redis://host:6379/1: Django's cache shared by all web processes (default: the broker's
                          Redis server, database 1; LS_EXT_CACHE_URL=locmem for a per-process cache)
  ALLOWED_HOSTS           comma-separated (default: the host of LABEL_STUDIO_HOST, localhost, 127.0.0.1)
  LABEL_STUDIO_HOST       the public URL, e.g. https://labels.example.org
  CSRF_TRUSTED_ORIGINS    comma-separated origins (default: LABEL_STUDIO_HOST)
  LABEL_STUDIO_BASE_DATA_DIR  media (uploads, exports); shared storage when there are several web hosts
  LS_EXT_STATIC_ROOT      where collectstatic writes (default <data dir>/static)
  LS_EXT_DB_CONN_MAX_AGE  seconds a web process keeps its database connection (default 60)
  LS_EXT_CELERY_VISIBILITY_TIMEOUT  seconds before Redis redelivers a task a dead worker had taken (default 3600)
  LS_EXT_ALLOWED_HOSTS    further hosts the egress guard lets through (ML backend hosts, object storage...)
  LS_EXT_ML_BACKEND_URLS  ML backends allowed past Label Studio's SSRF check (a model server on loopback or a LAN)
"""

import os
from urllib.parse import unquote, urlsplit

from django.core.exceptions import ImproperlyConfigured

from settings import bootstrap  # noqa: I001  (must run before Label Studio is imported)


def _env(name, default=None):
    """Label Studio's lookup order: LABEL_STUDIO_<X>, then <X>."""
    for key in (f'LABEL_STUDIO_{name}', name):
        value = os.environ.get(key)
        if value not in (None, ''):
            return value
    return default


def _env_list(name, default=()):
    value = _env(name)
    return [v.strip() for v in value.split(',') if v.strip()] if value else list(default)


def _require(name, hint):
    value = _env(name)
    if not value:
        raise ImproperlyConfigured(f'settings.production: {name} is not set ({hint})')
    return value


def _database_env_from_url(url):
    """DATABASE_URL=postgres://user:pass@host:port/name -> the POSTGRE_* variables Label Studio reads."""
    parts = urlsplit(url)
    if parts.scheme not in ('postgres', 'postgresql', 'postgresql+psycopg', 'pgsql'):
        raise ImproperlyConfigured(f'settings.production: DATABASE_URL must be postgres://..., not {parts.scheme}://')
    return {
        'DJANGO_DB': 'postgresql',
        'POSTGRE_HOST': parts.hostname or 'localhost',
        'POSTGRE_PORT': str(parts.port or 5432),
        'POSTGRE_USER': unquote(parts.username or 'postgres'),
        'POSTGRE_PASSWORD': unquote(parts.password or ''),
        'POSTGRE_NAME': parts.path.lstrip('/') or 'postgres',
    }


# -- checked before Label Studio's settings run (they would otherwise write a random key into the data dir) --
SECRET_KEY = _require(
    'SECRET_KEY',
    'the same random value on every host, e.g. python -c "import secrets; print(secrets.token_urlsafe(50))"',
)
os.environ['SECRET_KEY'] = SECRET_KEY  # Label Studio's generate_secret_key_if_missing reads this name
CELERY_BROKER_URL = _require('CELERY_BROKER_URL', 'redis://host:6379/0')
if urlsplit(CELERY_BROKER_URL).scheme not in ('redis', 'rediss'):
    raise ImproperlyConfigured('settings.production: CELERY_BROKER_URL must be redis:// or rediss://')
os.environ['CELERY_BROKER_URL'] = CELERY_BROKER_URL  # read by settings.overlay
if os.environ.get('DATABASE_URL'):
    for _key, _value in _database_env_from_url(os.environ['DATABASE_URL']).items():
        os.environ[f'LABEL_STUDIO_{_key}'] = _value  # Label Studio's get_env reads this name first
if _env('DJANGO_DB') != 'postgresql':
    raise ImproperlyConfigured(
        'settings.production: set DATABASE_URL=postgres://... or DJANGO_DB=postgresql + POSTGRE_*'
    )
os.environ.setdefault('DEBUG', 'false')

from core.settings.base import *  # noqa: E402, F403, I001
from core.settings.label_studio import *  # noqa: E402, F403
from settings.overlay import *  # noqa: E402, F403
from core.settings.label_studio import BASE_DATA_DIR, DATABASES, HOSTNAME  # noqa: E402

SECRET_KEY = os.environ['SECRET_KEY']
# Label Studio's default (off): the overlay turns legacy tokens on for the one-machine install only
LABEL_STUDIO_ENABLE_LEGACY_API_TOKEN = _env('LABEL_STUDIO_ENABLE_LEGACY_API_TOKEN', 'false').lower() in (
    '1',
    'true',
    'yes',
    'on',
)
DEBUG = False
DEBUG_PROPAGATE_EXCEPTIONS = False

# -- database: one connection per web process, kept a minute and checked before reuse --
DATABASES['default']['CONN_MAX_AGE'] = int(_env('LS_EXT_DB_CONN_MAX_AGE', '60'))
DATABASES['default']['CONN_HEALTH_CHECKS'] = True

# -- hosts --
_public_host = urlsplit(HOSTNAME).hostname if HOSTNAME else None
ALLOWED_HOSTS = _env_list('ALLOWED_HOSTS', [h for h in (_public_host, 'localhost', '127.0.0.1') if h])
CSRF_TRUSTED_ORIGINS = _env_list('CSRF_TRUSTED_ORIGINS', [HOSTNAME] if HOSTNAME.startswith('http') else [])
USE_X_FORWARDED_HOST = _env('USE_X_FORWARDED_HOST', 'false').lower() in ('1', 'true', 'yes')
if _env('SECURE_PROXY_SSL_HEADER', ''):  # e.g. HTTP_X_FORWARDED_PROTO behind a TLS-terminating balancer
    SECURE_PROXY_SSL_HEADER = (_env('SECURE_PROXY_SSL_HEADER'), 'https')

# -- static files: collected by `manage.py migrate_once` and served by Label Studio's own static views
# (gunicorn answers /static/, /react-app/, /label-studio-frontend/, /dm/); a proxy may serve them instead --
STATIC_ROOT = _env('LS_EXT_STATIC_ROOT', os.path.join(BASE_DATA_DIR, 'static'))

# -- cache: shared by every web process (Label Studio's FSM state cache must not differ between workers) --
_cache_url = _env('LS_EXT_CACHE_URL') or urlsplit(CELERY_BROKER_URL)._replace(path='/1').geturl()
if _cache_url == 'locmem':
    CACHES = {'default': {'BACKEND': 'django.core.cache.backends.locmem.LocMemCache'}}
else:
    CACHES = {
        'default': {
            'BACKEND': 'ls_extensions.deploy.cache.TolerantRedisCache',
            'LOCATION': _cache_url,
            'KEY_PREFIX': 'ls-ext',
            'OPTIONS': {'socket_connect_timeout': 1, 'socket_timeout': 1},
        }
    }

# -- Celery: queues per kind of work, so that workers can run on other machines (-Q training / -Q prediction) --
CELERY_TASK_DEFAULT_QUEUE = 'celery'
CELERY_TASK_ROUTES = {
    'ls_ext_retraining.start_run': {'queue': 'training'},
    'ls_ext_retraining.predict_served_version': {'queue': 'training'},
    'ls_ext_retraining.begin_training': {'queue': 'training'},
    'ls_ext_retraining.poll_training': {'queue': 'training'},
    'ls_ext_retraining.sweep': {'queue': 'training'},
    'ls_ext_retraining.repredict_batch': {'queue': 'prediction'},
    # uncertainty recomputes and catch-ups: database work only, on the default queue (worker-training takes it)
    'ls_ext_scoring.run_job': {'queue': 'celery'},
    'ls_ext_scoring.sweep': {'queue': 'celery'},
}
CELERY_BROKER_TRANSPORT_OPTIONS = {
    'visibility_timeout': int(_env('LS_EXT_CELERY_VISIBILITY_TIMEOUT', '3600')),
    'socket_connect_timeout': 2,
    'socket_timeout': 5,
}
# not True: the threads pool cannot kill a job, and the worker would exit on the first Redis outage; a step
# cut off by the outage is published again by the retraining sweep (idempotent steps)
CELERY_WORKER_CANCEL_LONG_RUNNING_TASKS_ON_CONNECTION_LOSS = False
CELERY_BROKER_CONNECTION_MAX_RETRIES = None  # a worker waits for Redis to come back, however long

bootstrap.refresh_django_settings()
