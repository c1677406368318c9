"""The production layout (Procfile.prod) started process by process, for tests that load it and break it.

    with ProdLayout(tmp_path, web_workers=4) as layout:
        layout.url                                  # gunicorn
        layout.health('web')                        # (status, json) of a process's health check
        layout.kill('worker-training', signal.SIGKILL)
        layout.restart('redis'); layout.wait_healthy(['web', 'redis'])

Every process runs the command of its Procfile.prod line (through bash, in its own process group, so
that a signal reaches its children), on free loopback ports, with logs in ``<tmp>/logs/<name>.log``.
PostgreSQL starts first, then ``migrate_once`` (``migrate_runners`` of them at once, as several hosts
would), then Redis and everything else.
"""

import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

from tests.support.process import wait_for
from tests.support.server import BIN, REPO, free_port, no_database_env

PROCFILE = REPO / 'Procfile.prod'
STOP_SIGNAL = {'postgres': signal.SIGINT}  # fast shutdown; SIGTERM would wait for clients


def procfile_commands(path=PROCFILE):
    commands = {}
    for line in Path(path).read_text().splitlines():
        match = re.match(r'^([A-Za-z0-9_-]+):\s*(.+)$', line.strip())
        if match and not line.lstrip().startswith('#'):
            commands[match.group(1)] = match.group(2)
    return commands


