"""In the real UI (headless Chromium, one Label Studio server for the module): the "Uncertainty" column
appears with values, sorts both ways, filters by range, and "Label most uncertain first" drives the stream."""

import json
import re
import time

import pytest
from playwright.sync_api import sync_playwright

from tests.browser.walk import WalkRecord, guard_context, launch, sign_up_and_log_in, visit
from tests.label_configs import IMAGE_BOXES
from tests.retraining.support import Worker
from tests.support.server import LabelStudioServer, migrated_database

pytestmark = pytest.mark.browser

# v2's lowest box score per task (None: only a v1 prediction) -> uncertainty 0.1, 0.7, 0.4, none, 0.9
LOWEST = [0.9, 0.3, 0.6, None, 0.1]


def box(score):
    value = {'x': 10, 'y': 10, 'width': 20, 'height': 20, 'rotation': 0, 'rectanglelabels': ['fish']}
    return {
        'from_name': 'label', 'to_name': 'image', 'type': 'rectanglelabels',
        'original_width': 640, 'original_height': 480, 'value': value, 'score': score,
    }  # fmt: skip


def tasks_payload():
    tasks = []
    for i, low in enumerate(LOWEST):
        predictions = [{'model_version': 'v1', 'score': 0.5, 'result': [box(0.2)]}]
        if low is not None:
            predictions.append({'model_version': 'v2', 'score': 0.5, 'result': [box(0.95), box(low)]})
        tasks.append({'data': {'image': f'/data/upload/1/fish{i}.png'}, 'predictions': predictions})
    return tasks


class UI:
    """The logged-in page, the project's id and its task ids (in import order)."""

    def __init__(self, server, page):
        self.server, self.page = server, page
        csrf = next(c['value'] for c in page.context.cookies() if c['name'] == 'csrftoken')
        self.headers = {'X-CSRFToken': csrf, 'Content-Type': 'application/json'}

    def api(self, method, path, body=None):
        response = self.page.request.fetch(
            self.server.url + path, method=method, headers=self.headers, data=json.dumps(body) if body else None
        )
        assert response.ok, (path, response.status, response.text()[:500])
        return response.json()

    def rows(self):
        """(task id, uncertainty text) of each table row, top to bottom ([] while the table re-renders)."""
        rows = self.page.eval_on_selector_all(
            '.lsf-table-row',
            'rows => rows.map(r => [...r.querySelectorAll(".lsf-table__cell")].map(c => c.innerText.trim()))',
        )
        out = []
        for cells in rows:
            ids = [c for c in cells if c.isdigit()]
            if not ids:
                return []
            out.append((int(ids[0]), next((c for c in cells if re.fullmatch(r'[01]\.\d{3}', c)), None)))
        return out

    def wait_rows(self, expected_ids, timeout=20):
        deadline = time.monotonic() + timeout
        while [i for i, _ in self.rows()] != expected_ids and time.monotonic() < deadline:
            self.page.wait_for_timeout(250)
        return self.rows()


@pytest.fixture(scope='module')
def ui(tmp_path_factory):
    template = migrated_database(tmp_path_factory)
    record = WalkRecord()
    server = LabelStudioServer(tmp_path_factory.mktemp('scoring-ui'), template)
    # the uncertainty jobs run on Celery, as with `make run`: a worker on the server's data dir and broker
    worker = Worker(server.data_dir, {'DJANGO_SETTINGS_MODULE': 'settings.offline'})
    with server, worker, sync_playwright() as pw:
        browser = launch(pw)
        context = browser.new_context(viewport={'width': 1600, 'height': 900})
        guard_context(context, record)
        page = context.new_page()
        sign_up_and_log_in(page, server.url, record, 'ranker@example.org')
        ui = UI(server, page)
        ui.project = ui.api('POST', '/api/projects', {'title': 'Fish', 'label_config': IMAGE_BOXES})['id']
        ui.api('POST', f'/api/projects/{ui.project}/import', tasks_payload())  # bulk: no signals
        visit(page, record, f'{server.url}/projects/{ui.project}/data', 1000)  # the load catches them up
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            report = ui.api('GET', f'/api/projects/{ui.project}/uncertainty/')
            if report['up_to_date'] and report['tasks']['ranked'] == 4 and report['job']['status'] == 'done':
                break
            page.wait_for_timeout(500)
        assert report['up_to_date'], (report, worker.log_tail())
        ui.report = report
        first = min(t['id'] for t in ui.api('GET', f'/api/tasks?project={ui.project}&page_size=10')['tasks'])
        ui.ids = [first + i for i in range(5)]
        page.reload(wait_until='domcontentloaded')
        page.wait_for_selector('.lsf-table-row', timeout=60_000)
        yield ui
        context.close()
        browser.close()
    assert record.external_requests == []


