"""Every command in README.md runs as written, on data made the way ``make run`` makes it (issue 15, item 3).

The README's fenced blocks are parsed here; each command found is either run (in a shell, from the checkout,
with ``DATA_DIR`` naming a throw-away data dir, as ``DATA_DIR=... make run`` would) or skipped for a reason
listed in ``SKIPPED``. A command the README gains that is in neither table fails the test, so the list
cannot go stale. Paths that only exist on the README author's machine are replaced (``PLACEHOLDERS``).
"""

import os
import re
import shutil
import sqlite3
import subprocess

import numpy as np
import pytest
from PIL import Image

from tests.support.server import REPO, migrated_database

README = REPO / 'README.md'
COMMAND_START = re.compile(r'^(\.venv/bin/|make |export |([A-Z_]+=\S+ +)+\.venv/bin/)')

# commands that start a long-running process, need a terminal, or run the whole suite
SKIPPED = {
    'make run': 'starts the server (tests/browser and tests/support/server.py start the same settings)',
    'make test': 'the whole suite, this test included',
    '.venv/bin/label-studio start': 'starts the server (LabelStudioServer runs it in the tests)',
    '.venv/bin/python manage.py createsuperuser': 'asks for a password on a terminal',
    '.venv/bin/python manage.py runserver 8080': 'starts a server',
    '.venv/bin/python manage.py serve_ml_backend --config ls_extensions/ml_backend/configs/tiny_rtmdet.py '
    '--port 9090': 'starts the model server (tests/ml_backend/test_live.py); its --help is run instead',
    '.venv/bin/python manage.py serve_ml_backend --config '
    '.venv/lib/python3.11/site-packages/mmdet/.mim/configs/faster_rcnn/faster-rcnn_r50_fpn_1x_coco.py '
    '--checkpoint faster_rcnn.pth --device cpu --port 9090 --score-threshold 0.5': (
        'starts a model server and needs a checkpoint that is not shipped'
    ),
    'DJANGO_SETTINGS_MODULE=settings.offline CELERY_BROKER_URL=... LABEL_STUDIO_HOST=http://<web>:8080 '
    '.venv/bin/celery -A ls_extensions worker --concurrency 1 -l info': (
        'a worker (long-running) with placeholders for another machine (tests/retraining/test_worker.py)'
    ),
}
RUN = [
    'export DJANGO_SETTINGS_MODULE=settings.offline',
    '.venv/bin/python manage.py migrate',
    '.venv/bin/python manage.py shell',
    ".venv/bin/python manage.py frames_to_video /datasets/deepfish --out ./videos --fps 25 --pattern '*.jpg'",
    '.venv/bin/python manage.py frames_to_video /datasets/deepfish --out ./videos --fps 25 --project 3 '
    '--labels fish,crab',
    '.venv/bin/python manage.py prepare_videos ~/camera-videos clip.MOV --out ./videos --project 3',
    'export LS_EXT_ALLOWED_HOSTS="minio.lab:9000, *.storage.lab, 10.20.0.0/16, http://gpu-box:9090"',
    'export LS_EXT_ML_BACKEND_URLS="http://127.0.0.1:9090 http://localhost:9090"',
    '.venv/bin/python benchmarks/active_learning.py --report benchmarks/results/active_learning_2026-12-04_*.txt',
    '.venv/bin/python benchmarks/active_learning.py --quick --report '
    'benchmarks/results/active_learning_warmup_quick_shared_2026-12-06.txt',
    '.venv/bin/python benchmarks/active_learning.py --report benchmarks/results/active_learning_shared_2026-12-06.txt',
]
# what a --report command prints of the README's table under it
REPORTED = {
    'active_learning_2026-12-04_*.txt': ['mean ± std over 3 seeds', 'margin           48  <0.75'],
    'active_learning_shared_2026-12-06.txt': ['mean ± std over 3 seeds', '    margin 0.475±0.125 0.470±0.123'],
    'active_learning_warmup_quick_shared_2026-12-06.txt': [
        'mean ± std over 5 seeds',
        'diverse warm-up 24           32  <0.80',
        '8: 40.0  16: 40.0  24: 36.0  32: 44.0  -> 24',
    ],
}
EXTRA = ['.venv/bin/python manage.py serve_ml_backend --help']  # for the skipped model server commands