class ProdLayout:
    def __init__(self, tmp_dir, web_workers=4, celery_workers=2, worker_concurrency=2, migrate_runners=1, env=None):
        assert celery_workers in (1, 2), 'Procfile.prod has a training and a prediction worker'
        self.dir = Path(tmp_dir)
        self.logs = self.dir / 'logs'
        self.logs.mkdir(parents=True, exist_ok=True)
        # PostgreSQL runs as the postgres user when we are root: its data may not sit under a 0700 pytest dir
        self._pg_tmp = Path(tempfile.mkdtemp(prefix='ls-ext-prod-pg-')) if os.getuid() == 0 else None
        if self._pg_tmp:
            self._pg_tmp.chmod(0o755)
        self.pg_dir = self._pg_tmp / 'data' if self._pg_tmp else self.dir / 'pg'
        self.ports = {
            'postgres': free_port(),
            'redis': free_port(),
            'web': free_port(),
            'ml-backend': free_port(),
            'worker-training': free_port(),
            'worker-prediction': free_port(),
        }
        self.url = f'http://127.0.0.1:{self.ports["web"]}'
        self.migrate_runners = migrate_runners
        self.migrate_results = []  # (returncode, output) of each migrate_once run at start
        self.timings = {}  # seconds from a process's (last) start to healthy; 'migrate_once', 'all' from start()
        commands = procfile_commands()
        names = ['postgres', 'redis', 'web', 'worker-training', 'worker-prediction', 'beat', 'ml-backend']
        if celery_workers == 1:  # one worker for both queues
            names.remove('worker-prediction')
            commands['worker-training'] = commands['worker-training'].replace(
                '-Q training,celery', '-Q training,prediction,celery'
            )
        self.commands = {name: commands[name] for name in names}
        p = self.ports
        self.env = {
            **{k: v for k, v in no_database_env().items() if not k.startswith('LABEL_STUDIO_')},  # its own database
            'DATA_DIR': str(self.dir),
            'LS_EXT_PG_DIR': str(self.pg_dir),
            'LS_EXT_PG_PORT': str(p['postgres']),
            'LS_EXT_REDIS_PORT': str(p['redis']),
            'LS_EXT_WEB_PORT': str(p['web']),
            'LS_EXT_WEB_BIND': f'127.0.0.1:{p["web"]}',
            'LS_EXT_ML_PORT': str(p['ml-backend']),
            'LS_EXT_TRAINING_HEALTH_PORT': str(p['worker-training']),
            'LS_EXT_PREDICTION_HEALTH_PORT': str(p['worker-prediction']),
            'LS_EXT_WORKER_CONCURRENCY': str(worker_concurrency),
            'WEB_CONCURRENCY': str(web_workers),
            'DJANGO_SETTINGS_MODULE': 'settings.production',
            'SECRET_KEY': 'ls-ext-prod-layout-test-key-' + os.urandom(8).hex(),
            'LABEL_STUDIO_BASE_DATA_DIR': str(self.dir / 'label-studio'),
            'DATABASE_URL': f'postgres://postgres@127.0.0.1:{p["postgres"]}/ls_extensions',
            'CELERY_BROKER_URL': f'redis://127.0.0.1:{p["redis"]}/0',
            'LABEL_STUDIO_HOST': self.url,
            'ALLOWED_HOSTS': 'localhost,127.0.0.1',
            'LS_EXT_SKIP_MIGRATE': '1',  # start() runs migrate_once itself, before any web worker
            'PYTHONUNBUFFERED': '1',
            'PATH': f'{BIN}:{os.environ.get("PATH", "")}',
            **(env or {}),
        }
        self.health_checks = {
            'postgres': ('pg', p['postgres']),
            'redis': ('redis', p['redis']),
            'web': ('http', f'{self.url}/api/ls-ext/health/'),
            'worker-training': ('http', f'http://127.0.0.1:{p["worker-training"]}/health'),
            'worker-prediction': ('http', f'http://127.0.0.1:{p["worker-prediction"]}/health'),
            'beat': ('alive', None),
            'ml-backend': ('http', f'http://127.0.0.1:{p["ml-backend"]}/health'),
        }
        self.procs = {}
        self._logs = {}
        self._started_at = {}

    # -- whole layout ---------------------------------------------------------------------
    def start(self, timeout=300):
        started = time.monotonic()
        (self.dir / 'label-studio').mkdir(parents=True, exist_ok=True)
        self.start_process('postgres')
        self.wait_healthy(['postgres'], timeout=60, since=started)
        self._wait_database(60)
        self.start_process('redis')
        self.migrate_results = self.migrate_once(self.migrate_runners, timeout=timeout)
        for name, (code, output) in enumerate(self.migrate_results):
            if code != 0:
                raise RuntimeError(f'migrate_once #{name} failed ({code}):\n{output[-3000:]}')
        self.timings['migrate_once'] = time.monotonic() - started
        for name in self.commands:
            if name not in self.procs:
                self.start_process(name)
        self.wait_healthy([n for n in self.commands if n != 'postgres'], timeout=timeout, since=started)
        self.timings['all'] = time.monotonic() - started
        return self

    def stop_all(self):
        for name in reversed(list(self.procs)):
            self.stop(name)
        if self._pg_tmp:
            shutil.rmtree(self._pg_tmp, ignore_errors=True)

    def __enter__(self):
        try:
            return self.start()
        except BaseException:
            self.stop_all()
            raise

    def __exit__(self, *exc):
        self.stop_all()

    # -- single processes -----------------------------------------------------------------
    def start_process(self, name):
        if self.running(name):
            return self.procs[name]
        log = open(self.logs / f'{name}.log', 'ab')
        log.write(f'--- start {time.strftime("%H:%M:%S")}\n'.encode())
        log.flush()
        self._logs[name] = log
        self._started_at[name] = time.monotonic()
        self.procs[name] = subprocess.Popen(
            ['bash', '-c', f'exec {self.commands[name]}'],
            cwd=REPO,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        return self.procs[name]

    def running(self, name):
        proc = self.procs.get(name)
        return proc is not None and proc.poll() is None

    def pid(self, name):
        return self.procs[name].pid

    def kill(self, name, sig=signal.SIGTERM):
        """Send ``sig`` to the process group of ``name`` (no waiting)."""
        try:
            os.killpg(self.procs[name].pid, sig)
        except ProcessLookupError:
            pass

    def stop(self, name, timeout=20):
        proc = self.procs.get(name)
        if proc is None:
            return None
        if proc.poll() is None:
            self.kill(name, STOP_SIGNAL.get(name, signal.SIGTERM))
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill(name, signal.SIGKILL)
                proc.wait()
        self.kill(name, signal.SIGKILL)  # whatever is left in its group
        self._logs.pop(name).close()
        return proc.returncode

    def restart(self, name, wait=True, timeout=120):
        self.stop(name)
        self.start_process(name)
        if wait:
            self.wait_healthy([name], timeout=timeout)

    # -- health ---------------------------------------------------------------------------
    def health(self, name, timeout=3):
        """(HTTP-like status, payload): 200 when the process's own check passes."""
        kind, target = self.health_checks[name]
        if kind == 'http':
            try:
                with urllib.request.urlopen(target, timeout=timeout) as response:
                    return response.status, json.loads(response.read() or b'null')
            except urllib.error.HTTPError as exc:
                body = exc.read()
                try:
                    return exc.code, json.loads(body)
                except ValueError:
                    return exc.code, body.decode(errors='replace')
            except (OSError, ValueError) as exc:
                return None, str(exc)
        if kind == 'pg':
            ok = (
                subprocess.run(
                    ['pg_isready', '-q', '-U', 'postgres', '-h', '127.0.0.1', '-p', str(target)], timeout=10
                ).returncode
                == 0
            )
            return (200 if ok else 503), None
        if kind == 'redis':
            try:
                with socket.create_connection(('127.0.0.1', target), timeout=timeout) as sock:
                    sock.sendall(b'PING\r\n')
                    return (200 if sock.recv(16).startswith(b'+PONG') else 503), None
            except OSError as exc:
                return None, str(exc)
        return (200 if self.running(name) else None), None

    def wait_healthy(self, names, timeout=120, since=None):
        since = since or time.monotonic()
        pending = list(names)
        while pending:
            for name in list(pending):
                if name in self.procs and not self.running(name):
                    raise RuntimeError(f'{name} exited with {self.procs[name].returncode}:\n{self.log_tail(name)}')
                if self.health(name)[0] == 200:
                    self.timings[name] = time.monotonic() - self._started_at.get(name, since)
                    pending.remove(name)
            if pending and time.monotonic() - since > timeout:
                tails = '\n'.join(f'== {n}:\n{self.log_tail(n)}' for n in pending)
                raise TimeoutError(f'not healthy after {timeout}s: {pending}\n{tails}')
            if pending:
                time.sleep(0.5)

    def wait_status(self, name, status, timeout=30):
        """Poll ``health(name)`` until its status is ``status``; return the last payload."""
        deadline = time.monotonic() + timeout
        while True:
            got, payload = self.health(name)
            if got == status:
                return payload
            if time.monotonic() > deadline:
                raise TimeoutError(f'{name} health is {got}, not {status}: {payload}')
            time.sleep(0.5)

    def web_workers(self):
        """The pids of gunicorn's worker processes (the web master's children)."""
        master = self.pid('web')
        return {int(pid) for pid in Path(f'/proc/{master}/task/{master}/children').read_text().split()}

    def answering_workers(self, timeout=60):
        """The pids of the web workers that answered, one after another until each has.

        Which worker the kernel hands a connection to is otherwise chance: here a worker that answered is
        paused (SIGSTOP) so the next connection must go to another; all are resumed (SIGCONT) at the end.
        """
        workers, answered, paused = self.web_workers(), set(), []
        deadline = time.monotonic() + timeout
        try:
            while answered != workers and time.monotonic() < deadline:
                with urllib.request.urlopen(f'{self.url}/api/ls-ext/health/live/', timeout=30) as response:
                    pid = json.loads(response.read())['pid']
                assert pid not in paused, f'a paused worker ({pid}) answered'
                answered.add(pid)
                os.kill(pid, signal.SIGSTOP)
                paused.append(pid)
        finally:
            for pid in paused:
                os.kill(pid, signal.SIGCONT)
        return answered

    # -- commands beside the processes ------------------------------------------------------
    def manage(self, *args, timeout=300):
        """``manage.py <args>`` with the layout's environment; returns the CompletedProcess."""
        return subprocess.run(
            [str(BIN / 'python'), str(REPO / 'manage.py'), *args],
            cwd=REPO,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def migrate_once(self, runners=1, timeout=600, args=()):
        """``runners`` concurrent ``manage.py migrate_once``: [(returncode, output)] in start order.

        With several runners the path is forced, not left to their start-up speed: the layout holds the
        advisory lock itself until every runner has found it taken ("another host is migrating"), then
        lets them go, so they really serialize on the lock.
        """
        outputs = [self.logs / f'migrate_once.{n}.log' for n in range(runners)]
        with self._migration_lock_held(runners > 1) as release:
            procs = []
            for path in outputs:
                with open(path, 'w') as out:
                    procs.append(
                        subprocess.Popen(
                            [str(BIN / 'python'), str(REPO / 'manage.py'), 'migrate_once', *args],
                            cwd=REPO,
                            env=self.env,
                            stdout=out,
                            stderr=subprocess.STDOUT,
                            text=True,
                        )
                    )
            if runners > 1:
                waiting = lambda: all(  # noqa: E731
                    'another host is migrating' in path.read_text() or proc.poll() is not None
                    for path, proc in zip(outputs, procs, strict=True)
                )
                wait_for(waiting, timeout, 0.5, 'migrate_once runners waiting for the lock')
            release()
            for proc in procs:
                proc.wait(timeout)
        results = [(proc.returncode, path.read_text()) for proc, path in zip(procs, outputs, strict=True)]
        (self.logs / 'migrate_once.log').write_text('\n\n'.join(out for _, out in results))
        return results

    @contextlib.contextmanager
    def _migration_lock_held(self, hold):
        """Hold migrate_once's PostgreSQL advisory lock (from this process) until ``release()`` is called."""
        if not hold:
            yield lambda: None
            return
        import psycopg

        from ls_extensions.deploy.management.commands.migrate_once import LOCK_KEY

        with psycopg.connect(self.env['DATABASE_URL'], autocommit=True) as conn:
            conn.execute('SELECT pg_advisory_lock(%s)', [LOCK_KEY])
            held = [True]

            def release():
                if held:
                    held.pop()
                    conn.execute('SELECT pg_advisory_unlock(%s)', [LOCK_KEY])

            try:
                yield release
            finally:
                if held:
                    release()

    def _wait_database(self, timeout):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            probe = subprocess.run(
                ['psql', self.env['DATABASE_URL'], '-tAc', 'SELECT 1'], capture_output=True, env=self.env
            )
            if probe.returncode == 0:
                return
            time.sleep(0.5)
        raise TimeoutError(f'database not created in {timeout}s:\n{self.log_tail("postgres")}')

    def log_tail(self, name, lines=40):
        path = self.logs / f'{name}.log'
        if not path.exists():
            return ''
        return '\n'.join(path.read_text(errors='replace').splitlines()[-lines:])
