"""gunicorn settings for the web processes: ``gunicorn -c python:ls_extensions.deploy.gunicorn_conf ...``.

Every value can be overridden on the command line or in GUNICORN_CMD_ARGS. The app is loaded once in
the master (``preload_app``) and forked, which starts 4 workers in the time of one; database
connections the master opened while loading are closed before the fork.
"""

import os

wsgi_app = 'ls_extensions.deploy.wsgi:application'
bind = os.environ.get('LS_EXT_WEB_BIND', '127.0.0.1:8080')
workers = int(os.environ.get('WEB_CONCURRENCY', '4'))
# threads: a worker blocked on a slow call (an ML backend that fetches images back from us) does not block all
threads = int(os.environ.get('LS_EXT_WEB_THREADS', '4'))
timeout = int(os.environ.get('LS_EXT_WEB_TIMEOUT', '120'))  # Label Studio waits up to 100 s on ML predictions
graceful_timeout = 20
keepalive = 5
preload_app = True
control_socket_disable = True  # gunicorn 27's control socket: one fixed path per user, several servers would clash
max_requests = int(os.environ.get('LS_EXT_WEB_MAX_REQUESTS', '2000'))
max_requests_jitter = 200
accesslog = os.environ.get('LS_EXT_WEB_ACCESSLOG') or None
errorlog = '-'
loglevel = os.environ.get('LS_EXT_WEB_LOGLEVEL', 'info')


def when_ready(server):
    """Runs in the master after the preload and before any worker forks."""
    from django.db import connections

    connections.close_all()
