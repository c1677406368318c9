"""Label Studio 1.23's ML protocol as a small WSGI app on the standard library (no Django, no database).

Routes: GET /health, POST /setup, POST /predict, POST /webhook, POST /train (legacy), GET /versions,
GET /training (progress, metrics, history), POST /job_status, POST /rollback.

Start it with ``python manage.py serve_ml_backend ...`` or ``python -m ls_extensions.ml_backend.server ...``
(same options).

Trust boundary: request input is checked in ``http_input`` (4xx, never a handler's exception); the
server listens beyond loopback only with credentials (``check_bind``); a Label Studio token goes only
to the host the operator configured (``label_studio_for``); ``/rollback`` takes only stored versions.
"""

import argparse
import ipaddress
import json
import logging
import os
import socket
import sys
import threading
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from socketserver import ThreadingMixIn
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from ls_extensions.ml_backend.adapters import DEFAULT_ADAPTER
from ls_extensions.ml_backend.adapters.base import AdapterError, load_adapter_class
from ls_extensions.ml_backend.http_input import DEFAULT_MAX_BODY, Body, HttpError, read_body, tasks_of
from ls_extensions.ml_backend.images import ImageError, ImageLoader
from ls_extensions.ml_backend.labels import LabelConfigError, LabelMap, parse_label_config, rectangle_region
from ls_extensions.ml_backend.ls_client import LabelStudioClient, LabelStudioError, is_http_url
from ls_extensions.ml_backend.registry import ModelRegistry, RegistryError
from ls_extensions.ml_backend.training import Trainer

logger = logging.getLogger('ls_extensions.ml_backend')

ANNOTATION_EVENTS = {'ANNOTATION_CREATED', 'ANNOTATION_UPDATED', 'ANNOTATIONS_CREATED', 'ANNOTATIONS_DELETED'}
READ_TIMEOUT = 30.0  # seconds a connection may stay silent mid-request before it is answered 408/dropped
CREDENTIALS_ENV = 'LS_EXT_ML_BASIC_AUTH'
TRUST_SETUP_ENV = 'LS_EXT_ML_TRUST_SETUP_HOSTNAME'


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


def project_id_of(value):
    """Label Studio sends ``"<id>.<created_ts>"`` (predict/setup), an int, or a project dict (webhooks)."""
    if isinstance(value, dict):
        value = value.get('id')
    if value is None:
        return None
    try:
        return int(str(value).split('.', 1)[0])
    except ValueError:
        return None


