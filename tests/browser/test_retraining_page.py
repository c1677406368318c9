"""The project's retraining page in a real browser against a real server (our enforced CSP included).

A user signs up, makes a project (API call from the logged-in page, as the UI makes it), opens
/projects/<id>/retraining/, changes the threshold and saves (the API then reports it), presses
"Retrain now" and sees the state turn pending. The page must raise no CSP violation.

And the way a user gets there: from the Data Manager's "Retraining" button and from the "Retraining"
entry of the project's settings sidebar (the template seam, ls_extensions/ui), onto the page inside
Label Studio's header, where a finished run reads as values (loss, mAP before -> after, images,
seconds) with the model server's own message.
"""

import subprocess

import pytest
from playwright.sync_api import sync_playwright

from tests.browser.walk import WalkRecord, guard_context, launch, sign_up_and_log_in
from tests.label_configs import IMAGE_BOXES
from tests.support.server import BIN, REPO, LabelStudioServer

pytestmark = pytest.mark.browser


def api(page, method, url, **kwargs):
    csrf = next(c['value'] for c in page.context.cookies() if c['name'] == 'csrftoken')
    response = page.request.fetch(url, method=method, headers={'X-CSRFToken': csrf, 'Referer': url}, **kwargs)
    assert response.ok, (url, response.status, response.text()[:500])
    return response.json()


# the page reports every violation event too, not only what Chromium itself logs
REPORT_VIOLATIONS = (
    "document.addEventListener('securitypolicyviolation', e => console.error("
    "'Content Security Policy violation: ' + e.violatedDirective + ' ' + e.blockedURI));"
)


CONTROL = 'http://203.0.113.9/control.png'


def is_csp_violation(text):
    text = text.lower()
    return 'content security policy' in text or 'content-security-policy' in text


def test_policy_form_and_retrain_now(tmp_path, template_db):
    record = WalkRecord()
    console = []
    with LabelStudioServer(tmp_path / 'data', template_db) as server, sync_playwright() as pw:
        browser = launch(pw)
        context = browser.new_context(viewport={'width': 1400, 'height': 900})
        guard_context(context, record)
        context.add_init_script(REPORT_VIOLATIONS)
        page = context.new_page()
        try:
            sign_up_and_log_in(page, server.url, record, 'retrainer@example.org')
            project = api(
                page, 'POST', f'{server.url}/api/projects', data={'title': 'Fish', 'label_config': IMAGE_BOXES}
            )
            pid = project['id']
            url = f'{server.url}/projects/{pid}/retraining/'

            page.on('console', lambda message: console.append((message.type, message.text)))
            page.on('pageerror', lambda error: console.append(('pageerror', str(error))))
            response = page.goto(
                url, wait_until='networkidle'
            )  # Label Studio's app has rendered the page: no re-render resets the form
            assert response.status == 200
            assert page.locator('.ls-ext-retraining h1').inner_text() == 'Retraining — Fish'
            assert page.locator('.lsf-menu-header').is_visible()  # Label Studio's own header around it
            csp = response.headers.get('content-security-policy', '')
            assert "default-src 'self'" in csp  # the enforced policy is the one this page ran under
            assert page.locator('#no-runs').is_visible()

            page.fill('#id_threshold', '9')
            page.check('#id_enabled')
            page.click('#save-policy')
            page.wait_for_url('**/retraining/?done=saved')
            page.wait_for_load_state('networkidle')
            assert page.get_by_text('Policy saved.').is_visible()
            assert page.input_value('#id_threshold') == '9'
            policy = api(page, 'GET', f'{server.url}/api/projects/{pid}/retraining/')
            assert policy['threshold'] == 9 and policy['enabled'] is True and policy['pending'] is False
            assert page.locator('#changes').inner_text() == '0 / 9'

            page.fill('#id_threshold', '0')
            page.click('#save-policy')
            page.wait_for_selector('text=The policy was not saved')  # a 400: the one console error expected
            assert 'greater than or equal to 1' in page.locator('#policy').inner_text()
            assert api(page, 'GET', f'{server.url}/api/projects/{pid}/retraining/')['threshold'] == 9

            # control: a violation on this page would be seen (an image from elsewhere is refused);
            # made before "Retrain now", while the page does not reload itself
            page.evaluate(f"() => {{ const i = new Image(); i.src = '{CONTROL}'; document.body.append(i); }}")
            for _ in range(100):  # up to 10 s; console events arrive while Playwright waits on the page
                if any(is_csp_violation(text) and CONTROL in text for _, text in console):
                    break
                page.wait_for_timeout(100)
            assert any(is_csp_violation(text) and CONTROL in text for _, text in console), console

            page.goto(
                url, wait_until='networkidle'
            )  # Label Studio's app has rendered the page: no re-render resets the form
            page.click('#retrain-now')
            page.wait_for_url('**/retraining/?done=*')
            assert page.locator('#pending').inner_text() == 'yes'
            assert 'location.reload()' in page.content()  # reloads itself while pending
            assert api(page, 'GET', f'{server.url}/api/projects/{pid}/retraining/')['pending'] is True
        except Exception:
            page.screenshot(path=str(tmp_path / 'retraining-page-failure.png'))
            raise
        finally:
            context.close()
            browser.close()
    page_console = [entry for entry in console if CONTROL not in entry[1]]
    violations = [text for _, text in page_console if is_csp_violation(text)]
    assert violations == [], violations
    errors = [entry for entry in page_console if entry[0] in ('error', 'pageerror')]
    assert errors == [('error', 'Failed to load resource: the server responded with a status of 400 (Bad Request)')]
    assert record.external_requests == []


