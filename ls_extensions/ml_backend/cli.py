"""The model server's command line: its options (shared with ``manage.py serve_ml_backend``), building the server from them, ``main``."""

import argparse
import logging
import os
import sys

from ls_extensions.ml_backend.adapters import DEFAULT_ADAPTER
from ls_extensions.ml_backend.adapters.base import AdapterError
from ls_extensions.ml_backend.http_input import DEFAULT_MAX_BODY
from ls_extensions.ml_backend.labels import DEFAULT_SCORE_THRESHOLD
from ls_extensions.ml_backend.lifecycle import ModelServer
from ls_extensions.ml_backend.registry import RegistryError
from ls_extensions.ml_backend.wsgi_app import CREDENTIALS_ENV, BindRefused, check_bind, serve

TRUST_SETUP_ENV = 'LS_EXT_ML_TRUST_SETUP_HOSTNAME'


def add_arguments(parser):
    parser.add_argument('--config', help='MMDetection config .py (whole file; for other adapters, their own config)')
    parser.add_argument('--checkpoint', help='weights file; omitted = train from the config initialization')
    parser.add_argument('--device', default='cpu', help='cpu or cuda:0')
    parser.add_argument('--host', default='127.0.0.1')
    parser.add_argument('--port', type=int, default=9090)
    parser.add_argument('--adapter', default=DEFAULT_ADAPTER, help='dotted path of an Adapter subclass')
    parser.add_argument('--model-dir', help='versioned checkpoints (default ./ml-models/<config name>)')
    parser.add_argument('--score-threshold', type=float, default=DEFAULT_SCORE_THRESHOLD)
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
    parser.add_argument(
        '--gate-tolerance',
        type=float,
        default=0.0,
        help="serve a trained version only if its held-out mAP@0.5 is at most this much below the served one's",
    )
    parser.add_argument('--no-gate', action='store_true', help='serve every version that trained, better or not')
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
        score_threshold=o.get('score_threshold', DEFAULT_SCORE_THRESHOLD),
        batch_size=o.get('batch_size', 8),
        keep=o.get('keep', 3),
        allowed_hosts=o.get('allowed_hosts') or '',
        ls_url=o.get('ls_url'),
        ls_token=os.environ.get('LABEL_STUDIO_API_KEY') or None,
        options=adapter_options,
        train_every=o.get('train_every', 0),
        min_eval=o.get('min_eval', 10),
        gate_tolerance=None if o.get('no_gate') else o.get('gate_tolerance', 0.0),
        basic_auth=credentials_from_env(),
        trust_setup_hostname=o.get('trust_setup_hostname', False),
        max_body=int((o.get('max_body_mb') or DEFAULT_MAX_BODY / 2**20) * 2**20),
    )


def credentials_from_env():
    return os.environ.get(CREDENTIALS_ENV) or None


def main(argv=None, description=None):
    """Parse ``argv``, check the bind, install the egress guard, build and serve; 2 on a start-up error."""
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
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
