"""HTTP health of a Celery worker for orchestrators, started inside the worker when LS_EXT_WORKER_HEALTH_PORT is set.

    LS_EXT_WORKER_HEALTH_PORT=8101 celery -A ls_extensions worker -Q training
    curl http://127.0.0.1:8101/health   ->  200 {"status": "ok", "queues": ["training"], ...}
                                            503 while the worker's broker connection is lost

It runs in a daemon thread of the worker's main process, so it answers while a task runs (solo and
threads pools included). Without HTTP: ``celery -A ls_extensions inspect ping -d celery@$HOSTNAME``
(goes through the broker, answers only when the worker consumes).
"""

import json
import logging
import os
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

logger = logging.getLogger(__name__)

PORT_ENV = 'LS_EXT_WORKER_HEALTH_PORT'
HOST_ENV = 'LS_EXT_WORKER_HEALTH_HOST'

_server = None


def consumer_state(consumer):
    """What the worker itself knows: running, connected to the broker, which queues."""
    from celery import bootsteps

    connection = getattr(consumer, 'connection', None)
    connected = bool(connection is not None and connection.connected)
    running = getattr(consumer.blueprint, 'state', None) == bootsteps.RUN
    queues = sorted(consumer.app.amqp.queues.consume_from or consumer.app.amqp.queues)
    return {'running': running, 'connected': connected, 'queues': queues}


def broker_reachable(app, timeout=1.0):
    try:
        with app.connection_for_read() as conn:
            conn.ensure_connection(max_retries=1, interval_start=0, interval_step=0, timeout=timeout)
            if conn.transport.driver_type == 'redis':
                conn.default_channel.client.ping()
        return True, None
    except Exception as exc:  # reported, never raised
        return False, f'{type(exc).__name__}: {exc}'[:300]


def report(consumer):
    from celery.worker import state

    started = time.monotonic()
    status = consumer_state(consumer)
    reachable, error = broker_reachable(consumer.app)
    if error:  # the text names the broker's host and port: logged, not answered (the port is unauthenticated)
        logger.warning('worker health: broker unreachable: %s', error)
    ok = status['running'] and status['connected'] and reachable
    return ok, {
        'status': 'ok' if ok else 'unavailable',
        'process': 'celery-worker',
        'hostname': consumer.hostname,
        'pid': os.getpid(),
        **status,
        'broker_reachable': reachable,
        **({'error': 'broker unreachable'} if error else {}),
        'active_tasks': len(state.active_requests),
        'ms': round((time.monotonic() - started) * 1000, 1),
    }


def _handler_for(consumer):
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            if self.path.split('?')[0] not in ('/health', '/health/', '/'):
                self._send(404, {'error': 'not found'})
                return
            ok, payload = report(consumer)
            self._send(200 if ok else 503, payload)

        def _send(self, status, payload):
            body = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header('Content-Type', 'application/json')
            self.send_header('Content-Length', str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format, *args):  # noqa: A002
            pass

    return Handler


def start(consumer, port=None, host=None):
    """Serve /health for this worker on host:port (a daemon thread); returns the server."""
    global _server
    port = int(port if port is not None else os.environ[PORT_ENV])
    host = host or os.environ.get(HOST_ENV, '127.0.0.1')
    _server = ThreadingHTTPServer((host, port), _handler_for(consumer))
    _server.daemon_threads = True
    threading.Thread(target=_server.serve_forever, name='ls-ext-worker-health', daemon=True).start()
    logger.warning('worker health on http://%s:%s/health', host, _server.server_address[1])
    return _server


def on_worker_ready(sender=None, **kwargs):
    if os.environ.get(PORT_ENV):
        try:
            start(sender)
        except OSError as exc:
            logger.error('worker health: cannot listen on %s: %s', os.environ.get(PORT_ENV), exc)


def on_worker_process_init(**kwargs):
    """A forked pool child must not keep the health socket open (the port would outlive the worker)."""
    if _server is not None:
        try:
            _server.socket.close()  # this process's copy only: the worker keeps serving
        except OSError:
            pass


def connect(app):
    """Hook the health server into ``app``'s workers (called from ls_extensions/celery.py)."""
    from celery import signals

    signals.worker_ready.connect(on_worker_ready, weak=False)
    signals.worker_process_init.connect(on_worker_process_init, weak=False)
