"""One person's walk through Label Studio in headless Chromium, recording every non-local request.

The walk covers what the offline promise is about: sign-up, login, the projects list, creating
an image project and a video-tracking project with data imported through the UI, the Data
Manager, the labeling page, project settings and the Export dialog.
"""

from dataclasses import dataclass, field
from urllib.parse import urlsplit

from ls_extensions.privacy.egress import is_loopback

CHROMIUM = '/usr/bin/chromium'
# without these flags Chromium itself calls out (component updates, sync, safe browsing...)
CHROMIUM_ARGS = [
    '--headless',
    '--no-sandbox',
    '--disable-gpu',
    '--no-first-run',
    '--disable-background-networking',
    '--disable-component-update',
    '--disable-sync',
    '--disable-quic',
]
PASSWORD = 'walker-pass-123'


@dataclass
class WalkRecord:
    external_requests: list = field(default_factory=list)
    pages: list = field(default_factory=list)
    ui_errors: list = field(default_factory=list)
    project_ids: list = field(default_factory=list)


def launch(playwright):
    return playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)


def guard_context(context, record):
    """Abort and record every request the page makes to a non-loopback host."""

    def handle(route):
        url = route.request.url
        host = urlsplit(url).hostname
        if url.startswith(('data:', 'blob:')) or is_loopback(host):
            route.continue_()
        else:
            record.external_requests.append(url)
            route.abort()

    context.route('**/*', handle)


def visit(page, record, url, settle_ms=2500):
    page.goto(url, wait_until='domcontentloaded')
    page.wait_for_timeout(settle_ms)
    record.pages.append(page.url)


def signed_in(playwright, base, email):
    """(browser, page, record): a fresh guarded context in which `email` has signed up and logged in."""
    browser = launch(playwright)
    context = browser.new_context()
    record = WalkRecord()
    guard_context(context, record)
    page = context.new_page()
    sign_up_and_log_in(page, base, record, email)
    return browser, page, record


def sign_up_and_log_in(page, base, record, email):
    visit(page, record, base + '/user/signup/', 500)
    page.fill('input[name=email]', email)
    page.fill('input[name=password]', PASSWORD)
    page.click('button:has-text("Create Account")')
    page.wait_for_selector('text=Create Project', timeout=60_000)
    visit(page, record, base + '/logout', 500)
    page.context.clear_cookies()  # make sure the login below is a real one
    visit(page, record, base + '/user/login/', 500)
    page.fill('input[name=email]', email)
    page.fill('input[name=password]', PASSWORD)
    page.click('button:has-text("Log in")')
    page.wait_for_selector('text=Create Project', timeout=60_000)
    record.pages.append(page.url)


def dismiss_runtime_error(page, record):
    """Label Studio 1.23.2's create dialog can raise "Can't find key `pk`" after an upload (stock too);
    note it and close it so the walk goes on."""
    dialog = page.locator('.lsf-modal-ls_visible', has_text='Runtime error')
    if dialog.count():
        record.ui_errors.append(dialog.first.inner_text())
        dialog.first.locator('.lsf-modal-ls__close, button').first.click()
        page.wait_for_timeout(500)


def create_project(page, base, record, name, upload, category, template):
    """Create a project through the UI's dialog, uploading one file, and return its id."""
    visit(page, record, base + '/projects/', 1500)
    with page.expect_response(lambda r: r.url.endswith('/api/projects') and r.request.method == 'POST'):
        page.locator('button', has_text='Create').first.click()  # the dialog makes a draft project
    page.fill('#project_name', name)
    page.click('text=Data Import')
    page.set_input_files('input[type=file]', str(upload))
    page.wait_for_selector(f'text={upload.name}', timeout=60_000)
    page.wait_for_timeout(1000)
    dismiss_runtime_error(page, record)
    page.click('text=Labeling Setup')
    if category:
        page.click(f'text={category}')
    page.click(f'text={template}')
    page.wait_for_timeout(1500)
    page.click('button:has-text("Save")')
    page.wait_for_url('**/projects/*/data**', timeout=60_000)
    page.wait_for_timeout(2500)
    project_id = int(urlsplit(page.url).path.split('/')[2])
    record.project_ids.append(project_id)
    record.pages.append(page.url)
    return project_id


def label_first_task(page, base, record, project_id):
    visit(page, record, f'{base}/projects/{project_id}/data', 1500)
    page.click('button:has-text("Label All Tasks")')
    page.wait_for_selector('button:has-text("Submit"), button:has-text("Skip")', timeout=60_000)
    page.wait_for_timeout(3000)
    record.pages.append(page.url)


def open_settings_and_export(page, base, record, project_id):
    visit(page, record, f'{base}/projects/{project_id}/settings')
    visit(page, record, f'{base}/projects/{project_id}/settings/ml')
    visit(page, record, f'{base}/projects/{project_id}/data/export')
    page.wait_for_selector('text=Export', timeout=30_000)


def walk(playwright, base, email, image_file, video_file, screenshot_dir=None):
    record = WalkRecord()
    browser = launch(playwright)
    context = browser.new_context(viewport={'width': 1400, 'height': 900})
    guard_context(context, record)
    page = context.new_page()
    try:
        sign_up_and_log_in(page, base, record, email)
        image_project = create_project(
            page, base, record, 'Fish images', image_file, None, 'Object Detection with Bounding Boxes'
        )
        label_first_task(page, base, record, image_project)
        open_settings_and_export(page, base, record, image_project)
        page.close()  # a fresh tab: the UI's create dialog fails when opened after a project's pages
        page = context.new_page()
        video_project = create_project(page, base, record, 'Fish videos', video_file, 'Videos', 'Video Object Tracking')
        label_first_task(page, base, record, video_project)
        open_settings_and_export(page, base, record, video_project)
    except Exception:
        if screenshot_dir:
            page.screenshot(path=str(screenshot_dir / 'walk-failure.png'))
        raise
    finally:
        context.close()
        browser.close()
    return record