class ModelServer:
    def __init__(
        self,
        adapter='',
        config=None,
        checkpoint=None,
        device='cpu',
        model_dir=None,
        score_threshold=0.3,
        batch_size=8,
        keep=3,
        allowed_hosts='',
        ls_url=None,
        ls_token=None,
        options=None,
        train_every=0,
        min_eval=10,
        basic_auth=None,
        trust_setup_hostname=False,
        max_body=DEFAULT_MAX_BODY,
    ):
        self.basic_auth = basic_auth  # 'user:password' as set on the backend in Label Studio, or None
        self.adapter_cls = load_adapter_class(adapter or DEFAULT_ADAPTER)
        self.config = Path(config).resolve() if config else None
        if self.config is not None and not self.config.is_file():
            raise AdapterError(f'model config file not found: {self.config}')
        if checkpoint and not Path(checkpoint).is_file():
            raise AdapterError(f'checkpoint file not found: {checkpoint}')
        self.device = device
        self.options = dict(options or {})
        self.score_threshold = float(score_threshold)
        self.batch_size = max(1, int(batch_size))
        self.allowed_hosts = allowed_hosts or ''
        self.ls_url = ls_url or None
        self.ls_token = ls_token
        self.trust_setup_hostname = bool(trust_setup_hostname)
        self.max_body = int(max_body)
        self.train_every = int(train_every or 0)
        name = self.adapter_cls.name
        if self.config is not None:
            name = self.config.stem
        self.registry = ModelRegistry(model_dir or Path('ml-models') / name, name=name, keep=keep)
        self.current_meta = self._initial_version(checkpoint)
        self.adapter = self.build_adapter(self.registry.checkpoint(self.current_meta['version']))
        self.trainer = Trainer(self, min_eval=min_eval)
        self.projects = {}  # project id -> {'label_config', 'hostname', 'access_token'}
        self.stats = Counter()
        self.dropped = Counter()
        self._predict_lock = threading.Lock()
        self._events = Counter()
        self._pool = ThreadPoolExecutor(4, thread_name_prefix='ml-backend-images')

    # -- model lifecycle
    def _initial_version(self, checkpoint):
        """The registry's current version when it was started from the same base, else register the given one."""
        base = str(Path(checkpoint).resolve()) if checkpoint else None
        current = self.registry.current()
        if (
            current is not None
            and current.get('base_checkpoint') == base
            and current.get('config') == (str(self.config) if self.config else None)
        ):
            return current
        return self.registry.register(
            checkpoint,
            meta={
                'base_checkpoint': base,
                'config': str(self.config) if self.config else None,
                'metrics': {},
                'note': 'as started' if checkpoint else 'untrained (config initialization)',
            },
            copy=False,
        )

    def build_adapter(self, checkpoint):
        return self.adapter_cls(config=self.config, checkpoint=checkpoint, device=self.device, options=self.options)

    def serve(self, adapter, meta):
        """Swap in a new model (after training or rollback); predictions in flight finish on the old one."""
        meta.setdefault('base_checkpoint', self.current_meta.get('base_checkpoint'))
        with self._predict_lock:
            self.adapter, self.current_meta = adapter, meta
        self._write_meta_base(meta)

    def _write_meta_base(self, meta):
        path = self.registry.versions_dir / meta['version'] / 'meta.json'
        stored = json.loads(path.read_text())
        if stored.get('base_checkpoint') != meta.get('base_checkpoint'):
            stored['base_checkpoint'] = meta.get('base_checkpoint')
            path.write_text(json.dumps(stored, indent=2, default=str))

    @property
    def version(self):
        return self.current_meta['version']

    def rollback(self, version=None):
        meta = self.registry.rollback(version)
        adapter = self.build_adapter(self.registry.checkpoint(meta['version']))
        self.serve(adapter, meta)
        return meta

    # -- project context
    def project_context(self, project_id, label_config=None):
        ctx = self.projects.get(project_id, {})
        xml = label_config or ctx.get('label_config')
        if not xml:
            raise LabelStudioError(f'project {project_id} is unknown: connect it in Label Studio (calls /setup) first')
        control = parse_label_config(xml)
        client = self.label_studio_for(project_id)
        return control, client, ImageLoader(client, self.allowed_hosts)

    def label_studio_for(self, project_id):
        """The one place that decides where Label Studio calls (images, annotations) go, with which token.

        - ``--ls-url`` configured: there, with ``LABEL_STUDIO_API_KEY`` or else the token /setup handed over.
        - else, only with ``--trust-setup-hostname``: the hostname of that project's /setup, with the token
          of the same /setup body only (the configured key never goes to a host a request named).
        - else: None; Label Studio paths fail with a message naming the options, nothing is sent.
        """
        ctx = self.projects.get(project_id, {})
        if self.ls_url:
            return LabelStudioClient(self.ls_url, self.ls_token or ctx.get('access_token'))
        if self.trust_setup_hostname and ctx.get('hostname'):
            return LabelStudioClient(ctx['hostname'], ctx.get('access_token'))
        return None

    # -- protocol handlers
    def health(self, _body):
        return {
            'status': 'UP',
            'model_class': self.adapter_cls.__name__,
            'model_version': self.version,
            'training': self.trainer.status()['state'],
        }

    def setup(self, body):
        project_id = project_id_of(body.object_or_id('project'))
        schema = body.text('schema', 'label_config')
        hostname, token = body.text('hostname'), body.text('access_token')
        if hostname is not None and not is_http_url(hostname):
            raise HttpError(400, f'"hostname" must be an http(s) URL, not {hostname[:100]!r}')
        try:
            control = parse_label_config(schema)
        except LabelConfigError as exc:
            raise HttpError(400, str(exc)) from None
        label_map = LabelMap(self.adapter.classes, control)
        if not label_map.to_label:
            raise HttpError(
                400,
                f'none of the labels {control.labels} matches a model class ({", ".join(self.adapter.classes[:20])}); '
                'name the labels after the classes or set predicted_values',
            )
        if project_id is not None:
            self.projects[project_id] = {'label_config': schema, 'hostname': hostname, 'access_token': token}
            client = self.label_studio_for(project_id)
            if client is not None:  # a refused token fails /setup: Label Studio shows the reason, not only a log
                client.check_token()
        return {'model_version': self.version, 'labels': label_map.describe()}

    def predict(self, body):
        tasks = tasks_of(body, 'tasks')
        project_id = project_id_of(body.object_or_id('project'))
        try:
            control = parse_label_config(
                body.text('label_config') or self.projects.get(project_id, {}).get('label_config')
            )
        except LabelConfigError as exc:
            raise HttpError(400, str(exc)) from None
        with self._predict_lock:
            adapter, version = self.adapter, self.version
        label_map = LabelMap(adapter.classes, control)
        loader = ImageLoader(self.label_studio_for(project_id), self.allowed_hosts)

        def load(task):
            try:
                return loader.load(task.object('data').get(control.value_key)), None
            except ImageError as exc:
                return None, str(exc)
            except Exception as exc:  # noqa: BLE001 - one task's image never fails the whole request
                logger.exception('reading the image of task %s failed', task.get('id'))
                return None, f'cannot read the image: {exc.__class__.__name__}'

        loaded = list(self._pool.map(load, tasks))
        results = [None] * len(tasks)
        ok = [i for i, (image, _) in enumerate(loaded) if image is not None]
        for i, (_, error) in enumerate(loaded):
            if error is not None:
                results[i] = {'task': tasks[i].get('id'), 'error': error}
        for start in range(0, len(ok), self.batch_size):
            chunk = ok[start : start + self.batch_size]
            try:
                per_image = adapter.predict([loaded[i][0] for i in chunk], score_threshold=self.score_threshold)
            except Exception:  # noqa: BLE001 - isolate the image that breaks the batch
                logger.exception('batch prediction failed; retrying one by one')
                per_image = []
                for i in chunk:
                    try:
                        per_image.append(adapter.predict([loaded[i][0]], score_threshold=self.score_threshold)[0])
                    except Exception as exc:  # noqa: BLE001
                        per_image.append(exc)
            for i, dets in zip(chunk, per_image, strict=True):
                if isinstance(dets, Exception):
                    results[i] = {'task': tasks[i].get('id'), 'error': f'model failed: {dets}'}
                    continue
                results[i] = self._to_prediction(dets, loaded[i][0].shape, control, label_map, version)
        errors = [r for r in results if 'error' in r]
        self.stats.update(tasks=len(tasks), failed_tasks=len(errors))
        self.dropped.update(label_map.dropped)
        return {
            'results': results,
            'model_version': version,
            'errors': errors,
            'dropped_unmapped': dict(label_map.dropped),
        }

    def _to_prediction(self, detections, shape, control, label_map, version):
        height, width = shape[:2]
        regions = []
        for det in detections:
            if det.score < self.score_threshold:
                continue
            label = label_map.label_for(int(det.class_index))
            if label is None:
                continue
            x1, y1 = max(0.0, float(det.x1)), max(0.0, float(det.y1))
            x2, y2 = min(float(width), float(det.x2)), min(float(height), float(det.y2))
            if x2 <= x1 or y2 <= y1:
                continue
            region = rectangle_region(
                control.from_name, control.to_name, x1, y1, x2 - x1, y2 - y1, width, height, label
            )
            regions.append({'id': uuid.uuid4().hex[:10], **region, 'score': round(float(det.score), 4)})
        score = sum(r['score'] for r in regions) / len(regions) if regions else 0.0
        return {'result': regions, 'score': round(score, 4), 'model_version': version}

    def webhook(self, body):
        action = body.text('action')
        project = body.object_or_id('project')
        project_id = project_id_of(project)
        label_config = project.text('label_config') if isinstance(project, Body) else None
        if action == 'START_TRAINING':
            if project_id is None:
                raise HttpError(400, 'START_TRAINING without a project id')
            return self.trainer.request(project_id, 'START_TRAINING', label_config=label_config), 201
        if action in ANNOTATION_EVENTS:
            self._events[project_id] += 1
            if self.train_every and project_id is not None and self._events[project_id] % self.train_every == 0:
                return self.trainer.request(project_id, f'{self.train_every} annotation events', label_config), 201
            return {'status': 'counted', 'events': self._events[project_id]}, 200
        return {'status': 'ignored', 'action': action}, 200

    def train(self, body):
        """Legacy ``/train``: the annotated tasks come in the request."""
        tasks = tasks_of(body, 'annotations')
        project_id = project_id_of(body.object_or_id('project'))
        return self.trainer.request(project_id, 'train', body.text('label_config'), tasks=tasks), 201

    def versions(self, _body):
        return {
            'versions': [m['version'] for m in self.registry.versions()],
            'current': self.version,
            'details': self.registry.versions(),
        }

    def training(self, _body):
        return {**self.trainer.status(), 'model_version': self.version, 'metrics': self.current_meta.get('metrics')}

    def job_status(self, body):
        job_id = body.scalar('job')
        if job_id is None:
            raise HttpError(400, '"job" is required (the id /train or /webhook answered)')
        job = self.trainer.find(str(job_id))
        if job is None:
            raise HttpError(404, f'unknown job {str(job_id)[:100]!r}')
        return job

    def do_rollback(self, body):
        try:
            meta = self.rollback(body.text('version'))
        except RegistryError as exc:
            raise HttpError(400, str(exc)) from None
        return {'model_version': meta['version']}

    def metrics(self, _body):
        return {
            'requests': dict(self.stats),
            'dropped_unmapped': dict(self.dropped),
            'annotation_events': {str(k): v for k, v in self._events.items()},
            'model_version': self.version,
        }

    ROUTES = {
        ('GET', '/'): 'health',
        ('GET', '/health'): 'health',
        ('POST', '/setup'): 'setup',
        ('POST', '/predict'): 'predict',
        ('POST', '/webhook'): 'webhook',
        ('POST', '/train'): 'train',
        ('GET', '/versions'): 'versions',
        ('GET', '/training'): 'training',
        ('POST', '/job_status'): 'job_status',
        ('POST', '/rollback'): 'do_rollback',
        ('GET', '/metrics'): 'metrics',
    }

    # -- WSGI
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


