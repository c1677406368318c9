"""Label Studio's SSRF protection as it ships, with one exception: the ML backends the operator lists.

Label Studio (1.23) checks every URL a user can make the server fetch against one list of reserved
networks (``core/utils/io.py:validate_ip``): webhooks, export media downloads, import from URL and
storage endpoints under ``SSRF_PROTECTION_ENABLED``, ML backends under their own switch
``ML_BLOCK_LOCAL_IP``. The list is global, so taking loopback out of it for a model server on this
machine would let all of those reach 127.0.0.1 too. We leave the list as Label Studio has it.

The exception is per URL. ``LS_EXT_ML_BACKEND_URLS`` names the ML backends the operator allows
(``http://127.0.0.1:9090``, ``localhost:9090``, ``10.0.0.5``: entries as the egress allow-list takes
them, host as users will type it; without a port, every port). While it names any, the overlay turns
Label Studio's ML switch off and ``ssrf_hooks`` (our routes for ``/api/ml``) does Label Studio's check itself
on every URL sent to ``/api/ml`` (create, update), except on the URLs listed. With the list empty (the
default) nothing changes: Label Studio refuses ML backends on loopback, as it ships.
"""

from urllib3.exceptions import LocationParseError
from urllib3.util import parse_url

from ls_extensions.privacy.egress_rules import AllowListError, parse_rule

ML_BACKEND_URLS_ENV = 'LS_EXT_ML_BACKEND_URLS'
DEFAULT_PORTS = {'http': 80, 'https': 443}
LOOPBACK = '127.0.0.1'


def parse_backend_urls(text):
    """The entries of ``LS_EXT_ML_BACKEND_URLS`` (comma- or space-separated); AllowListError names a bad one."""
    entries = [e for e in text.replace(',', ' ').split() if e]
    for entry in entries:
        try:
            parse_rule(entry)
        except AllowListError as exc:
            raise AllowListError(f'{ML_BACKEND_URLS_ENV}: cannot parse entry {exc}') from None
    return entries


def is_listed(url, entries):
    """True if ``url`` goes to one of the listed backends.

    Parsed with urllib3, the parser ``requests`` connects with, so that ``http://127.0.0.1:9090@evil``
    and the like are judged by the host the connection would really go to.
    """
    try:
        parsed = parse_url(url)
    except LocationParseError:
        return False
    if parsed.scheme not in DEFAULT_PORTS or not parsed.host:
        return False
    host = parsed.host.strip('[]')
    port = parsed.port or DEFAULT_PORTS[parsed.scheme]
    return any(parse_rule(entry).matches(host, port) for entry in entries)


def ml_backend_settings(environ, ml_block_local_ip):
    """The settings the overlay sets, given Label Studio's ``ML_BLOCK_LOCAL_IP``.

    While the list names a backend, our check (``LS_EXT_ML_URL_CHECK``) replaces Label Studio's; an
    operator who switched Label Studio's off (``ML_BLOCK_LOCAL_IP=false``) gets neither, as in Label Studio.
    """
    entries = parse_backend_urls(environ.get(ML_BACKEND_URLS_ENV, ''))
    block = bool(ml_block_local_ip)
    return {
        'LS_EXT_ML_BACKEND_URLS': entries,
        'LS_EXT_ML_URL_CHECK': block and bool(entries),
        'ML_BLOCK_LOCAL_IP': block and not entries,
    }


def env(*urls):
    """Environment for a Label Studio process whose ML backends are these URLs (default: any port on loopback)."""
    return {ML_BACKEND_URLS_ENV: ' '.join(urls or (LOOPBACK,))}
