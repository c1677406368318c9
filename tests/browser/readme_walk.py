"""A newcomer's first hour, as the README tells it, timed step by step.

``make run`` on an empty data dir, the README's model server command (the tiny RTMDet, untrained), and
what a newcomer clicks in headless Chromium: sign up; create an image project, uploading the images and
naming the labels after the model's classes in the template's label editor; Settings -> Model ->
"Connect Model"; select all, "Retrieve Predictions"; the Data Manager's "Retraining" button, policy on
with a threshold of 3; "Label All Tasks" and three boxes drawn and submitted; the run on the retraining
page; the re-predicted tasks' new model version and uncertainty in the Data Manager.

Two things differ from a person's terminal, both only to share the machine with other tests: the ports
are free ones instead of 8080 and 9090 (``PORT`` for ``make run``, ``--port`` for the model server and
``LS_EXT_ML_BACKEND_URLS`` naming it, as the README says to list another backend), and ``make`` is told
the venv is installed (``-o .venv/.installed``) so that a checkout's newer ``pyproject.toml`` never
reinstalls mid-test.

Used by ``tests/browser/test_readme_walk.py`` (what must hold) and ``benchmarks/first_hour.py`` (the
times, as a table).
"""

import re
import time
from dataclasses import dataclass, field
from pathlib import Path

from ls_extensions.ml_backend import synthetic
from tests.browser.walk import WalkRecord, guard_context, launch, sign_up_and_log_in, visit
from tests.support.api import png_bytes
from tests.support.process import ManagedProcess, answers_200, wait_for
from tests.support.server import BIN, REPO, free_port, no_database_env

IMAGES = 12
ANNOTATED = 3  # the policy's threshold: the third submit starts a training run
IMAGE_SIZE = 128  # tiny_rtmdet.py's input size
SEED = 15
EMAIL = 'newcomer@example.org'
TINY_CONFIG = 'ls_extensions/ml_backend/configs/tiny_rtmdet.py'
# the environment a newcomer's shell has: none of the test suite's settings, data dir or database choice
NOT_INHERITED = ('LABEL_STUDIO_', 'DJANGO_', 'LS_EXT_', 'SECRET_KEY', 'CELERY_', 'DATA_DIR', 'PORT')

READ_GRID = """() => {
  const text = cell => cell.innerText.trim();
  const head = [...document.querySelectorAll('.lsf-table-head .lsf-table__cell')].map(text);
  return [...document.querySelectorAll('[data-testid=table-row]')].map(row => {
    const cells = [...row.querySelectorAll('.lsf-table__cell')].map(text);
    return Object.fromEntries(head.map((name, i) => [name, cells[i]]).filter(([name]) => name));
  });
}"""


def newcomer_env(**extra):
    env = {k: v for k, v in no_database_env().items() if not k.startswith(NOT_INHERITED)}
    return {**env, 'PYTHONUNBUFFERED': '1', **extra}


class MakeRun(ManagedProcess):
    """``make run`` (scripts/run.sh: Label Studio and one Celery worker) on ``data_dir``."""

    def __init__(self, data_dir, model_url):
        self.data_dir = Path(data_dir)
        self.port = free_port()
        self.url = f'http://127.0.0.1:{self.port}'
        self.log_path = self.data_dir.parent / 'make-run.log'
        self.env = newcomer_env(DATA_DIR=str(self.data_dir), PORT=str(self.port), LS_EXT_ML_BACKEND_URLS=model_url)

    def start(self, timeout=600):
        self.spawn(['make', '-o', '.venv/.installed', 'run'], self.env, REPO)
        return self.wait_ready(lambda: answers_200(self.url + '/health', 5), timeout, 1, 'make run')


class ReadmeModelServer(ManagedProcess):
    """The README's ``manage.py serve_ml_backend --config .../tiny_rtmdet.py --port N`` beside ``make run``."""

    def __init__(self, workdir, data_dir, ls_port, port):
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.port = port
        self.url = f'http://127.0.0.1:{port}'
        self.log_path = self.workdir / 'model-server.log'
        # a second terminal in the checkout: make run's port and data dir are the only things it shares
        self.env = newcomer_env(PORT=str(ls_port), DATA_DIR=str(data_dir))
        self.args = [str(BIN / 'python'), 'manage.py', 'serve_ml_backend', '--config', TINY_CONFIG, '--port', str(port)]

    def start(self, timeout=300):
        self.spawn(self.args, self.env, REPO)
        return self.wait_ready(lambda: answers_200(self.url + '/health', 2), timeout, 0.5, 'model server')


@dataclass
class FirstHour:
    record: WalkRecord = field(default_factory=WalkRecord)
    marks: dict = field(default_factory=dict)  # step -> seconds since `make run` was started
    console: list = field(default_factory=list)  # (type, text, url) of every console error and page error
    base: str = ''
    project_id: int = 0
    grid_after_predictions: list = field(default_factory=list)
    grid_after_training: list = field(default_factory=list)
    runs: list = field(default_factory=list)
    backend: dict = field(default_factory=dict)
    run_text: str = ''
    errors_before_missing_image: int = 0
    missing_task: int = 0
    missing_image_status: int = 0
    missing_image_toast: str = ''
    logs: dict = field(default_factory=dict)


