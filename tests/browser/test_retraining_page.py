"""The project's retraining page in a real browser against a real server (our enforced CSP included).

A user signs up, makes a project (API call from the logged-in page, as the UI makes it), opens
/projects/<id>/retraining/, changes the threshold and saves (the API then reports it), presses
"Retrain now" and sees the state turn pending. The page must raise no CSP violation.
"""

import pytest
from playwright.sync_api import sync_playwright

from tests.browser.walk import WalkRecord, guard_context, launch, sign_up_and_log_in
from tests.label_configs import IMAGE_BOXES
from tests.support.server import LabelStudioServer

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
            response = page.goto(url, wait_until='load')
            assert response.status == 200
            assert page.locator('h1').inner_text() == 'Retraining — Fish'
            csp = response.headers.get('content-security-policy', '')
            assert "default-src 'self'" in csp  # the enforced policy is the one this page ran under
            assert page.locator('#no-runs').is_visible()

            page.fill('#id_threshold', '9')
            page.check('#id_enabled')
            page.click('#save-policy')
            page.wait_for_url('**/retraining/?done=saved')
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
            page.wait_for_timeout(500)
            assert any(is_csp_violation(text) and CONTROL in text for _, text in console), console

            page.goto(url, wait_until='load')
            page.click('#retrain-now')
            page.wait_for_url('**/retraining/?done=*')
            assert page.locator('#pending').inner_text() == 'yes'
            assert page.locator('meta[http-equiv=refresh]').count() == 1  # reloads itself while pending
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
