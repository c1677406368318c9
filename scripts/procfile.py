#!/usr/bin/env python3
"""A small Procfile runner: every ``name: command`` line in its own process group, output prefixed with the name.

    scripts/procfile.py Procfile.prod [--health name=URL ...] [--ready-message TEXT] [--only a,b]

Stops all processes on Ctrl-C / SIGTERM or as soon as one exits (its exit status becomes ours). With
``--health`` it waits for each check to pass and prints the ready message; a check is an http(s) URL
(answers 200), ``redis:host:port`` (PING -> PONG) or ``pg:host:port`` (pg_isready).
"""

import argparse
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request

COLORS = ['36', '33', '32', '35', '34', '31', '96', '93', '92']
STOP_SIGNAL = {'postgres': signal.SIGINT}  # PostgreSQL: fast shutdown (SIGTERM waits for clients)


def parse_procfile(path):
    entries = []
    for line in open(path):
        match = re.match(r'^([A-Za-z0-9_-]+):\s*(.+)$', line.strip())
        if match and not line.lstrip().startswith('#'):
            entries.append((match.group(1), match.group(2)))
    return entries


def check(spec, timeout=2.0):
    """True when the health check ``spec`` passes."""
    try:
        if spec.startswith(('http://', 'https://')):
            with urllib.request.urlopen(spec, timeout=timeout) as response:
                return response.status == 200
        kind, host, port = spec.split(':')
        if kind == 'redis':
            with socket.create_connection((host, int(port)), timeout=timeout) as sock:
                sock.sendall(b'PING\r\n')
                return sock.recv(16).startswith(b'+PONG')
        if kind == 'pg':
            pg_isready = shutil.which('pg_isready') or 'pg_isready'
            return subprocess.run([pg_isready, '-q', '-h', host, '-p', port], timeout=timeout + 3).returncode == 0
    except (OSError, ValueError, subprocess.SubprocessError):
        return False
    raise ValueError(f'unknown health check {spec!r}')


class Runner:
    def __init__(self, entries):
        self.entries = entries
        self.width = max(len(name) for name, _ in entries)
        self.procs = {}
        self.lock = threading.Lock()

    def echo(self, name, text, color='0'):
        with self.lock:
            sys.stdout.write(f'\033[{color}m{name:<{self.width}} |\033[0m {text}\n')
            sys.stdout.flush()

    def start(self):
        for i, (name, command) in enumerate(self.entries):
            proc = subprocess.Popen(
                ['bash', '-c', f'exec {command}'],
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # a process group per line: stopping it stops its children too
            )
            self.procs[name] = proc
            color = COLORS[i % len(COLORS)]
            threading.Thread(target=self._pump, args=(name, proc, color), daemon=True).start()
            self.echo(name, f'started (pid {proc.pid}): {command}', color)

    def _pump(self, name, proc, color):
        for raw in iter(proc.stdout.readline, b''):
            self.echo(name, raw.decode(errors='replace').rstrip(), color)

    def first_exit(self):
        return next(((n, p.returncode) for n, p in self.procs.items() if p.poll() is not None), None)

    def stop(self, timeout=20):
        for name, proc in reversed(list(self.procs.items())):
            if proc.poll() is None:
                try:
                    os.killpg(proc.pid, STOP_SIGNAL.get(name, signal.SIGTERM))
                except ProcessLookupError:
                    pass
        deadline = time.monotonic() + timeout
        for name, proc in self.procs.items():
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                self.echo(name, 'did not stop in time: SIGKILL')
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
            try:  # children left in the group (e.g. PostgreSQL backends)
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('procfile')
    parser.add_argument('--health', action='append', default=[], metavar='NAME=CHECK')
    parser.add_argument('--ready-message', default='all processes healthy')
    parser.add_argument('--ready-timeout', type=float, default=300)
    parser.add_argument('--only', help='comma-separated process names')
    args = parser.parse_args()
    entries = parse_procfile(args.procfile)
    if args.only:
        entries = [e for e in entries if e[0] in args.only.split(',')]
    health = dict(item.split('=', 1) for item in args.health)
    runner = Runner(entries)
    stopping = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, lambda *_: stopping.set())
    runner.start()
    started, pending, status = time.monotonic(), {n: c for n, c in health.items() if n in runner.procs}, 0
    while not stopping.is_set():
        exited = runner.first_exit()
        if exited:
            runner.echo(exited[0], f'exited with status {exited[1]}: stopping all')
            status = exited[1] or 1
            break
        for name, spec in list(pending.items()):
            if check(spec):
                runner.echo(name, f'healthy after {time.monotonic() - started:.1f}s ({spec})')
                del pending[name]
                if not pending:
                    runner.echo('*', args.ready_message, '1')
        if pending and time.monotonic() - started > args.ready_timeout:
            runner.echo('*', f'not healthy after {args.ready_timeout:.0f}s: {", ".join(pending)}; stopping all')
            status = 1
            break
        stopping.wait(0.5)
    runner.echo('*', 'stopping all processes')
    runner.stop()
    runner.echo('*', 'all stopped')
    return status


if __name__ == '__main__':
    sys.exit(main())
