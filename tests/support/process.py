"""One base for the real processes the tests start (Label Studio, model server, Celery worker, ...):
output to a log file, stop (terminate, then kill), SIGKILL on demand, the log's tail, a context manager.

Each process leads its own process group, and signals go to the group: ``celery worker -B`` runs beat
as a child that would outlive a SIGKILL of the worker alone.
"""

import os
import signal
import subprocess
import time
import urllib.request
from pathlib import Path


class ManagedProcess:
    """Subclasses set ``log_path`` and call ``spawn(args, env, cwd)`` from their ``start()``."""

    process = None
    log_path: Path

    def spawn(self, args, env, cwd):
        self._log = open(self.log_path, 'ab')
        self.process = subprocess.Popen(
            args, env=env, cwd=cwd, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True
        )
        return self.process

    def signal_group(self, sig):
        try:
            os.killpg(self.process.pid, sig)
        except ProcessLookupError:
            pass

    def wait_ready(self, ready, timeout, interval=0.5, what='process'):
        """Poll ``ready()`` until it is true; the process exiting first, or the timeout, raises with the log."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f'{what} exited with {self.process.returncode}:\n{self.log_tail()}')
            if ready():
                return self
            time.sleep(interval)
        raise TimeoutError(f'{what} not ready in {timeout}s:\n{self.log_tail()}')

    def alive(self):
        return self.process is not None and self.process.poll() is None

    def stop(self, timeout=20):
        if self.alive():
            self.signal_group(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.signal_group(signal.SIGKILL)
                self.process.wait()
        if self.process is not None:
            self.signal_group(signal.SIGKILL)  # whatever is left of the group
        if self.process is not None and not self._log.closed:
            self._log.close()

    def kill(self):
        """SIGKILL: no shutdown handler runs, nothing is flushed, acknowledged or restored."""
        self.signal_group(signal.SIGKILL)
        self.process.wait(20)

    def log_tail(self, lines=60):
        if not self.log_path.exists():
            return ''
        return '\n'.join(self.log_path.read_text(errors='replace').splitlines()[-lines:])

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


def wait_for(check, timeout, interval=0.5, what='condition', details=lambda: ''):
    """Poll ``check()`` until it returns something truthy (returned); the timeout raises with ``details()``.

    For state the tests observe (a database row, an API answer, a broker's queue): never a fixed sleep.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f'{what}: not reached in {timeout}s\n{details()}')
        time.sleep(interval)


def answers_200(url, timeout):
    """True when ``GET url`` answers 200 (a refused or failed connection is just "not yet")."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status == 200
    except OSError:
        return False
