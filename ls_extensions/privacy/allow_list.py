"""What start-up adds to the egress guard's rules: only what the operator configured.

Besides ``LS_EXT_ALLOWED_HOSTS`` (read by ``egress.install_from_env``), two places name hosts:

- settings: the database, broker and cache hosts, and the ML backends listed for Label Studio's SSRF
  check (``LS_EXT_ML_BACKEND_URLS``, ``ls_extensions/ml_backend/ssrf.py``);
- the command line: ``label-studio start <project> --init --ml-backends URL [URL ...]``. Label Studio
  1.23.2 keeps these only in its parsed arguments (``server.py:main`` hands ``input_args.ml_backends``
  to ``_create_project``, which calls ``MLBackend.objects.create(url=...)``); nothing reaches the
  environment or the settings. Our settings are imported inside that same ``main()`` (``_setup_env``),
  so we parse the same ``sys.argv`` with Label Studio's own parser and allow those URLs in that
  process. Other processes (a Celery worker, a later ``label-studio start`` without the flag) only
  know ``LS_EXT_ALLOWED_HOSTS``.

Nothing is added after start-up: a backend row in the database opens nothing by itself.
"""

import logging
import os
import sys
from urllib.parse import urlsplit

from django.conf import settings

from ls_extensions.ml_backend import conf as ml_backend_conf
from ls_extensions.privacy import egress

logger = logging.getLogger(__name__)

BROKER_SETTINGS = ('CELERY_BROKER_URL', 'CELERY_RESULT_BACKEND', 'REDIS_LOCATION', 'RQ_REDIS_URL')
LABEL_STUDIO_ARGPARSER = 'label_studio.core.argparser'  # imported by label_studio.server before it parses


def configured_service_hosts():
    """Database, broker and cache hosts named in settings."""
    hosts = [db.get('HOST') for db in settings.DATABASES.values()]
    for name in BROKER_SETTINGS:
        value = getattr(settings, name, None)
        if isinstance(value, str) and '://' in value:
            hosts.append(urlsplit(value).hostname)
    for cache in getattr(settings, 'CACHES', {}).values():
        locations = cache.get('LOCATION') or []
        for location in [locations] if isinstance(locations, str) else locations:
            if '://' in location:
                hosts.append(urlsplit(location).hostname)
    return [h for h in hosts if h and not h.startswith('/')]


def is_label_studio_command(argv):
    """``label-studio ...`` (the console script, our guarded launcher) or ``python .../label_studio/server.py``."""
    if not argv:
        return False
    program = os.path.normpath(str(argv[0]))
    return os.path.basename(program) == 'label-studio' or program.endswith(os.path.join('label_studio', 'server.py'))


def command_line_ml_backends(argv=None, modules=None):
    """The URLs of ``--ml-backends`` as Label Studio's own parser reads them from this process's command line."""
    argv = sys.argv if argv is None else argv
    modules = sys.modules if modules is None else modules
    if not is_label_studio_command(argv) or LABEL_STUDIO_ARGPARSER not in modules:
        return []
    try:
        parsed = modules[LABEL_STUDIO_ARGPARSER].parse_input_args(list(argv[1:]))
    except SystemExit:  # Label Studio itself already parsed this command line; it reports its own errors
        return []
    return [url for url in getattr(parsed, 'ml_backends', None) or [] if url]


def allow_operator_hosts(guard=None, argv=None, modules=None):
    """Add the configured service hosts and each ``--ml-backends`` URL's host and port to the guard."""
    guard = guard or egress.get_guard()
    if guard is None:
        return
    for host in configured_service_hosts():
        guard.allow(host, why='configured service')
    for entry in ml_backend_conf.BACKEND_URLS.get():
        guard.allow(entry, why=ml_backend_conf.BACKEND_URLS.name)  # parsed by the same rules when settings load
    for url in command_line_ml_backends(argv, modules):
        try:
            host, port = egress.url_destination(url)
            guard.allow(f'[{host}]:{port}', why='label-studio --ml-backends')
        except egress.AllowListError as exc:
            # not a URL Label Studio can call; saving its row is refused with the reason (backend_hosts.py)
            logger.warning('egress: ignoring --ml-backends %s', exc)