def readme_commands(text):
    """Shell commands of the README's fenced blocks: continuations joined, comments dropped."""
    commands = []
    for block in re.findall(r'^```[a-z]*\n(.*?)^```', text, flags=re.S | re.M):
        joined = re.sub(r'\\\n\s*', ' ', block)
        for line in joined.splitlines():
            line = re.sub(r'\s+#\s.*$', '', line).strip()
            if COMMAND_START.match(line):
                commands.append(re.sub(r'\s+', ' ', line))
    return commands


@pytest.fixture(scope='module')
def workspace(tmp_path_factory):
    """A data dir as ``make run`` leaves it (migrated), the README's example inputs, a project with id 3."""
    root = tmp_path_factory.mktemp('readme')
    data = root / 'data'
    data.mkdir()
    shutil.copy(migrated_database(tmp_path_factory), data / 'label_studio.sqlite3')
    frames = root / 'deepfish' / 'site' / 'cam1'
    frames.mkdir(parents=True)
    for i in range(4):
        Image.fromarray(np.full((32, 48, 3), 40 * i, np.uint8)).save(frames / f'{i:03d}.jpg')
    return root


def substituted(command, root):
    """The README's example paths are the reader's; ``./videos`` becomes a throw-away dir, project 3 stays 3."""
    placeholders = {
        # the camera files: a video frames_to_video made above; prepared into a folder of their own
        '~/camera-videos clip.MOV --out ./videos': f'{root}/videos/site__cam1.mp4 --out {root}/prepared',
        '/datasets/deepfish': str(root / 'deepfish'),
        './videos': str(root / 'videos'),
    }
    for old, new in placeholders.items():
        command = command.replace(old, new)
    return command


SHELL_INPUT = """
from organizations.models import Organization
from projects.models import Project
from users.models import User
user = User.objects.filter(email='readme@example.org').first()
if user is None:
    user = User.objects.create_user(email='readme@example.org', password='readme-pass-123')
    user.active_organization = Organization.create_organization(created_by=user, title='readme')
    user.save(update_fields=['active_organization'])
while not Project.objects.filter(id=3).exists():  # the README's examples use project 3
    Project.objects.create(title='readme project', created_by=user, organization=user.active_organization)
from django.conf import settings
print('DATABASE', settings.DATABASES['default']['NAME'])
"""


def run(command, root):
    env = {k: v for k, v in os.environ.items() if not k.startswith(('LABEL_STUDIO_', 'DJANGO_', 'SECRET_KEY'))}
    env['DATA_DIR'] = str(root / 'data')  # as in DATA_DIR=... make run
    return subprocess.run(
        ['bash', '-euo', 'pipefail', '-c', substituted(command, root)],
        cwd=REPO,
        env=env,
        input=SHELL_INPUT if command.endswith('manage.py shell') else '',
        capture_output=True,
        text=True,
        timeout=600,
    )


def test_every_readme_command_is_run_or_skipped_for_a_reason():
    commands = readme_commands(README.read_text())
    unlisted = [c for c in commands if c not in SKIPPED and c not in RUN]
    assert not unlisted, f'README commands this test neither runs nor skips: {unlisted}'
    assert set(RUN) <= set(commands), sorted(set(RUN) - set(commands))  # the README still says what we run


@pytest.mark.parametrize('command', RUN + EXTRA)
def test_the_readme_command_works_as_written(workspace, command):
    result = run(command, workspace)
    assert result.returncode == 0, (result.stdout[-3000:], result.stderr[-3000:])
    output = result.stdout + result.stderr
    if 'manage.py' in command:
        assert f'=> Database and media directory: {workspace / "data"}' in output, output[-2000:]
        assert '.local/share/label-studio' not in output
        assert 'no such table' not in output
    if '--report' in command:  # the README's table, from the saved lines
        (expected,) = [lines for saved, lines in REPORTED.items() if command.endswith(saved)]
        assert all(line in output for line in expected), output[-2000:]
    if command.endswith('manage.py shell'):
        assert f'DATABASE {workspace / "data" / "label_studio.sqlite3"}' in output
    if '--project 3' in command:  # the videos became tasks of project 3 in make run's database
        db = sqlite3.connect(workspace / 'data' / 'label_studio.sqlite3')
        try:
            (count,) = db.execute('SELECT COUNT(*) FROM task WHERE project_id = 3').fetchone()
        finally:
            db.close()
        assert count >= 1, output[-2000:]