def test_column_appears_with_values_of_the_current_version(ui):
    assert (ui.report['active_version'], ui.report['tasks']['ranked']) == ('v2', 4), ui.report
    headers = ui.page.locator('.lsf-th-content').all_inner_texts()
    assert 'Uncertainty' in headers and 'Model version' in headers
    t = ui.ids
    assert ui.wait_rows(t) == [(t[0], '0.100'), (t[1], '0.700'), (t[2], '0.400'), (t[3], None), (t[4], '0.900')]
    assert ui.page.locator('.lsf-table-row', has_text='v2').count() == 4


def test_sorts_both_ways(ui):
    t = ui.ids
    ui.page.click('button:has-text("Order by")')
    with ui.page.expect_response(lambda r: '/api/tasks?' in r.url and 'ordering' in r.url):
        ui.page.click('.lsf-menu-dm__item:has-text("Uncertainty")')
    assert [i for i, _ in ui.wait_rows([t[0], t[2], t[1], t[4], t[3]])] == [t[0], t[2], t[1], t[4], t[3]]
    with ui.page.expect_response(lambda r: '/api/tasks?' in r.url and 'ordering' in r.url):
        ui.page.click('button[aria-label="Sort descending"]')
    assert ui.wait_rows([t[4], t[1], t[2], t[0], t[3]])[0] == (t[4], '0.900')
    view = ui.api('GET', f'/api/dm/views/?project={ui.project}')[0]
    assert view['data']['ordering'] == ['-tasks:uncertainty']


def test_filters_by_range(ui):
    t = ui.ids
    page = ui.page
    page.click('button:has-text("Filters")')
    page.click('text=Add Filter')
    page.click('.lsf-filterLine .lsf-field button')
    page.fill('[data-testid="select-search-field"]', 'Uncertainty')
    page.click('[data-testid="select-option-filter:tasks:uncertainty"]')
    page.click('.lsf-filterLine .lsf-operation button')
    page.click('[data-testid="select-option-greater"]')
    with page.expect_response(lambda r: '/api/tasks?' in r.url and 'interaction=filter' in r.url):
        page.fill('.lsf-filterLine .lsf-value input', '0.6')
    assert ui.wait_rows([t[4], t[1]]) == [(t[4], '0.900'), (t[1], '0.700')]
    assert page.locator('.lsf-table-row').count() == 2


def test_label_most_uncertain_first_from_the_actions_menu(ui):
    page, t = ui.page, ui.ids
    visit(page, WalkRecord(), f'{ui.server.url}/projects/{ui.project}/data', 1500)
    page.get_by_label('Select all rows').check(force=True)
    page.click('button:has-text("Tasks")')
    ui.api('PATCH', f'/api/projects/{ui.project}/uncertainty/', {'warmup_annotations': 0})  # rank at once
    page.click('text=Label most uncertain first')
    with page.expect_response(lambda r: 'id=label_most_uncertain_first' in r.url) as action:
        page.click('button:has-text("OK")')
    assert action.value.ok
    assert ui.api('GET', f'/api/projects/{ui.project}/uncertainty/')['stream'] is True
    page.get_by_label('Select all rows').uncheck(force=True)
    with page.expect_response(lambda r: 'id=next_task' in r.url) as served:
        page.click('button:has-text("Label All Tasks")')
    assert served.value.json()['id'] == t[4]  # the task the model is least sure about
