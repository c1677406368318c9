"""Annotators under load against the production layout, with faults injected while they work.

Shared by ``tests/production/test_load.py`` (asserts) and ``benchmarks/production_report.py`` (prints the
table). ``run_scenario`` starts the layout (``tests/support/prod_layout.py``: gunicorn with 4 workers,
PostgreSQL, Redis, a training and a prediction Celery worker, beat, the tiny-model ML backend), makes one
organization with ``annotators`` users and a project of synthetic fish images with an enabled retraining
policy, then lets each annotator pull next tasks (``/api/projects/<id>/next``) and submit ``each``
annotations while a fault thread breaks one part after another:

  redis      stopped for 20 s, then started again
  worker     the training worker SIGKILLed while it holds the training run's poll message (fetched, due
             seconds later, nothing of it left in Redis: only the sweep can carry the run on), restarted 5 s
             later (as an orchestrator would)
  ml         the ML backend SIGKILLed while a run trains, restarted at once
  postgres   restarted (every connection dropped)

A client whose request fails (5xx, connection refused) does what the labeling UI's user does: looks whether
the annotation is there, and submits again if not; so "nothing lost" and "exactly once" are checkable.
Convergence of a fault: seconds from its recovery until every health check passes again and a training
run has reached its verdict after that moment: served (succeeded) or kept back by the model gate (rejected),
either of which means it trained and was evaluated.
"""

import json
import random
import signal
import statistics
import sys
import threading
import time
from dataclasses import dataclass, field

import requests

from ls_extensions.ml_backend import synthetic
from tests.label_configs import IMAGE_BOXES
from tests.support.api import TokenApi, png_bytes
from tests.support.prod_layout import ProdLayout

# a run that trained and reached its verdict: served, or kept back by the model gate (its held-out mAP fell)
DECIDED = ('succeeded', 'rejected')
HEALTHY = ['postgres', 'redis', 'web', 'worker-training', 'worker-prediction', 'ml-backend']
# fast recovery for a bounded run: lost steps are published again after 20 s, the sweep runs every 5 s; a poll
# every 8 s: the training worker holds each poll message that long, the window the worker fault kills it in
RETRAINING_ENV = {
    'LABEL_STUDIO_ENABLE_LEGACY_API_TOKEN': 'true',
    'LS_EXT_RETRAINING_POLL_SECONDS': '8',
    'LS_EXT_RETRAINING_STALE_SECONDS': '20',
    'LS_EXT_RETRAINING_SWEEP_SECONDS': '5',
    'LS_EXT_RETRAINING_RETRY_SECONDS': '2',
    'LS_EXT_RETRAINING_MAX_RETRIES': '5',
    'LS_EXT_CELERY_VISIBILITY_TIMEOUT': '900',  # longer than any countdown the steps use
}
USERS_SCRIPT = """
import sys
from organizations.models import Organization
from rest_framework.authtoken.models import Token
from users.models import User
count, prefix = int(sys.argv[1]), sys.argv[2]
owner = None
for i in range(count):
    user = User.objects.create_user(email=f'annotator{i}@example.org', password=None,  # tokens only: no hashing
                                    username=f'annotator{i}')
    if owner is None:
        owner, organization = user, Organization.create_organization(created_by=user, title='load')
    else:
        organization.add_user(user)
    user.active_organization = organization
    user.save(update_fields=['active_organization'])
    Token.objects.filter(user=user).delete()
    Token.objects.create(user=user, key=f'{prefix}{i:04d}'.ljust(40, '0'))
"""


@dataclass
class Fault:
    name: str
    started: float = 0.0  # seconds since the load started
    recovered: float = 0.0
    converged: float | None = None  # seconds from recovery to healthy + a run decided (DECIDED) after it
    during_load: bool = False
    note: str = ''