def add_arguments(parser):
    parser.add_argument('--config', help='MMDetection config .py (whole file; for other adapters, their own config)')
    parser.add_argument('--checkpoint', help='weights file; omitted = train from the config initialization')
    parser.add_argument('--device', default='cpu', help='cpu or cuda:0')
    parser.add_argument('--host', default='127.0.0.1')
    parser.add_argument('--port', type=int, default=9090)
    parser.add_argument('--adapter', default=DEFAULT_ADAPTER, help='dotted path of an Adapter subclass')
    parser.add_argument('--model-dir', help='versioned checkpoints (default ./ml-models/<config name>)')
    parser.add_argument('--score-threshold', type=float, default=0.3)
    parser.add_argument('--batch-size', type=int, default=8)
    parser.add_argument('--keep', type=int, default=3, help='trained versions kept on disk')
    parser.add_argument('--threads', type=int, default=int(os.environ.get('LS_EXT_ML_THREADS', '1')))
    parser.add_argument('--allowed-hosts', default=os.environ.get('LS_EXT_ML_IMAGE_HOSTS', ''))
    parser.add_argument(
        '--ls-url',
        default=os.environ.get('LABEL_STUDIO_URL') or os.environ.get('LABEL_STUDIO_HOST'),
        help='the Label Studio the server reads images and annotations from, with its token '
        '(default LABEL_STUDIO_URL, else LABEL_STUDIO_HOST)',
    )
    parser.add_argument(
        '--trust-setup-hostname',
        action='store_true',
        default=os.environ.get(TRUST_SETUP_ENV, '').lower() in ('1', 'true', 'yes'),
        help="without --ls-url: read from the hostname Label Studio sends in /setup, with that /setup's token "
        f'({TRUST_SETUP_ENV}=1)',
    )
    parser.add_argument(
        '--max-body-mb',
        type=float,
        default=float(os.environ.get('LS_EXT_ML_MAX_BODY_MB') or DEFAULT_MAX_BODY / 2**20),
        help='largest request body accepted, in MiB (413 beyond; LS_EXT_ML_MAX_BODY_MB)',
    )
    parser.add_argument('--train-every', type=int, default=0, help='train after N annotation events (0 = off)')
    parser.add_argument('--min-eval', type=int, default=10, help='annotated images needed for a held-out mAP')
    parser.add_argument('--option', action='append', default=[], help='adapter option key=value (repeatable)')


