"""Label Studio 1.23's ML protocol as a small WSGI app on the standard library (no Django, no database).

Routes: GET /health, POST /setup, POST /predict, POST /webhook, POST /train (legacy), GET /versions,
GET /training (progress, metrics, history), POST /job_status, POST /rollback.

Start it with ``python manage.py serve_ml_backend ...`` or ``python -m ls_extensions.ml_backend.server ...``
(same options).

Trust boundary: request input is checked in ``http_input`` (4xx, never a handler's exception); the
server listens beyond loopback only with credentials (``check_bind``); a Label Studio token goes only
to the host the operator configured (``label_studio_for``); ``/rollback`` takes only stored versions.
"""

# The entry point and the names callers use; the pieces, one job each:
#   wsgi_app.py   WSGI dispatch, Basic auth, JSON responses, check_bind, the listening server (serve)
#   handlers.py   the protocol handlers and ROUTES, the project context /setup leaves (label_studio_for)
#   lifecycle.py  ModelServer: construction, the version served, serve/rollback, the registry
#   cli.py        the options (shared with manage.py serve_ml_backend), build_server, main

import sys

from ls_extensions.ml_backend import cli
from ls_extensions.ml_backend.adapters.base import AdapterError
from ls_extensions.ml_backend.cli import TRUST_SETUP_ENV, add_arguments, build_server, credentials_from_env
from ls_extensions.ml_backend.handlers import ANNOTATION_EVENTS, project_id_of
from ls_extensions.ml_backend.lifecycle import ModelServer
from ls_extensions.ml_backend.registry import RegistryError
from ls_extensions.ml_backend.wsgi_app import (
    CREDENTIALS_ENV,
    READ_TIMEOUT,
    BindRefused,
    check_bind,
    is_loopback,
    serve,
)

__all__ = [
    'ANNOTATION_EVENTS',
    'CREDENTIALS_ENV',
    'READ_TIMEOUT',
    'TRUST_SETUP_ENV',
    'AdapterError',
    'BindRefused',
    'ModelServer',
    'RegistryError',
    'add_arguments',
    'build_server',
    'check_bind',
    'credentials_from_env',
    'is_loopback',
    'main',
    'project_id_of',
    'serve',
]


def main(argv=None):
    """The command line (``cli.main``), with this module's docstring as its ``--help`` text."""
    return cli.main(argv, description=__doc__)


if __name__ == '__main__':
    sys.exit(main())