@dataclass
class Figures:
    annotators: int
    each: int
    threshold: int
    submitted: int = 0  # annotations the clients saw accepted (201, or found stored after an error)
    stored: int = 0
    duplicates: int = 0
    missing: int = 0
    status_5xx: int = 0
    status_5xx_outside_faults: int = 0
    server_errors_outside_faults: list = field(default_factory=list)  # what each of those requests was
    connection_errors: int = 0
    retried: int = 0
    latencies_ms: list = field(default_factory=list)
    load_seconds: float = 0.0
    runs: list = field(default_factory=list)
    overlapping_runs: int = 0
    changes_counted: int = 0
    final_version: str = ''
    unlabeled: int = 0
    unlabeled_without_final_prediction: int = 0
    final_convergence: float | None = None
    faults: list = field(default_factory=list)
    errors: list = field(default_factory=list)

    def runs_by(self, key):
        counts = {}
        for run in self.runs:
            counts[run[key]] = counts.get(run[key], 0) + 1
        return counts

    @property
    def runs_by_status(self):
        return self.runs_by('status')

    def table(self):
        p = statistics.quantiles(self.latencies_ms, n=100) if len(self.latencies_ms) > 1 else [0] * 99
        rows = [
            ('annotators x annotations', f'{self.annotators} x {self.each}'),
            ('annotations submitted (client saw them stored)', self.submitted),
            ('annotations stored', self.stored),
            ('duplicates / missing', f'{self.duplicates} / {self.missing}'),
            ('5xx answers (all / outside fault windows)', f'{self.status_5xx} / {self.status_5xx_outside_faults}'),
            ('connection errors / submits retried', f'{self.connection_errors} / {self.retried}'),
            ('submit latency p50 / p99 ms', f'{p[49]:.0f} / {p[98]:.0f}'),
            ('load duration s', f'{self.load_seconds:.0f}'),
            ('changes counted by the policy', self.changes_counted),
            (
                f'training runs (threshold {self.threshold})',
                ', '.join(f'{k} {v}' for k, v in self.runs_by_status.items()),
            ),
            ('training runs by cause', ', '.join(f'{k} {v}' for k, v in self.runs_by('trigger').items())),
            ('runs overlapping in time', self.overlapping_runs),
            ('final model version', self.final_version),
            (
                'unlabeled tasks without a final-version prediction',
                f'{self.unlabeled_without_final_prediction} of {self.unlabeled}',
            ),
            ('converged after the last annotation s', _seconds(self.final_convergence)),
        ]
        for fault in self.faults:
            when = 'during load' if fault.during_load else 'after load'
            label = f'fault {fault.name} ({when}, at {fault.started:.0f} s)'
            rows.append((label, f'converged {_seconds(fault.converged)} after recovery {fault.note}'.rstrip()))
        width = max(len(r[0]) for r in rows)
        return '\n'.join(f'{name:<{width}}  {value}' for name, value in rows)


def poll_in_redis(port, run_id):
    """Where the run's poll messages are in Redis: (queued, [ETA of each one a worker holds unacknowledged])."""
    from datetime import datetime

    import redis

    def mine(message):
        headers = message.get('headers') or {}
        return headers.get('task') == 'ls_ext_retraining.poll_training' and headers.get('argsrepr') == f'({run_id},)'

    client = redis.Redis(host='127.0.0.1', port=port, socket_timeout=10)
    try:
        lists = [key for key in client.scan_iter() if client.type(key) == b'list']
        queued = any(mine(json.loads(item)) for key in lists for item in client.lrange(key, 0, -1))
        held = [json.loads(value)[0] for value in client.hvals('unacked')]  # kombu: [message, exchange, key]
    finally:
        client.close()
    return queued, [datetime.fromisoformat(m['headers']['eta']) for m in held if mine(m) and m['headers'].get('eta')]


def log(message):
    print(f'[{time.strftime("%H:%M:%S")}] {message}', file=sys.stderr, flush=True)