# a finished run of the project, as the retraining loop records it (the loop itself: tests/retraining/test_worker.py)
RECORD_RUN = """
from django.utils import timezone
from ls_extensions.retraining.models import TrainingRun
now = timezone.now()
TrainingRun.objects.create(project_id={pid}, trigger='threshold', status='succeeded', annotations_used=6,
    version_before='torch.v0', version_after='torch.v1', started_at=now, finished_at=now,
    metrics={{'loss': 0.4321, 'map_before': 0.05, 'map_after': 0.61, 'train_images': 6, 'epochs': 25,
             'seconds_per_epoch': 0.08, 'training_seconds': 3.5, 'run_seconds': 5.25,
             'progress': {{'epoch': 24, 'epochs': 25, 'loss': 0.5}},
             'backend_message': 'trained on 6 images; mAP needs at least 10 annotated images'}})
"""


def test_from_the_data_manager_and_the_settings_menu_to_the_runs(tmp_path, template_db):
    record = WalkRecord()
    console = []
    with LabelStudioServer(tmp_path / 'data', template_db) as server, sync_playwright() as pw:
        browser = launch(pw)
        context = browser.new_context(viewport={'width': 1400, 'height': 900})
        guard_context(context, record)
        page = context.new_page()
        page.on('console', lambda m: console.append((m.type, m.text, (m.location or {}).get('url', ''))))
        page.on('pageerror', lambda error: console.append(('pageerror', str(error), '')))
        try:
            sign_up_and_log_in(page, server.url, record, 'clicker@example.org')
            pid = api(page, 'POST', f'{server.url}/api/projects', data={'title': 'Fish', 'label_config': IMAGE_BOXES})[
                'id'
            ]
            subprocess.run(
                [str(BIN / 'python'), str(REPO / 'manage.py'), 'shell', '-c', RECORD_RUN.format(pid=pid)],
                env=server.env,
                check=True,
                timeout=300,
                capture_output=True,
            )
            page.goto(f'{server.url}/projects/{pid}/data', wait_until='load')
            page.click('#ls-ext-retraining-dm', timeout=60_000)  # beside "Settings" in the Data Manager's bar
            page.wait_for_url(f'**/projects/{pid}/retraining/')
            page.wait_for_selector('.ls-ext-retraining #runs')
            assert page.locator('.lsf-menu-header').is_visible()
            run = page.locator('#runs tbody tr').first
            text = run.inner_text()
            for shown in (
                'Loss\n0.4321',
                'mAP@0.5 before → after\n0.05 → 0.61',
                'Images\n6 trained on',
                'Run took\n5.2 s',
                'Model server: trained on 6 images; mAP needs at least 10 annotated images',
            ):
                assert shown in text, (shown, text)
            assert 'Loss so far' not in text and 'Epoch\n' not in text  # no stale mid-run progress
            assert 'predict_only' not in text and '{' not in text  # values, not JSON
            page.click('#retrain-now')  # offered with no task selected: trains on all annotations
            page.wait_for_url('**/retraining/?done=*')
            assert page.locator('#pending').inner_text() == 'yes'

            page.goto(f'{server.url}/projects/{pid}/settings', wait_until='load')
            page.click('#ls-ext-retraining-settings', timeout=60_000)  # after "Model" in the settings sidebar
            page.wait_for_url(f'**/projects/{pid}/retraining/')
            page.wait_for_selector('.ls-ext-retraining #runs')
        except Exception:
            page.screenshot(path=str(tmp_path / 'retraining-links-failure.png'))
            raise
        finally:
            context.close()
            browser.close()
    ours = [entry for entry in console if entry[0] in ('error', 'pageerror') and 'heidi-tips' not in entry[2]]
    assert ours == [], ours
    assert record.external_requests == []
