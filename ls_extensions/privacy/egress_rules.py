"""The egress allow rules: parsing the operator's allow-list entries and matching a host and port against them.

Pure functions and values, no socket patched and nothing logged: the guard (``egress_guard``), the CSP
(``csp``) and the ML backend's SSRF exception (``ml_backend/ssrf``) read the same entries the same way.
"""

import ipaddress
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit

ALLOWED_HOSTS_ENV = 'LS_EXT_ALLOWED_HOSTS'

LOOPBACK_NAMES = {'localhost', 'localhost.localdomain', 'ip6-localhost', 'ip6-loopback'}
DEFAULT_PORTS = {'http': 80, 'https': 443}


class AllowListError(ValueError):
    """An allow-list entry that cannot be parsed; start-up must stop on it."""


@dataclass(frozen=True)
class Rule:
    """One allow-list entry: an exact host, a ``*.domain`` wildcard or an IP network, optionally one port."""

    host: str | None = None
    suffix: str | None = None
    network: ipaddress.IPv4Network | ipaddress.IPv6Network | None = None
    port: int | None = None

    def matches(self, host, port):
        port = port_number(port)
        if self.port is not None and port is not None and port != self.port:
            return False
        if self.network is not None:
            ip = as_ip(host)
            return ip is not None and ip.version == self.network.version and ip in self.network
        host = host.lower().rstrip('.')
        if self.suffix is not None:
            return host.endswith(self.suffix)
        return host == self.host


def as_ip(host):
    """``host`` as an IP address (a ``%zone`` dropped), or None when it is a name."""
    try:
        return ipaddress.ip_address(str(host).split('%', 1)[0])
    except ValueError:
        return None


def port_number(port):
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
        try:
            parts = urlsplit(text)
        except ValueError as exc:  # "Invalid IPv6 URL": an unclosed [
            raise AllowListError(f'{entry!r}: {exc}') from None
        if not parts.hostname:
            raise AllowListError(f'{entry!r}: URL without a host')
        try:
            port = parts.port
        except ValueError as exc:
            raise AllowListError(f'{entry!r}: {exc}') from None
        host = f'[{parts.hostname}]' if ':' in parts.hostname else parts.hostname
        return parse_rule(host if port is None else f'{host}:{port}')
    port = None
    if text.startswith('['):
        host, closed, rest = text[1:].partition(']')
        if not closed:
            raise AllowListError(f'{entry!r}: expected [host] or [host]:port')
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
    if as_ip(host) is not None:
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
    ip = as_ip(host)
    if ip is None:
        return False
    if ip.version == 6 and ip.ipv4_mapped:
        ip = ip.ipv4_mapped
    return ip.is_loopback or ip.is_unspecified
