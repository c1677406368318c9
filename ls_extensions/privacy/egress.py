"""Egress guard start-up: install, once per process, the guard that refuses every outbound connection not loopback or allow-listed.

Installed by our settings before Label Studio is imported, so every process that loads them
(web server, Celery worker, manage.py, the model server) is covered. It patches the socket
layer rather than individual HTTP clients, so a channel we did not know about is caught too.
Each refused attempt gives one log line naming the destination and the setting that would
allow it; with ``LS_EXT_EGRESS_LOG`` set, every non-loopback attempt (refused or allowed) is
also appended to that file as JSON lines, which is what the tests read.

The rules come only from the operator: ``LS_EXT_ALLOWED_HOSTS`` and what start-up adds from
settings and the command line (``privacy/allow_list.py``). Nothing is added while the process
runs, and no hook looks anything up in the database.

The pieces: ``egress_rules`` (parsing and matching allow-list entries), ``egress_guard`` (the
decision, the log line and the JSON record), ``socket_hooks`` (the patches of ``socket``, with
what they check and what they cannot see). This module installs them and re-exports their names.
"""

import os

from ls_extensions.privacy.egress_guard import RESOLUTION_SECONDS, DnsBlocked, EgressBlocked, Guard
from ls_extensions.privacy.egress_rules import (
    ALLOWED_HOSTS_ENV,
    DEFAULT_PORTS,
    LOOPBACK_NAMES,
    AllowListError,
    Rule,
    is_loopback,
    parse_allow_list,
    parse_rule,
    url_destination,
)
from ls_extensions.privacy.socket_hooks import patch_socket

__all__ = [
    'ALLOWED_HOSTS_ENV',
    'DEFAULT_PORTS',
    'LOG_ENV',
    'LOOPBACK_NAMES',
    'MODE_ENV',
    'RESOLUTION_SECONDS',
    'AllowListError',
    'DnsBlocked',
    'EgressBlocked',
    'Guard',
    'Rule',
    'get_guard',
    'install',
    'install_from_env',
    'is_loopback',
    'parse_allow_list',
    'parse_rule',
    'url_destination',
]

MODE_ENV = 'LS_EXT_EGRESS'  # 'enforce' (default) or 'off'
LOG_ENV = 'LS_EXT_EGRESS_LOG'

_guard = None


def get_guard():
    return _guard


def install(rules=(), log_path=None):
    """Patch the socket module once; later calls only return the installed guard."""
    global _guard
    if _guard is not None:
        return _guard
    guard = Guard(rules, log_path)
    patch_socket(guard)
    _guard = guard
    return guard


def install_from_env(environ=os.environ):
    """Install the guard as the environment says; raise AllowListError on a bad allow-list."""
    mode = environ.get(MODE_ENV, 'enforce').strip().lower()
    if mode not in ('enforce', 'off'):
        raise AllowListError(f"{MODE_ENV} must be 'enforce' or 'off', not {mode!r}")
    rules = parse_allow_list(environ.get(ALLOWED_HOSTS_ENV, ''))
    if mode == 'off':
        return None
    return install(rules, environ.get(LOG_ENV) or None)
