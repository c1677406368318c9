"""The production layout under load and faults: prints the table the production issue asks for.

Run: ``.venv/bin/python benchmarks/production_report.py [--annotators 50] [--each 20] [--threshold 100]
[--faults redis,worker,ml,postgres]`` (about 10 minutes on 2 cores). Starts the whole layout on loopback
(PostgreSQL, Redis, gunicorn with 4 workers, 2 Celery workers + beat, the tiny-model ML backend), lets the
annotators pull next tasks and submit while the faults are injected one after another, then prints:
annotations submitted/stored, 5xx, training runs, and the convergence seconds of each fault.
See tests/support/load_scenario.py for the exact definitions.
"""

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.support.load_scenario import Scenario  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--annotators', type=int, default=50)
    parser.add_argument('--each', type=int, default=20)
    parser.add_argument('--threshold', type=int, default=100)
    parser.add_argument('--think-seconds', type=float, default=6.0)
    parser.add_argument('--faults', default='redis,worker,ml,postgres', help="comma-separated, or '' for none")
    args, _ = parser.parse_known_args()
    faults = tuple(f for f in args.faults.split(',') if f)
    with tempfile.TemporaryDirectory(prefix='ls-ext-prod-report-') as tmp:
        figures = Scenario(
            Path(tmp), args.annotators, args.each, args.threshold, think_seconds=args.think_seconds, faults=faults
        ).run()
    print(figures.table())
    for line in figures.errors[:20]:
        print('client error:', line)


if __name__ == '__main__':
    main()
