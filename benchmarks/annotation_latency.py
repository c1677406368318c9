"""Annotation submit latency through the API, with and without ls_extensions' retraining receivers.

Run: ``.venv/bin/python benchmarks/annotation_latency.py [--annotations 200] [--threshold 50]``.
Two ``label-studio start`` servers from one migrated database, in the same run: one with the retraining
app and an enabled policy (the counter update on every submit; a threshold crossing publishes a trigger
to the embedded SQLite broker), one without the app (``LS_EXT_RETRAINING_OFF=1``). Requests alternate
between the two so that load on the shared machine hits both alike. No worker runs: the cost measured is
what the request pays (counting, and the after-commit publish), never the training.
"""

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import requests  # noqa: E402

from tests.label_configs import IMAGE_BOXES  # noqa: E402
from tests.retraining.support import ENV, migrated_database, subprocess_modules  # noqa: E402
from tests.support.server import LabelStudioServer  # noqa: E402

TOKEN = ENV['LABEL_STUDIO_USER_TOKEN']
RESULT = [
    {
        'from_name': 'label',
        'to_name': 'image',
        'type': 'rectanglelabels',
        'original_width': 640,
        'original_height': 480,
        'value': {'x': 10, 'y': 10, 'width': 20, 'height': 20, 'rotation': 0, 'rectanglelabels': ['fish']},
    }
]


class Side:
    def __init__(self, name, server):
        self.name, self.server = name, server
        self.session = requests.Session()
        self.session.headers['Authorization'] = f'Token {TOKEN}'
        self.times = []

    def call(self, method, path, **kwargs):
        response = self.session.request(method, self.server.url + path, timeout=60, **kwargs)
        assert response.status_code in (200, 201), (path, response.status_code, response.text[:400])
        return response.json() if response.content else None

    def prepare(self, count, threshold):
        self.pid = self.call('POST', '/api/projects', json={'title': 'latency', 'label_config': IMAGE_BOXES})['id']
        self.call('POST', f'/api/projects/{self.pid}/import', json=[{'image': f'/img{i}.png'} for i in range(count)])
        tasks = self.call('GET', f'/api/tasks?project={self.pid}&page_size={count}')['tasks']
        self.task_ids = sorted(t['id'] for t in tasks)
        if threshold:
            self.call('PATCH', f'/api/projects/{self.pid}/retraining/', json={'enabled': True, 'threshold': threshold})

    def submit(self, i, record=True):
        started = time.perf_counter()
        self.call('POST', f'/api/tasks/{self.task_ids[i]}/annotations', json={'result': RESULT})
        if record:
            self.times.append((time.perf_counter() - started) * 1000)


def pct(values, q):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--annotations', type=int, default=200)
    parser.add_argument('--warmup', type=int, default=10)
    parser.add_argument('--threshold', type=int, default=50)
    args = parser.parse_args()
    total = args.annotations + args.warmup
    with tempfile.TemporaryDirectory(prefix='ls-ext-bench-') as tmp:
        tmp = Path(tmp)
        env = {**ENV, **subprocess_modules(tmp / 'modules')}
        print('migrating a template database ...', flush=True)
        template = migrated_database(tmp / 'template', env)
        with (
            LabelStudioServer(tmp / 'with', template, env=env) as with_server,
            LabelStudioServer(tmp / 'without', template, env={**env, 'LS_EXT_RETRAINING_OFF': '1'}) as bare,
        ):
            sides = [Side('with ls_extensions.retraining', with_server), Side('without (Label Studio only)', bare)]
            sides[0].prepare(total, args.threshold)
            sides[1].prepare(total, 0)
            for i in range(total):
                for side in sides if i % 2 else sides[::-1]:
                    side.submit(i, record=i >= args.warmup)
            published = sides[0].call('GET', f'/api/projects/{sides[0].pid}/retraining/')
    print(
        f'\nannotation submit, POST /api/tasks/<id>/annotations, {args.annotations} each (after {args.warmup} warm-up)'
    )
    print(f'policy threshold {args.threshold}; load average {os.getloadavg()[0]:.2f}\n')
    print(f'{"":32} {"p50 ms":>8} {"p90 ms":>8} {"p99 ms":>8} {"mean ms":>8}')
    rows = []
    for side in sides:
        row = [pct(side.times, 50), pct(side.times, 90), pct(side.times, 99), statistics.fmean(side.times)]
        rows.append(row)
        print(f'{side.name:32} ' + ' '.join(f'{v:8.1f}' for v in row))
    diff = [a - b for a, b in zip(*rows, strict=True)]
    print(f'{"difference":32} ' + ' '.join(f'{v:+8.1f}' for v in diff))
    print(f'\ncounter after the run: {published["changes_since_run"]} changes, pending={published["pending"]}')


if __name__ == '__main__':
    main()
