"""Egress guard: refuse every outbound connection that is not loopback or allow-listed.

Installed by our settings before Label Studio is imported, so every process that loads them
(web server, Celery worker, manage.py, the model server) is covered. It patches the socket
layer (DNS look-ups, connect, sendto) rather than individual HTTP clients, so a channel we
did not know about is caught too. Each refused attempt gives one log line naming the
destination and the setting that would allow it; with ``LS_EXT_EGRESS_LOG`` set, every
non-loopback attempt (refused or allowed) is also appended to that file as JSON lines, which
is what the tests read.
"""

import ipaddress
import json
import logging
import os
import socket
import threading
import time
import traceback
from dataclasses import dataclass
from urllib.parse import urlsplit

logger = logging.getLogger('ls_extensions.egress')

ALLOWED_HOSTS_ENV = 'LS_EXT_ALLOWED_HOSTS'
MODE_ENV = 'LS_EXT_EGRESS'  # 'enforce' (default) or 'off'
LOG_ENV = 'LS_EXT_EGRESS_LOG'

LOOPBACK_NAMES = {'localhost', 'localhost.localdomain', 'ip6-localhost', 'ip6-loopback'}
PROVIDER_REFRESH_SECONDS = 5.0


class AllowListError(ValueError):
    """An allow-list entry that cannot be parsed; start-up must stop on it."""


class EgressBlocked(ConnectionRefusedError):
    """Raised instead of connecting; an OSError so HTTP clients report a connection error."""


class DnsBlocked(socket.gaierror):
    """Raised instead of resolving a name that may not be looked up."""


@dataclass(frozen=True)
class Rule:
    """One allow-list entry: an exact host, a ``*.domain`` wildcard or an IP network, optionally one port."""

    host: str | None = None
    suffix: str | None = None
    network: ipaddress.IPv4Network | ipaddress.IPv6Network | None = None
    port: int | None = None

    def matches(self, host, port):
        if self.port is not None and port is not None and int(port) != self.port:
            return False
        if self.network is not None:
            ip = _as_ip(host)
            return ip is not None and ip.version == self.network.version and ip in self.network
        host = host.lower().rstrip('.')
        if self.suffix is not None:
            return host.endswith(self.suffix)
        return host == self.host


def _as_ip(host):
    try:
        return ipaddress.ip_address(str(host).split('%', 1)[0])
    except ValueError:
        return None


def parse_rule(entry):
    """Parse ``host``, ``host:port``, ``*.domain``, ``10.0.0.0/8``, ``[::1]:80`` or a URL."""
    text = entry.strip()
    if not text:
        raise AllowListError('empty entry')
    if '://' in text:
        parts = urlsplit(text)
        if not parts.hostname:
            raise AllowListError(f'{entry!r}: URL without a host')
        try:
            port = parts.port
        except ValueError as exc:
            raise AllowListError(f'{entry!r}: {exc}') from None
        return parse_rule(parts.hostname if port is None else f'[{parts.hostname}]:{port}')
    port = None
    if text.startswith('['):
        host, _, rest = text[1:].partition(']')
        if rest:
            if not rest.startswith(':'):
                raise AllowListError(f'{entry!r}: expected [ipv6]:port')
            port = _parse_port(entry, rest[1:])
    elif text.count(':') == 1:
        host, port_text = text.split(':')
        port = _parse_port(entry, port_text)
    else:
        host = text
    host = host.lower().rstrip('.')
    if '/' in host:
        try:
            return Rule(network=ipaddress.ip_network(host, strict=False), port=port)
        except ValueError:
            raise AllowListError(f'{entry!r}: not an IP network') from None
    if _as_ip(host) is not None:
        return Rule(network=ipaddress.ip_network(host), port=port)
    if host.startswith('*.'):
        domain = host[2:]
        _check_hostname(entry, domain)
        return Rule(suffix='.' + domain, port=port)
    _check_hostname(entry, host)
    return Rule(host=host, port=port)


def _parse_port(entry, text):
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise AllowListError(f'{entry!r}: port must be a number from 1 to 65535')
    return int(text)


def _check_hostname(entry, host):
    labels = host.split('.')
    if not host or any(not label or len(label) > 63 for label in labels):
        raise AllowListError(f'{entry!r}: not a host name')
    if not all(ch.isalnum() or ch in '-_' for label in labels for ch in label):
        raise AllowListError(f'{entry!r}: not a host name')


def parse_allow_list(text):
    """Parse a comma- or space-separated allow-list; raise AllowListError naming the bad entry."""
    entries = [e for e in text.replace(',', ' ').split() if e]
    rules = []
    for entry in entries:
        try:
            rules.append(parse_rule(entry))
        except AllowListError as exc:
            raise AllowListError(f'{ALLOWED_HOSTS_ENV}: cannot parse entry {exc}') from None
    return rules


def is_loopback(host):
    """True for names and addresses that never leave this machine."""
    if host is None or host == '':
        return True
    host = str(host).lower().rstrip('.')
    if host in LOOPBACK_NAMES or host.endswith('.localhost'):
        return True
    ip = _as_ip(host)
    if ip is None:
        return False
    if ip.version == 6 and ip.ipv4_mapped:
        ip = ip.ipv4_mapped
    return ip.is_loopback or ip.is_unspecified