def _seconds(value):
    return 'never' if value is None else f'{value:.1f} s'


class Annotator(threading.Thread):
    def __init__(self, scenario, token, number):
        super().__init__(name=f'annotator-{number}', daemon=True)
        self.scenario, self.number = scenario, number
        self.session = requests.Session()
        self.session.headers['Authorization'] = f'Token {token}'
        self.done = []  # task ids this annotator's annotations are stored for
        self.rng = random.Random(number)

    def request(self, method, path, **kwargs):
        """(status or None, json or None); counts 5xx and connection errors."""
        sent_at = time.monotonic()
        try:
            response = self.session.request(method, self.scenario.url + path, timeout=60, **kwargs)
        except requests.RequestException:
            self.scenario.count('connection_errors')
            return None, None
        if response.status_code >= 500:
            self.scenario.count_5xx(method, path, response, sent_at, time.monotonic())
        try:
            return response.status_code, response.json() if response.content else None
        except ValueError:
            return response.status_code, None

    def stored(self, task_id):
        """Whether this annotator's annotation of the task is stored: asked until the answer is definite."""
        for attempt in range(60):
            status, annotations = self.request('GET', f'/api/tasks/{task_id}/annotations/')
            if status == 200:
                return any(a.get('completed_by') == self.scenario.user_ids[self.number] for a in annotations)
            time.sleep(1 + min(attempt, 4))
        raise RuntimeError(f'could not tell whether task {task_id} has the annotation of annotator {self.number}')

    def run(self):
        scenario = self.scenario
        while len(self.done) < scenario.each and not scenario.stop.is_set():
            status, task = self.request('GET', f'/api/projects/{scenario.project_id}/next')
            if status != 200 or not task or 'id' not in task:
                time.sleep(1)
                continue
            result = scenario.result_for(task)
            for attempt in range(30):
                started = time.perf_counter()
                status, _ = self.request(
                    'POST',
                    f'/api/tasks/{task["id"]}/annotations/?project={scenario.project_id}',
                    json={'result': result},
                )
                if status == 201:
                    scenario.latencies_ms.append((time.perf_counter() - started) * 1000)
                    break
                if status is not None and status < 500:
                    scenario.errors.append(f'submit {task["id"]}: {status}')
                    break
                # an error: stored anyway (the answer was lost)? else submit again, as a user would
                time.sleep(1 + attempt)
                if self.stored(task['id']):
                    break
                scenario.count('retried')
            else:
                scenario.errors.append(f'submit {task["id"]}: gave up')
                continue
            if status is not None and status >= 400 and status < 500:
                continue
            self.done.append(task['id'])
            time.sleep(self.rng.uniform(0.5, 1.5) * scenario.think_seconds)


