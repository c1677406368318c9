"""The egress guard's decision: allow or refuse one outbound attempt, log the refusal, record the attempt.

No socket is patched here (``socket_hooks`` calls ``Guard.check``); the rules it applies come from
``egress_rules``.
"""

import json
import logging
import os
import socket
import threading
import time
import traceback

from ls_extensions.privacy.egress_rules import ALLOWED_HOSTS_ENV, as_ip, is_loopback, parse_rule, port_number

logger = logging.getLogger('ls_extensions.egress')

RESOLUTION_SECONDS = 300.0  # how long an allowed name's addresses stay allowed (a typical DNS TTL)


class EgressBlocked(ConnectionRefusedError):
    """Raised instead of connecting; an OSError so HTTP clients report a connection error."""


class DnsBlocked(socket.gaierror):
    """Raised instead of resolving a name that may not be looked up."""


class Guard:
    """Decides on and records outbound attempts; one per process."""

    def __init__(self, rules=(), log_path=None, resolution_seconds=RESOLUTION_SECONDS, clock=time.monotonic):
        self.rules = list(rules)
        self.log_path = log_path
        self.resolution_seconds = resolution_seconds
        self.clock = clock  # a parameter so that tests can move time instead of sleeping
        self.resolutions = {}  # (address, port of the rule or None for any) -> expiry on self.clock
        self._lock = threading.Lock()
        self.own_hostname = socket.gethostname().lower()

    # -- configuration (start-up only) ----------------------------------------------------
    def allow(self, entry, why='configured'):
        """Allow a host, ``host:port`` or URL; called at start-up with what the operator configured."""
        if not entry:
            return
        rule = parse_rule(entry)
        with self._lock:
            if rule not in self.rules:
                self.rules.append(rule)
                logger.debug('egress: allowing %s (%s)', entry, why)

    # -- decisions ------------------------------------------------------------------------
    def allows_by_rule(self, host, port=None):
        """Loopback, or named by a rule: the operator's decision, independent of earlier look-ups."""
        return is_loopback(host) or any(rule.matches(str(host), port) for rule in self.rules)

    def is_allowed(self, host, port=None):
        return self.allows_by_rule(host, port) or self._resolution_allows(host, port)

    def _resolution_allows(self, host, port):
        ip = as_ip(host)
        if ip is None:
            return False
        address, now = str(ip), self.clock()
        if port is None:  # a reverse look-up: any live resolution of the address
            return any(a == address and expiry > now for (a, _), expiry in list(self.resolutions.items()))
        return any(self.resolutions.get((address, p), 0.0) > now for p in (None, port_number(port)))

    def check(self, kind, host, port):
        """Allow, or record and raise, an attempt of ``kind`` ('dns', 'rdns', 'connect', 'sendto', 'sendmsg')."""
        if is_loopback(host):
            return
        if kind in ('dns', 'rdns') and str(host).lower() == self.own_hostname:
            return
        allowed = self.is_allowed(host, port)
        self._record(kind, host, port, 'allowed' if allowed else 'blocked')
        if allowed:
            return
        target = f'{host}:{port}' if port else str(host)
        what = {'dns': 'DNS look-up', 'rdns': 'reverse DNS look-up'}.get(kind, 'connection')
        logger.warning(
            'egress guard: refused outbound %s to %s (not loopback, not allow-listed); to allow it add %s to %s',
            what,
            target,
            host,
            ALLOWED_HOSTS_ENV,
        )
        if kind in ('dns', 'rdns'):
            raise DnsBlocked(socket.EAI_NONAME, f'egress guard: look-up of {host} refused ({ALLOWED_HOSTS_ENV})')
        raise EgressBlocked(f'egress guard: connection to {target} refused ({ALLOWED_HOSTS_ENV})')

    def remember_resolution(self, host, port, results):
        """Let the addresses an allowed name resolved to through, on the port of each rule that allowed it."""
        ports = {rule.port for rule in self.rules if rule.matches(str(host), port_number(port))}
        if not ports:
            return  # allowed without a rule (this machine's own name): its addresses get nothing
        now = self.clock()
        expiry = now + self.resolution_seconds
        with self._lock:
            self.resolutions = {key: t for key, t in self.resolutions.items() if t > now}
            for result in results:
                ip = as_ip(result[4][0]) if len(result) > 4 and result[4] else None
                if ip is not None and not is_loopback(str(ip)):
                    for rule_port in ports:
                        self.resolutions[(str(ip), rule_port)] = expiry

    def _record(self, kind, host, port, verdict):
        if not self.log_path:
            return
        frames = [f for f in traceback.extract_stack(limit=40)[:-3] if not any(n in f.filename for n in _GUARD_FILES)]
        caller = next(
            (f'{f.filename}:{f.lineno}' for f in reversed(frames) if not _is_plumbing(f.filename)),
            '',
        )
        event = {
            'ts': time.time(),
            'pid': os.getpid(),
            'kind': kind,
            'host': str(host),
            'port': port,
            'verdict': verdict,
            'caller': caller,
        }
        line = json.dumps(event) + '\n'
        with self._lock:
            with open(self.log_path, 'a') as fh:
                fh.write(line)


# The guard's own frames never count as the caller: this module, the hooks, and (as before the split,
# by name) any ``...egress.py``.
_GUARD_FILES = ('egress.py', 'egress_guard.py', 'socket_hooks.py')
_PLUMBING = ('/socket.py', '/ssl.py', '/urllib3/', '/requests/', '/http/client.py', '/httpx/', '/httpcore/')


def _is_plumbing(filename):
    return any(part in filename for part in _PLUMBING)