class Guard:
    """Decides on and records outbound attempts; one per process."""

    def __init__(self, rules=(), log_path=None):
        self.rules = list(rules)
        self.log_path = log_path
        self.providers = []
        self.resolved = set()  # addresses that allowed names resolved to
        self._lock = threading.Lock()
        self._busy = threading.local()
        self._providers_checked_at = 0.0
        self.own_hostname = socket.gethostname().lower()

    # -- configuration -------------------------------------------------------------------
    def allow(self, entry, why='configured'):
        """Allow a host, ``host:port`` or URL at run time (database, broker, ML backend)."""
        if not entry:
            return
        rule = parse_rule(entry)
        with self._lock:
            if rule not in self.rules:
                self.rules.append(rule)
                logger.debug('egress: allowing %s (%s)', entry, why)

    def add_provider(self, provider):
        """Register a callable returning extra allowed entries, consulted on a miss (e.g. ML backend URLs)."""
        self.providers.append(provider)

    # -- decisions ------------------------------------------------------------------------
    def is_allowed(self, host, port=None):
        if is_loopback(host) or str(host).lower() in self.resolved:
            return True
        if any(rule.matches(str(host), port) for rule in self.rules):
            return True
        return self._refresh_providers() and any(rule.matches(str(host), port) for rule in self.rules)

    def _refresh_providers(self):
        now = time.monotonic()
        if not self.providers or getattr(self._busy, 'active', False):
            return False
        if now - self._providers_checked_at < PROVIDER_REFRESH_SECONDS:
            return False
        self._providers_checked_at = now
        self._busy.active = True
        try:
            for provider in self.providers:
                for entry in provider():
                    try:
                        self.allow(entry, why='provider')
                    except AllowListError:
                        logger.warning('egress: ignoring unparsable host %r from %s', entry, provider)
        except Exception:  # a provider failing (e.g. tables not migrated yet) must not break networking
            logger.debug('egress: provider failed', exc_info=True)
        finally:
            self._busy.active = False
        return True

    def check(self, kind, host, port):
        """Allow, or record and raise, an attempt of ``kind`` ('dns', 'connect', 'sendto')."""
        if is_loopback(host):
            return
        if kind == 'dns' and str(host).lower() == self.own_hostname:
            return
        allowed = self.is_allowed(host, port)
        self._record(kind, host, port, 'allowed' if allowed else 'blocked')
        if allowed:
            return
        target = f'{host}:{port}' if port else str(host)
        logger.warning(
            'egress guard: refused outbound %s to %s (not loopback, not allow-listed); to allow it add %s to %s',
            'DNS look-up' if kind == 'dns' else 'connection',
            target,
            host,
            ALLOWED_HOSTS_ENV,
        )
        if kind == 'dns':
            raise DnsBlocked(socket.EAI_NONAME, f'egress guard: look-up of {host} refused ({ALLOWED_HOSTS_ENV})')
        raise EgressBlocked(f'egress guard: connection to {target} refused ({ALLOWED_HOSTS_ENV})')

    def remember_resolution(self, results):
        for result in results:
            address = result[4][0] if len(result) > 4 else None
            if address:
                self.resolved.add(str(address).lower())

    def _record(self, kind, host, port, verdict):
        if not self.log_path:
            return
        frames = [f for f in traceback.extract_stack(limit=40)[:-3] if 'egress.py' not in f.filename]
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


_PLUMBING = ('/socket.py', '/ssl.py', '/urllib3/', '/requests/', '/http/client.py', '/httpx/', '/httpcore/')


def _is_plumbing(filename):
    return any(part in filename for part in _PLUMBING)


_guard = None


def get_guard():
    return _guard


def install(rules=(), log_path=None):
    """Patch the socket module once; later calls only return the installed guard."""
    global _guard
    if _guard is not None:
        return _guard
    guard = Guard(rules, log_path)
    _patch_socket(guard)
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


def _address_host_port(address):
    if isinstance(address, tuple) and len(address) >= 2:
        return address[0], address[1]
    return None, None  # AF_UNIX paths and the like stay on this machine


def _patch_socket(guard):
    original_getaddrinfo = socket.getaddrinfo
    original_gethostbyname = socket.gethostbyname
    original_gethostbyname_ex = socket.gethostbyname_ex
    original_connect = socket.socket.connect
    original_connect_ex = socket.socket.connect_ex
    original_sendto = socket.socket.sendto

    def getaddrinfo(host, port, *args, **kwargs):
        if isinstance(host, bytes):
            host = host.decode()
        is_name = _as_ip(host) is None  # an address literal needs no look-up; connect() checks it
        if is_name:
            guard.check('dns', host, port)
        results = original_getaddrinfo(host, port, *args, **kwargs)
        if is_name and not is_loopback(host):
            guard.remember_resolution(results)
        return results

    def gethostbyname(host):
        guard.check('dns', host, None)
        return original_gethostbyname(host)

    def gethostbyname_ex(host):
        guard.check('dns', host, None)
        return original_gethostbyname_ex(host)

    def connect(self, address):
        if self.family in (socket.AF_INET, socket.AF_INET6):
            guard.check('connect', *_address_host_port(address))
        return original_connect(self, address)

    def connect_ex(self, address):
        if self.family in (socket.AF_INET, socket.AF_INET6):
            guard.check('connect', *_address_host_port(address))
        return original_connect_ex(self, address)

    def sendto(self, data, *args):
        address = args[-1] if args else None
        if self.family in (socket.AF_INET, socket.AF_INET6) and address is not None:
            guard.check('sendto', *_address_host_port(address))
        return original_sendto(self, data, *args)

    socket.getaddrinfo = getaddrinfo
    socket.gethostbyname = gethostbyname
    socket.gethostbyname_ex = gethostbyname_ex
    socket.socket.connect = connect
    socket.socket.connect_ex = connect_ex
    socket.socket.sendto = sendto
