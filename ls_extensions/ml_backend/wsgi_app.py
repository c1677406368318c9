"""The model server's HTTP plumbing: WSGI dispatch to a handler, Basic auth, JSON responses, and the listening server.

A request is routed by ``ROUTES`` (``handlers``), its body read and limited by ``http_input``; every
failure becomes a JSON error with the message in the reason phrase too. ``check_bind`` refuses to
listen beyond loopback without credentials; ``serve`` runs the threaded ``wsgiref`` server.
"""

import ipaddress
import json
import logging
import socket
from socketserver import ThreadingMixIn
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from ls_extensions.ml_backend.adapters.base import AdapterError
from ls_extensions.ml_backend.http_input import HttpError, read_body
from ls_extensions.ml_backend.ls_client import LabelStudioError

logger = logging.getLogger('ls_extensions.ml_backend')

READ_TIMEOUT = 30.0  # seconds a connection may stay silent mid-request before it is answered 408/dropped
CREDENTIALS_ENV = 'LS_EXT_ML_BASIC_AUTH'


class BindRefused(ValueError):
    """Listening beyond loopback without credentials: anyone on the network could use the model."""


def is_loopback(host):
    """True when every address ``host`` names is a loopback address ('' and 0.0.0.0 mean every interface)."""
    host = (host or '').strip().strip('[]')
    if not host:
        return False
    if host.lower() == 'localhost':
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        pass
    try:
        addresses = {info[4][0] for info in socket.getaddrinfo(host, None)}
    except (OSError, UnicodeError):
        return False
    return bool(addresses) and all(ipaddress.ip_address(a.split('%')[0]).is_loopback for a in addresses)


def check_bind(host, basic_auth):
    """Refuse (BindRefused, with the option to set) to listen beyond loopback without credentials."""
    if basic_auth is not None and (':' not in basic_auth or not basic_auth.partition(':')[2]):
        raise BindRefused(f'{CREDENTIALS_ENV} must be user:password (the Basic Authentication set on the backend)')
    if basic_auth or is_loopback(host):
        return
    raise BindRefused(
        f'refusing to listen on {host or "every interface"!r} (beyond loopback) without credentials: '
        f'set {CREDENTIALS_ENV}=user:password and connect the model in Label Studio with the same '
        '"Basic Authentication", or listen on loopback (--host 127.0.0.1)'
    )


class WsgiApp:
    """The WSGI callable of ``ModelServer``: needs ``ROUTES``, ``basic_auth`` and ``max_body`` on the instance."""

    def __call__(self, environ, start_response):
        method = environ['REQUEST_METHOD']
        path = environ.get('PATH_INFO', '/').rstrip('/') or '/'
        handler = self.ROUTES.get((method, path))
        try:
            if self.basic_auth and not self._authorized(environ.get('HTTP_AUTHORIZATION', '')):
                raise HttpError(401, 'basic auth required')
            if handler is None:
                known = {p for _, p in self.ROUTES}
                raise HttpError(405 if path in known else 404, f'{method} {path} is not served here')
            body = read_body(environ, self.max_body)  # GET bodies too: a malformed request is a 4xx everywhere
            answer = getattr(self, handler)(body)
            status = 200
            if isinstance(answer, tuple):
                answer, status = answer
        except HttpError as exc:
            logger.info('%s %s -> %s %s', method, path, exc.status, exc.message)
            return self._respond(start_response, exc.status, {'error': exc.message}, reason=exc.message)
        except LabelStudioError as exc:  # Label Studio itself failed or refused: a gateway error
            return self._respond(start_response, 502, {'error': str(exc)}, reason=str(exc))
        except AdapterError as exc:
            return self._respond(start_response, 500, {'error': str(exc)}, reason=str(exc))
        except Exception as exc:  # noqa: BLE001 - a bug answers 500, the server stays up
            logger.exception('%s %s failed', method, path)
            return self._respond(start_response, 500, {'error': f'{exc.__class__.__name__}: {exc}'})
        return self._respond(start_response, status, answer)

    def _authorized(self, header):
        """Basic credentials equal to ``basic_auth``, compared as bytes in constant time.

        Label Studio (``requests``) encodes them as latin-1, other clients as UTF-8: both are accepted.
        """
        import base64
        import hmac

        scheme, _, value = header.partition(' ')
        if scheme.lower() != 'basic':
            return False
        try:
            given = base64.b64decode(value.strip(), validate=True)
        except ValueError:
            return False
        expected = [self.basic_auth.encode()]
        try:
            expected.append(self.basic_auth.encode('latin-1'))
        except UnicodeEncodeError:
            pass
        return any(hmac.compare_digest(given, candidate) for candidate in expected)

    @staticmethod
    def _respond(start_response, status, payload, reason=None):
        # Label Studio shows ``str(HTTPError)``, which carries the reason phrase and not the body,
        # so an error's message goes into the reason phrase too (one latin-1 line).
        phrases = {
            200: 'OK',
            201: 'Created',
            400: 'Bad Request',
            401: 'Unauthorized',
            404: 'Not Found',
            405: 'Method Not Allowed',
            408: 'Request Timeout',
            411: 'Length Required',
            413: 'Content Too Large',
            502: 'Bad Gateway',
        }
        phrase = phrases.get(status, 'Error')
        if reason:  # printable latin-1 only: a request's text (a path with %00 or %0d) must not break the line
            text = ''.join(c for c in ' '.join(str(reason).split()) if c.isprintable())[:300]
            phrase = text.encode('latin-1', 'replace').decode('latin-1') or phrase
        data = json.dumps(payload, default=str).encode()
        start_response(f'{status} {phrase}', [('Content-Type', 'application/json'), ('Content-Length', str(len(data)))])
        return [data]


class _ThreadingWSGIServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True
    allow_reuse_address = True


class _QuietHandler(WSGIRequestHandler):
    timeout = READ_TIMEOUT  # a client that stops sending mid-body gets a 408, not a thread held forever

    def log_message(self, format, *args):  # noqa: A002
        logger.debug('%s - %s', self.address_string(), format % args)


def serve(app, host, port, ready=None):
    check_bind(host, app.basic_auth)
    httpd = make_server(host, port, app, server_class=_ThreadingWSGIServer, handler_class=_QuietHandler)
    logger.warning('ML backend %s serving %s on http://%s:%s', app.adapter_cls.__name__, app.version, host, port)
    if ready:
        ready(httpd)
    try:
        httpd.serve_forever()
    finally:
        httpd.server_close()
