"""The model server object and its model lifecycle: the version served, swapping in a trained or rolled-back one, the registry.

``ModelServer`` is built here from the handlers (``handlers``) and the WSGI plumbing (``wsgi_app``);
the constructor loads the adapter and picks the registry version to serve.
"""

import json
import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from ls_extensions.ml_backend.adapters import DEFAULT_ADAPTER
from ls_extensions.ml_backend.adapters.base import AdapterError, load_adapter_class
from ls_extensions.ml_backend.handlers import ProtocolHandlers
from ls_extensions.ml_backend.http_input import DEFAULT_MAX_BODY
from ls_extensions.ml_backend.labels import DEFAULT_SCORE_THRESHOLD
from ls_extensions.ml_backend.registry import ModelRegistry
from ls_extensions.ml_backend.training import Trainer
from ls_extensions.ml_backend.video_dataset import sampling_from_options
from ls_extensions.ml_backend.video_predict import VideoOptions
from ls_extensions.ml_backend.wsgi_app import WsgiApp


class ModelServer(ProtocolHandlers, WsgiApp):
    """Label Studio's ML protocol for one adapter: a WSGI app (``wsgi_app``) answering with ``handlers``."""

    def __init__(
        self,
        adapter='',
        config=None,
        checkpoint=None,
        device='cpu',
        model_dir=None,
        score_threshold=DEFAULT_SCORE_THRESHOLD,
        batch_size=8,
        keep=3,
        allowed_hosts='',
        ls_url=None,
        ls_token=None,
        options=None,
        train_every=0,
        min_eval=10,
        gate_tolerance=0.0,
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
        try:  # the video options are read per request or job; a bad one stops start-up with its name
            VideoOptions.from_settings(self.options, None)
            sampling_from_options(self.options)
        except ValueError as exc:
            raise AdapterError(str(exc)) from None
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
        self.trainer = Trainer(self, min_eval=min_eval, gate_tolerance=gate_tolerance)
        self.projects = {}  # project id -> {'label_config', 'hostname', 'access_token'}
        self.stats = Counter()
        self.predicting = {}  # videos being predicted now: /training shows their frames done
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