def write_images(folder):
    folder.mkdir(parents=True, exist_ok=True)
    boxes = {}
    for i, (image, image_boxes) in enumerate(synthetic.dataset(IMAGES, seed=SEED, size=IMAGE_SIZE)):
        path = folder / f'fish{i:02d}.png'
        path.write_bytes(png_bytes(image))
        boxes[path.name] = image_boxes
    return boxes


def api_get(page, base, path):
    response = page.request.get(base + path)
    assert response.ok, (path, response.status, response.text()[:300])
    return response.json()


def create_image_project(page, base, record, images):
    """Create Project: name, the images uploaded, the bounding-box template with the labels renamed."""
    visit(page, record, base + '/projects/', 1500)
    with page.expect_response(lambda r: r.url.endswith('/api/projects') and r.request.method == 'POST'):
        page.locator('button', has_text='Create').first.click()
    page.fill('#project_name', 'Fish')
    page.click('text=Data Import')
    page.set_input_files('input[type=file]', [str(path) for path in images])
    page.wait_for_selector(f'text={images[-1].name}', timeout=120_000)
    page.click('text=Labeling Setup')
    page.click('text=Object Detection with Bounding Boxes')
    page.wait_for_selector('.lsf-configure__label', timeout=30_000)
    # the model's classes (tiny_rtmdet.py): the template's Airplane and Car would match none of them
    page.fill('.lsf-configure textarea', '\n'.join(synthetic.CLASSES))
    page.click('button:has-text("Add")')
    for stock_label in ('Airplane', 'Car'):
        label = page.locator('.lsf-configure__label', has_text=stock_label)
        label.hover()
        label.locator('button[aria-label="delete label"]').click()
    page.click('button:has-text("Save")')
    page.wait_for_url('**/projects/*/data**', timeout=60_000)
    return int(page.url.split('/projects/')[1].split('/')[0])


def connect_model(page, base, record, project_id, model_url):
    visit(page, record, f'{base}/projects/{project_id}/settings/ml', 1500)
    page.click('button:has-text("Connect Model")')
    page.fill('input[name=title]', 'tiny RTMDet')
    page.fill('input[name=url]', model_url)
    with page.expect_response(lambda r: r.url.endswith('/api/ml') and r.request.method == 'POST') as created:
        page.click('button:has-text("Validate and Save")')
    assert created.value.status == 201, created.value.text()[:500]
    page.wait_for_selector('text=Connected', timeout=60_000)


def run_action(page, title):
    """Select every task in the Data Manager and run an action (confirming its dialog); its answer."""
    page.locator('[data-testid=table-row]').first.wait_for(timeout=60_000)
    page.locator('input[type=checkbox]').first.check()  # the header's "select all"
    page.click('button:has-text("Tasks")')  # the Actions menu, named after the selection ("12 Tasks")
    page.click(f'text={title}')
    with page.expect_response(lambda r: '/api/dm/actions' in r.url and r.request.method == 'POST') as answer:
        page.click('button:has-text("OK")')
    return answer.value


def read_grid(page):
    return page.evaluate(READ_GRID)


def grid_until(page, check, timeout, what):
    """Reload the Data Manager until its grid passes ``check`` (the user pressing the refresh button)."""

    def ready():
        page.reload(wait_until='domcontentloaded')
        page.locator('[data-testid=table-row]').first.wait_for(timeout=60_000)
        page.wait_for_timeout(500)
        grid = read_grid(page)
        return grid if check(grid) else None

    return wait_for(ready, timeout, 2, what, lambda: str(read_grid(page))[:2000])


def draw_and_submit(page, base, boxes_by_name):
    """In the labeling view: draw the image's true boxes with their labels and submit; the task id."""
    page.wait_for_selector('button:has-text("Submit")', timeout=60_000)
    image = page.locator('img[src^="blob:"]').first
    image.wait_for(timeout=60_000)
    task_id = int(page.evaluate("document.querySelector('.lsf-current-task__task-id').firstChild.textContent"))
    name = re.search(r'(fish\d+\.png)$', api_get(page, base, f'/api/tasks/{task_id}')['data']['image']).group(1)
    bounds = image.bounding_box()
    scale = bounds['width'] / IMAGE_SIZE
    for x, y, w, h, k in boxes_by_name[name]:
        page.locator('.lsf-label', has_text=synthetic.CLASSES[k]).first.click()
        page.mouse.move(bounds['x'] + x * scale, bounds['y'] + y * scale)
        page.mouse.down()
        page.mouse.move(bounds['x'] + (x + w) * scale, bounds['y'] + (y + h) * scale, steps=5)
        page.mouse.up()
    with page.expect_response(lambda r: '/annotations' in r.url and r.request.method == 'POST') as saved:
        page.click('button:has-text("Submit")')
    assert saved.value.status == 201, saved.value.text()[:300]
    return task_id