class Scenario:
    def __init__(
        self,
        tmp_dir,
        annotators=50,
        each=20,
        threshold=100,
        extra_tasks=60,
        think_seconds=6.0,
        faults=('redis', 'worker', 'ml', 'postgres'),
        web_workers=4,
    ):
        self.tmp_dir, self.annotators, self.each, self.threshold = tmp_dir, annotators, each, threshold
        self.extra_tasks, self.think_seconds, self.fault_names = extra_tasks, think_seconds, faults
        self.web_workers = web_workers
        self.figures = Figures(annotators, each, threshold)
        self.latencies_ms, self.errors = self.figures.latencies_ms, self.figures.errors
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.fault_windows = []  # (start, end) monotonic
        self.load_started = None  # monotonic, set as the annotators start (the only callers of count_5xx)
        self.images = {}

    # -- counters shared by the annotator threads -------------------------------------------------
    def count(self, name):
        with self.lock:
            setattr(self.figures, name, getattr(self.figures, name) + 1)

    def count_5xx(self, method, path, response, sent_at, answered_at):
        """A 5xx belongs to a fault when its request was in flight while the fault was on (or up to 5 s after
        the recovery): sent before the window closed and answered after it opened. A request sent a moment
        before PostgreSQL restarts and failing when it goes down is the fault's, whenever it was sent."""
        with self.lock:
            self.figures.status_5xx += 1
            in_flight = any(
                start <= answered_at and sent_at <= (end if end is not None else answered_at) + 5
                for start, end in self.fault_windows
            )
            if not in_flight:
                self.figures.status_5xx_outside_faults += 1
                self.figures.server_errors_outside_faults.append(
                    {
                        'request': f'{method} {path}',
                        'status': response.status_code,
                        'sent_s': round(sent_at - self.load_started, 2),
                        'answered_s': round(answered_at - self.load_started, 2),
                        'windows_s': [
                            (
                                round(a - self.load_started, 2),
                                round(b - self.load_started, 2) if b is not None else None,
                            )
                            for a, b in self.fault_windows
                        ],
                        'body': response.text[:300],
                    }
                )

    def result_for(self, task):
        name = task['data']['image'].rsplit('/', 1)[-1].split('-', 1)[-1]
        img, boxes = self.images[name]
        return synthetic.to_ls_result(boxes, img.shape[1], img.shape[0])

    # -- set-up ---------------------------------------------------------------------------------
    def prepare(self, layout):
        self.layout, self.url = layout, layout.url
        prefix = 'loadtoken'
        made = layout.manage(
            'shell',
            '-c',
            USERS_SCRIPT.replace('sys.argv[1]', str(self.annotators)).replace('sys.argv[2]', repr(prefix)),
        )
        assert made.returncode == 0, made.stderr[-3000:]
        self.tokens = [f'{prefix}{i:04d}'.ljust(40, '0') for i in range(self.annotators)]
        self.api = TokenApi(self.url, self.tokens[0], expect=(200, 201, 202))
        me = self.api('GET', '/api/current-user/whoami')
        self.project_id = self.api(
            'POST', '/api/projects', json={'title': 'load', 'label_config': IMAGE_BOXES, 'maximum_annotations': 1}
        )['id']
        count = self.annotators * self.each + self.extra_tasks
        dataset = synthetic.dataset(count, seed=11, size=64)
        for start in range(0, count, 100):
            files = [
                (f'f{i}', (f'img{i:05d}.png', png_bytes(img), 'image/png'))
                for i, (img, _) in enumerate(dataset[start : start + 100], start)
            ]
            self.api('POST', f'/api/projects/{self.project_id}/import', files=files)
        self.images = {f'img{i:05d}.png': item for i, item in enumerate(dataset)}
        ml_url = f'http://127.0.0.1:{layout.ports["ml-backend"]}'
        backend = self.api('POST', '/api/ml', json={'url': ml_url, 'project': self.project_id, 'title': 'tiny'})
        self.api(
            'PATCH',
            f'/api/projects/{self.project_id}/retraining/',
            json={'enabled': True, 'threshold': self.threshold, 'batch_size': 50, 'ml_backend': backend['id']},
        )
        # switching the policy on pre-annotates every task with the served version (no in-request predictions)
        log(f'project {self.project_id}: {count} tasks, waiting for the pre-annotation run')
        initial = self.wait_for_run(('succeeded', 'failed'), timeout=900)
        assert initial and initial['status'] == 'succeeded' and initial['metrics'].get('predict_only'), initial
        self.initial_run = initial
        self.user_ids = [me['id']] + [
            TokenApi(self.url, token)('GET', '/api/current-user/whoami')['id'] for token in self.tokens[1:]
        ]

    # -- faults -------------------------------------------------------------------------------------
    def wait_for_run(self, statuses, timeout=240):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            runs = self.runs()
            if runs and runs[0]['status'] in statuses:
                return runs[0]
            time.sleep(0.5)
        return None

    def runs(self):
        try:
            return self.api('GET', f'/api/projects/{self.project_id}/retraining/runs/')
        except (AssertionError, requests.RequestException):
            return []

    def converge(self, since_wall, timeout=300):
        """Seconds until every health check passes and a run has been decided (DECIDED) after ``since_wall``.

        A project left idle (no run going or pending 10 s after the recovery: the load is over, or the
        fault hit between triggers) is asked for one run ("Retrain now"), so every fault ends in a run.
        """
        started, probed = time.monotonic(), False
        while time.monotonic() - started < timeout:
            if not probed and time.monotonic() - started > 10:
                self.probe()
                probed = True
            healthy = all(self.layout.health(name)[0] == 200 for name in HEALTHY)
            decided = any(
                r['status'] in DECIDED and r['finished_at'] and _epoch(r['finished_at']) > since_wall
                for r in self.runs()
            )
            if healthy and decided:
                return time.monotonic() - started
            time.sleep(1)
        return None

    def probe(self):
        """No run going or pending (the load is over, or between triggers): ask for one ("Retrain now")."""
        policy = self.api('GET', f'/api/projects/{self.project_id}/retraining/')
        if not policy['running'] and not policy['pending']:
            self.api('POST', f'/api/projects/{self.project_id}/retraining/train/')

    def kill_point(self, name, timeout=300):
        """The run to break: training (the ML backend fault), and its poll message held by the training worker
        for at least 2 s more (the worker fault); a run is asked for while none is going. None after ``timeout``."""
        from datetime import UTC, datetime

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            runs = self.runs()
            run = runs[0] if runs and runs[0]['status'] == 'training' else None
            if run is None:
                if not runs or runs[0]['status'] in (*DECIDED, 'failed'):
                    self.probe()
            elif name == 'ml':
                return run
            else:
                queued, held = poll_in_redis(self.layout.ports['redis'], run['id'])
                if not queued and held and (max(held) - datetime.now(UTC)).total_seconds() >= 2:
                    return run
            time.sleep(0.2)
        return None

    def inject(self, name, load_running):
        layout, fault, load_started = self.layout, Fault(name), self.load_started
        log(f'fault {name}: injecting at {time.monotonic() - load_started:.0f} s')
        window = [time.monotonic(), None]
        fault.started = time.monotonic() - load_started
        fault.during_load = load_running()
        if name == 'redis':
            self.fault_windows.append(window)
            layout.stop('redis')
            time.sleep(20)
            layout.start_process('redis')
            layout.wait_healthy(['redis'], timeout=60)
        elif name in ('worker', 'ml'):
            run = self.kill_point(name)
            fault.note = f'(run {run["id"]} was training)' if run else '(no run was training)'
            fault.started = time.monotonic() - load_started
            target = 'worker-training' if name == 'worker' else 'ml-backend'
            window[0] = time.monotonic()  # the window opens at the kill, not while waiting for a training
            self.fault_windows.append(window)
            layout.kill(target, signal.SIGKILL)
            layout.procs[target].wait(20)
            if run and name == 'worker':  # the held poll died with the worker: nothing of it left to deliver
                self.lost_polls[run['id']] = not poll_in_redis(layout.ports['redis'], run['id'])[0]
            time.sleep(5 if name == 'worker' else 0)
            layout.stop(target)
            layout.start_process(target)
            layout.wait_healthy([target], timeout=120)
            if run:
                self.killed_runs[name] = run['id']
        elif name == 'postgres':
            self.fault_windows.append(window)
            layout.restart('postgres', timeout=60)
        window[1] = time.monotonic()
        fault.recovered = time.monotonic() - load_started
        recovered_wall = time.time()
        fault.converged = self.converge(recovered_wall)
        log(f'fault {name}: recovered at {fault.recovered:.0f} s, converged {_seconds(fault.converged)} later')
        self.figures.faults.append(fault)

    # -- the whole thing ----------------------------------------------------------------------------
    def run(self):
        self.killed_runs, self.lost_polls = {}, {}
        with ProdLayout(self.tmp_dir, web_workers=self.web_workers, celery_workers=2, env=RETRAINING_ENV) as layout:
            layout.commands['ml-backend'] += ' --option epochs=2'
            layout.restart('ml-backend', timeout=120)
            self.prepare(layout)
            annotators = [Annotator(self, token, i) for i, token in enumerate(self.tokens)]
            load_started = self.load_started = time.monotonic()
            for annotator in annotators:
                annotator.start()

            def load_running():
                return any(a.is_alive() for a in annotators)

            time.sleep(10)
            for name in self.fault_names:
                self.inject(name, load_running)
            for annotator in annotators:
                annotator.join(1800)
            log(f'load done in {time.monotonic() - load_started:.0f} s')
            self.figures.load_seconds = max(time.monotonic() - load_started, 0)
            self.figures.final_convergence = self.settle()
            self.collect(annotators)
            self.figures.killed_runs = {
                name: next((r for r in self.figures.runs if r['id'] == run_id), None)
                for name, run_id in self.killed_runs.items()
            }
            self.figures.lost_polls = self.lost_polls
        return self.figures

    def settle(self, timeout=600):
        """Seconds until no run is going or pending, the last one decided, and every unlabeled task has a
        prediction of the project's version (the last served one: a rejected run leaves it as it was)."""
        started = time.monotonic()
        while time.monotonic() - started < timeout:
            policy = self.api('GET', f'/api/projects/{self.project_id}/retraining/')
            runs = self.runs()
            idle = not policy['running'] and not policy['pending']
            if idle and runs and runs[0]['status'] in DECIDED:
                served = next((r['version_after'] for r in runs if r['status'] == 'succeeded'), None)
                version = self.api('GET', f'/api/projects/{self.project_id}')['model_version']
                if version == served and not self.unlabeled_without(version):
                    return time.monotonic() - started
            time.sleep(2)
        return None

    def export(self):
        """Every task with its annotations and predictions (Label Studio's own JSON export)."""
        return self.api('GET', f'/api/projects/{self.project_id}/export?exportType=JSON&download_all_tasks=true')

    def unlabeled_without(self, version):
        unlabeled = {t['id'] for t in self.export() if not t['annotations']}
        predictions = self.api('GET', f'/api/predictions?project={self.project_id}')
        predicted = {p['task'] for p in predictions if p['model_version'] == version}
        self.figures.unlabeled = len(unlabeled)
        self.figures.unlabeled_without_final_prediction = len(unlabeled - predicted)
        return sorted(unlabeled - predicted)

    def collect(self, annotators):
        figures = self.figures
        figures.submitted = sum(len(a.done) for a in annotators)
        annotations = []
        for task in self.export():
            annotations.extend((task['id'], a['completed_by']) for a in task['annotations'])
        figures.stored = len(annotations)
        figures.duplicates = len(annotations) - len(set(annotations))
        expected = {(task_id, self.user_ids[a.number]) for a in annotators for task_id in a.done}
        figures.missing = len(expected - set(annotations))
        figures.runs = list(reversed(self.runs()))
        intervals = sorted((_epoch(r['started_at']), _epoch(r['finished_at'] or r['started_at'])) for r in figures.runs)
        latest_end, figures.overlapping_runs = float('-inf'), 0
        for start, end in intervals:
            figures.overlapping_runs += start < latest_end
            latest_end = max(latest_end, end)
        policy = self.api('GET', f'/api/projects/{self.project_id}/retraining/')
        figures.changes_counted = sum(r['changes'] for r in figures.runs) + policy['changes_since_run']
        figures.final_version = self.api('GET', f'/api/projects/{self.project_id}')['model_version']
        self.unlabeled_without(figures.final_version)


def _epoch(stamp):
    from datetime import datetime

    return datetime.fromisoformat(stamp.replace('Z', '+00:00')).timestamp()
