"""Annotation submit latency through the API, with and without ls_extensions installed.

Run: ``.venv/bin/python benchmarks/annotation_latency.py [--annotations 300] [--threshold 50]``.
Three ``label-studio start`` servers from one migrated database, in the same run:
  - stock Label Studio 1.23.2 (its own settings; our egress guard only refuses its call-home attempts),
  - ls_extensions with the project's retraining policy off (our apps, middleware and receivers),
  - ls_extensions with the policy on (the counter UPDATE on every submit; each threshold crossing
    publishes a trigger to the embedded SQLite broker from a background thread).
Requests rotate between the servers so that load on the shared machine hits all alike. No worker runs:
the cost measured is what the annotator's request pays, never the training.
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
from tests.retraining.support import ENV  # noqa: E402
from tests.support.server import LabelStudioServer, migrated_database_in  # noqa: E402

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
    parser.add_argument('--annotations', type=int, default=300)
    parser.add_argument('--warmup', type=int, default=20)
    parser.add_argument('--threshold', type=int, default=50)
    args = parser.parse_args()
    total = args.annotations + args.warmup
    with tempfile.TemporaryDirectory(prefix='ls-ext-bench-') as tmp:
        tmp = Path(tmp)
        print('migrating a template database ...', flush=True)
        template = migrated_database_in(tmp / 'template')
        with (
            LabelStudioServer(tmp / 'stock', template, stock=True, env=ENV) as stock,
            LabelStudioServer(tmp / 'off', template, env=ENV) as off,
            LabelStudioServer(tmp / 'on', template, env=ENV) as on,
        ):
            sides = [
                Side('Label Studio 1.23.2 (stock)', stock),
                Side('ls_extensions, policy off', off),
                Side('ls_extensions, policy on', on),
            ]
            thresholds = [0, 0, args.threshold]
            for side, threshold in zip(sides, thresholds, strict=True):
                side.prepare(total, threshold)
            for i in range(total):
                for side in sides[i % 3 :] + sides[: i % 3]:
                    side.submit(i, record=i >= args.warmup)
            counter = sides[2].call('GET', f'/api/projects/{sides[2].pid}/retraining/')
    print(
        f'\nannotation submit, POST /api/tasks/<id>/annotations, {args.annotations} each '
        f'(after {args.warmup} warm-up), requests rotated between the servers'
    )
    print(f'policy threshold {args.threshold}; load average {os.getloadavg()[0]:.2f}\n')
    print(f'{"":30} {"p50 ms":>8} {"p90 ms":>8} {"p99 ms":>8} {"mean ms":>8} {"p99 vs stock":>13}')
    rows = [[pct(s.times, 50), pct(s.times, 90), pct(s.times, 99), statistics.fmean(s.times)] for s in sides]
    for side, row in zip(sides, rows, strict=True):
        added = row[2] - rows[0][2]
        print(f'{side.name:30} ' + ' '.join(f'{v:8.1f}' for v in row) + f' {added:+10.1f} ms')
    receiver = [a - b for a, b in zip(rows[2], rows[1], strict=True)]
    print(f'{"policy on minus off":30} ' + ' '.join(f'{v:+8.1f}' for v in receiver))
    print(
        f'\ncounter after the run: {counter["changes_since_run"]} changes since the last trigger, '
        f'pending={counter["pending"]} (no worker runs: the first crossing published once and stays pending)'
    )


if __name__ == '__main__':
    main()