def walk(playwright, workdir):
    """The whole first hour; returns what was seen. Processes and browser are closed on the way out."""
    workdir = Path(workdir)
    hour = FirstHour()
    boxes = write_images(workdir / 'images')
    images = sorted((workdir / 'images').iterdir())
    data_dir = workdir / 'data'  # empty: make run creates and migrates it
    model_port = free_port()
    model_url = f'http://127.0.0.1:{model_port}'
    started = time.monotonic()

    def mark(step):
        hour.marks[step] = round(time.monotonic() - started, 1)

    make_run = MakeRun(data_dir, model_url)
    model = ReadmeModelServer(workdir / 'model-server', data_dir, make_run.port, model_port)
    browser = None
    try:
        make_run.start()
        mark('make run answers')
        model.start()
        mark('model server answers')
        base = hour.base = make_run.url
        browser = launch(playwright)
        context = browser.new_context(viewport={'width': 1400, 'height': 900})
        guard_context(context, hour.record)
        page = context.new_page()

        def console(kind, text, url):
            hour.console.append((kind, text, url))

        page.on('console', lambda m: m.type == 'error' and console(m.type, m.text, (m.location or {}).get('url', '')))
        page.on('pageerror', lambda error: console('pageerror', str(error), page.url))

        sign_up_and_log_in(page, base, hour.record, EMAIL)
        mark('signed up')
        pid = hour.project_id = create_image_project(page, base, hour.record, images)
        mark('project created, images imported')
        connect_model(page, base, hour.record, pid, model_url)
        hour.backend = api_get(page, base, f'/api/ml?project={pid}')[0]
        mark('model connected')

        visit(page, hour.record, f'{base}/projects/{pid}/data', 1000)
        answer = run_action(page, 'Retrieve Predictions')
        assert answer.status == 200, answer.text()[:1000]
        version = hour.backend['model_version']
        hour.grid_after_predictions = grid_until(
            page,
            lambda grid: len(grid) == IMAGES and all(row.get('Model version') == version for row in grid),
            120,
            'every task showing the served model version',
        )
        mark('first predictions shown')

        page.click('#ls-ext-retraining-dm')  # "Retraining" beside "Settings" in the Data Manager's bar
        page.wait_for_url(f'**/projects/{pid}/retraining/')
        page.wait_for_load_state('networkidle')
        page.check('#id_enabled')
        page.fill('#id_threshold', str(ANNOTATED))
        page.click('#save-policy')
        page.wait_for_url('**/retraining/?done=saved')
        mark('retraining switched on')

        visit(page, hour.record, f'{base}/projects/{pid}/data', 1000)
        page.click('button:has-text("Label All Tasks")')
        labelled = []
        for _ in range(ANNOTATED):
            labelled.append(draw_and_submit(page, base, boxes))
        mark(f'{ANNOTATED} tasks labelled')

        def trained():
            runs = api_get(page, base, f'/api/projects/{pid}/retraining/runs/')
            training = [run for run in runs if not (run.get('metrics') or {}).get('predict_only')]
            done = [run for run in training if run['status'] == 'succeeded']
            failed = [run for run in runs if run['status'] == 'failed']
            assert not failed, failed
            return runs if done else None

        hour.runs = wait_for(trained, 600, 2, 'the training run to succeed', model.log_tail)
        mark('training run succeeded')

        visit(page, hour.record, f'{base}/projects/{pid}/retraining/', 500)
        page.wait_for_selector('.ls-ext-retraining #runs')
        hour.run_text = page.locator('#runs tbody tr').first.inner_text()

        new_version = next(
            run['version_after'] for run in hour.runs if run['status'] == 'succeeded' and run.get('version_after')
        )
        unlabelled = IMAGES - ANNOTATED
        visit(page, hour.record, f'{base}/projects/{pid}/data', 500)
        hour.grid_after_training = grid_until(
            page,
            lambda grid: sum(row.get('Model version') == new_version for row in grid) >= unlabelled,
            180,
            f'the {unlabelled} unlabelled tasks showing model version {new_version}',
        )
        mark('new model version and uncertainty shown')

        # last, apart from the rest (its answer is the one console error this walk expects): an image gone
        # from the uploads, and "Retrieve Predictions" says which task got no prediction, and why
        hour.errors_before_missing_image = len(hour.console)
        hour.missing_task = labelled[0]  # the labelled tasks have no prediction of the new version yet
        upload = api_get(page, base, f'/api/tasks/{hour.missing_task}')['data']['image'].removeprefix('/data/')
        (data_dir / 'media' / upload).unlink()
        visit(page, hour.record, f'{base}/projects/{pid}/data', 500)
        hour.missing_image_status = run_action(page, 'Retrieve Predictions').status
        toast = page.locator('text=/tasks have a prediction of the served model/').first
        toast.wait_for(timeout=30_000)
        hour.missing_image_toast = toast.inner_text()
    finally:
        if browser is not None:
            browser.close()
        model.stop()
        make_run.stop()
        hour.logs = {'make run': make_run.log_tail(200), 'model server': model.log_tail(200)}
    return hour
