"""A newcomer's first hour, timed: from ``make run`` on an empty data dir to a trained model.

Run: ``.venv/bin/python benchmarks/first_hour.py``. The README's steps in headless Chromium
(``tests/browser/readme_walk.py``: sign up, import 12 images, connect the README's model server,
retrieve predictions, retraining on at 3 annotations, 3 images labelled) and the seconds since
``make run`` started at which each step was done, the browser's own pace included.

There is no Label Studio baseline in this table: stock Label Studio 1.23.2 stores no prediction on this
path without a manual step (legacy API tokens off for new organizations, the model server's image
reads refused), which is what issue 15 was about.
"""

import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from playwright.sync_api import sync_playwright  # noqa: E402

from tests.browser import readme_walk  # noqa: E402


def main():
    with tempfile.TemporaryDirectory(prefix='first-hour-') as workdir, sync_playwright() as playwright:
        hour = readme_walk.walk(playwright, workdir)
    print(f'{"step":<45} {"s since make run":>17} {"step took":>10}')
    previous = 0.0
    for step, seconds in hour.marks.items():
        print(f'{step:<45} {seconds:>17.1f} {seconds - previous:>10.1f}')
        previous = seconds
    print(f'console errors before the deleted-image step: {hour.errors_before_missing_image}')


if __name__ == '__main__':
    main()
