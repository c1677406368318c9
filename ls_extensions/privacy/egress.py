"""Egress guard: refuse every outbound connection that is not loopback or allow-listed.

Installed by our settings before Label Studio is imported, so every process that loads them
(web server, Celery worker, manage.py, the model server) is covered. It patches the socket
layer rather than individual HTTP clients, so a channel we did not know about is caught too.
Each refused attempt gives one log line naming the destination and the setting that would
allow it; with ``LS_EXT_EGRESS_LOG`` set, every non-loopback attempt (refused or allowed) is
also appended to that file as JSON lines, which is what the tests read.

The rules come only from the operator: ``LS_EXT_ALLOWED_HOSTS`` and what start-up adds from
settings and the command line (``privacy/allow_list.py``). Nothing is added while the process
runs, and no hook looks anything up in the database.

What is checked: forward look-ups (``getaddrinfo``, ``gethostbyname[_ex]``), reverse look-ups
(``gethostbyaddr``, ``getnameinfo`` unless numeric), ``connect``/``connect_ex``, and the calls
that carry their own destination (``sendto`` with or without flags, ``sendmsg`` with an
address). An address an allowed name resolved to is let through only on the port of the rule
that allowed the name, and only for ``RESOLUTION_SECONDS`` after the look-up.

What is not seen, on purpose or by necessity:

- ``send``/``sendall``/``sendfile``/``sendmsg`` without an address go to the peer of a connected
  socket, whose ``connect`` was checked; ``sendmsg_afalg`` talks to the kernel's crypto API
  (``AF_ALG``), not to a network.
- Families other than IPv4/IPv6 (``AF_UNIX`` stays on the machine; ``AF_PACKET`` raw sockets
  need root, which none of our processes has).
- Code in C that opens its own sockets (libpq under psycopg2, hiredis): only the configured
  database, broker and cache use such clients, and their hosts are allowed at start-up.
- Other programs (a subprocess running ``curl``) and functions bound before the guard was
  installed (``from socket import getaddrinfo`` in a module imported before our settings).
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
RESOLUTION_SECONDS = 300.0  # how long an allowed name's addresses stay allowed (a typical DNS TTL)


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
        port = _port_number(port)
        if self.port is not None and port is not None and port != self.port:
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


def _port_number(port):
    """A port as a number; a service name (``'https'``) by the local services table; None if unknown."""
    if port is None or isinstance(port, int):
        return port
    text = port.decode() if isinstance(port, bytes) else str(port)
    if text.isdigit():
        return int(text)
    try:
        return socket.getservbyname(text)
    except OSError:
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


DEFAULT_PORTS = {'http': 80, 'https': 443}


def url_destination(url):
    """(host, port) an HTTP(S) URL connects to, the scheme's port when none is given; AllowListError otherwise."""
    try:
        parts = urlsplit(str(url).strip())
        port = parts.port
    except ValueError as exc:
        raise AllowListError(f'{url!r}: {exc}') from None
    if parts.scheme.lower() not in DEFAULT_PORTS or not parts.hostname:
        raise AllowListError(f'{url!r}: not an http:// or https:// URL with a host')
    return parts.hostname.lower().rstrip('.'), port or DEFAULT_PORTS[parts.scheme.lower()]


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
        ip = _as_ip(host)
        if ip is None:
            return False
        address, now = str(ip), self.clock()
        if port is None:  # a reverse look-up: any live resolution of the address
            return any(a == address and expiry > now for (a, _), expiry in list(self.resolutions.items()))
        return any(self.resolutions.get((address, p), 0.0) > now for p in (None, _port_number(port)))

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
        ports = {rule.port for rule in self.rules if rule.matches(str(host), _port_number(port))}
        if not ports:
            return  # allowed without a rule (this machine's own name): its addresses get nothing
        now = self.clock()
        expiry = now + self.resolution_seconds
        with self._lock:
            self.resolutions = {key: t for key, t in self.resolutions.items() if t > now}
            for result in results:
                ip = _as_ip(result[4][0]) if len(result) > 4 and result[4] else None
                if ip is not None and not is_loopback(str(ip)):
                    for rule_port in ports:
                        self.resolutions[(str(ip), rule_port)] = expiry

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


def _inet(sock):
    return sock.family in (socket.AF_INET, socket.AF_INET6)


def _patch_socket(guard):
    original_getaddrinfo = socket.getaddrinfo
    original_gethostbyname = socket.gethostbyname
    original_gethostbyname_ex = socket.gethostbyname_ex
    original_gethostbyaddr = socket.gethostbyaddr
    original_getnameinfo = socket.getnameinfo
    original_connect = socket.socket.connect
    original_connect_ex = socket.socket.connect_ex
    original_sendto = socket.socket.sendto
    original_sendmsg = socket.socket.sendmsg

    def getaddrinfo(host, port, *args, **kwargs):
        if isinstance(host, bytes):
            host = host.decode()
        is_name = _as_ip(host) is None  # an address literal needs no look-up; connect() checks it
        if is_name:
            guard.check('dns', host, port)
        results = original_getaddrinfo(host, port, *args, **kwargs)
        if is_name and not is_loopback(host):
            guard.remember_resolution(host, port, results)
        return results

    def gethostbyname(host):
        if _as_ip(host) is None:
            guard.check('dns', host, None)
        return original_gethostbyname(host)

    def gethostbyname_ex(host):
        if _as_ip(host) is None:
            guard.check('dns', host, None)
        return original_gethostbyname_ex(host)

    def gethostbyaddr(host):
        # a reverse look-up sends the address to the resolver; a name is resolved forward first
        guard.check('rdns', host, None)
        return original_gethostbyaddr(host)

    def getnameinfo(sockaddr, flags):
        # CPython accepts only numeric hosts here; with NI_NUMERICHOST nothing is looked up
        if not flags & socket.NI_NUMERICHOST and isinstance(sockaddr, tuple) and sockaddr:
            guard.check('rdns', sockaddr[0], None)
        return original_getnameinfo(sockaddr, flags)

    def connect(self, address):
        if _inet(self):
            guard.check('connect', *_address_host_port(address))
        return original_connect(self, address)

    def connect_ex(self, address):
        if _inet(self):
            guard.check('connect', *_address_host_port(address))
        return original_connect_ex(self, address)

    def sendto(self, data, *args):
        # sendto(data, address) and sendto(data, flags, address): the address is always last
        if _inet(self) and args:
            guard.check('sendto', *_address_host_port(args[-1]))
        return original_sendto(self, data, *args)

    def sendmsg(self, buffers, *args):
        # sendmsg(buffers[, ancdata[, flags[, address]]]): without an address it goes to the connected peer
        if _inet(self) and len(args) >= 3 and args[2] is not None:
            guard.check('sendmsg', *_address_host_port(args[2]))
        return original_sendmsg(self, buffers, *args)

    socket.getaddrinfo = getaddrinfo
    socket.gethostbyname = gethostbyname
    socket.gethostbyname_ex = gethostbyname_ex
    socket.gethostbyaddr = gethostbyaddr
    socket.getnameinfo = getnameinfo
    socket.socket.connect = connect
    socket.socket.connect_ex = connect_ex
    socket.socket.sendto = sendto
    socket.socket.sendmsg = sendmsg