def build_server(options):
    """A ModelServer from parsed options (argparse namespace or Django options dict)."""
    o = options if isinstance(options, dict) else vars(options)
    if o.get('threads'):
        try:
            import torch

            torch.set_num_threads(int(o['threads']))
        except ImportError:
            pass
    adapter_options = {}
    for item in o.get('option') or []:
        key, _, value = item.partition('=')
        adapter_options[key.strip()] = value
    return ModelServer(
        adapter=o.get('adapter'),
        config=o.get('config'),
        checkpoint=o.get('checkpoint'),
        device=o.get('device') or 'cpu',
        model_dir=o.get('model_dir'),
        score_threshold=o.get('score_threshold', 0.3),
        batch_size=o.get('batch_size', 8),
        keep=o.get('keep', 3),
        allowed_hosts=o.get('allowed_hosts') or '',
        ls_url=o.get('ls_url'),
        ls_token=os.environ.get('LABEL_STUDIO_API_KEY') or None,
        options=adapter_options,
        train_every=o.get('train_every', 0),
        min_eval=o.get('min_eval', 10),
        basic_auth=credentials_from_env(),
        trust_setup_hostname=o.get('trust_setup_hostname', False),
        max_body=int((o.get('max_body_mb') or DEFAULT_MAX_BODY / 2**20) * 2**20),
    )


def credentials_from_env():
    return os.environ.get(CREDENTIALS_ENV) or None


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


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(parser)
    args = parser.parse_args(argv)
    try:
        check_bind(args.host, credentials_from_env())  # before loading a model: fail in a second
    except BindRefused as exc:
        print(f'error: {exc}', file=sys.stderr)
        return 2
    logging.basicConfig(
        level=os.environ.get('LS_EXT_ML_LOG_LEVEL', 'INFO'), format='%(asctime)s %(levelname)s %(message)s'
    )
    from ls_extensions.privacy import egress

    egress.install_from_env()
    try:
        app = build_server(args)
    except (AdapterError, RegistryError) as exc:
        print(f'error: {exc}', file=sys.stderr)
        return 2
    serve(app, args.host, args.port)
    return 0


if __name__ == '__main__':
    sys.exit(main())
