"""The model server listens beyond loopback only with credentials: real processes, real exit codes.

Without ``LS_EXT_ML_BASIC_AUTH`` anybody on the network could predict, train, roll back and hand the
server a ``/setup``. ``manage.py serve_ml_backend`` (and ``python -m ...server``) stop at once with a
message naming the variable; with credentials the same command serves and wants them.
"""

import subprocess
import sys

import pytest

from ls_extensions.ml_backend.server import BindRefused, check_bind, is_loopback
from tests.ml_backend.support import SERVER_ENV, TORCH_ADAPTER, ModelServerProcess, http
from tests.ml_backend.test_credentials import basic
from tests.support.server import REPO, free_port

CREDENTIALS = 'label-studio:s3cret-pass'


def run_command(args, env=None, timeout=120):
    import os

    base = {k: v for k, v in os.environ.items() if k not in SERVER_ENV}
    return subprocess.run(
        [sys.executable, *args], cwd=REPO, env={**base, **(env or {})}, capture_output=True, text=True, timeout=timeout
    )


@pytest.mark.parametrize('host', ['0.0.0.0', '192.0.2.10', ''], ids=['all interfaces', 'a LAN address', 'empty'])
def test_the_management_command_refuses_to_listen_beyond_loopback_without_credentials(tmp_path, host):
    result = run_command(
        ['manage.py', 'serve_ml_backend', '--host', host, '--port', str(free_port())]
        + ['--adapter', TORCH_ADAPTER, '--model-dir', str(tmp_path / 'models')]
    )
    assert result.returncode != 0, result.stdout
    assert 'LS_EXT_ML_BASIC_AUTH=user:password' in result.stderr and '--host 127.0.0.1' in result.stderr, result.stderr
    assert 'beyond loopback' in result.stderr
    assert not (tmp_path / 'models').exists()  # refused before a model was loaded or a version registered


def test_the_module_entry_point_refuses_too_with_exit_code_2(tmp_path):
    result = run_command(
        ['-m', 'ls_extensions.ml_backend.server', '--host', '0.0.0.0', '--port', str(free_port())]
        + ['--adapter', TORCH_ADAPTER, '--model-dir', str(tmp_path / 'models')]
    )
    assert result.returncode == 2 and 'LS_EXT_ML_BASIC_AUTH' in result.stderr, result.stderr


def test_credentials_without_a_password_are_refused(tmp_path):
    result = run_command(
        ['-m', 'ls_extensions.ml_backend.server', '--host', '0.0.0.0', '--port', str(free_port())]
        + ['--adapter', TORCH_ADAPTER, '--model-dir', str(tmp_path / 'models')],
        env={'LS_EXT_ML_BASIC_AUTH': 'label-studio'},
    )
    assert result.returncode == 2 and 'must be user:password' in result.stderr, result.stderr


def test_with_credentials_it_listens_on_every_interface_and_wants_them(tmp_path):
    pytest.importorskip('torch', reason='torch not installed (scripts/install-ml.sh)')
    user, password = CREDENTIALS.split(':')
    auth = {'Authorization': basic(user, password)}
    args = ['--host', '0.0.0.0', '--adapter', TORCH_ADAPTER, '--model-dir', str(tmp_path / 'models')]
    with ModelServerProcess(
        tmp_path / 'ms', args, env={'LS_EXT_ML_BASIC_AUTH': CREDENTIALS}, ready_headers=auth
    ) as model:
        assert http('GET', model.url + '/health')[0] == 401
        status, body, _ = http('GET', model.url + '/health', headers=auth)
        assert status == 200 and body['status'] == 'UP'


def test_loopback_is_told_apart_from_everything_else():
    assert all(is_loopback(h) for h in ['127.0.0.1', '127.1.2.3', '::1', '[::1]', 'localhost', 'LOCALHOST'])
    assert not any(is_loopback(h) for h in ['0.0.0.0', '', '::', '10.0.0.5', '192.0.2.10', '::ffff:127.0.0.1'])
    check_bind('127.0.0.1', None)  # loopback needs nothing
    check_bind('0.0.0.0', CREDENTIALS)
    with pytest.raises(BindRefused, match='LS_EXT_ML_BASIC_AUTH'):
        check_bind('10.0.0.5', None)
