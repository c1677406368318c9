"""A video made by frames_to_video plays in the labeling UI with the duration its frames imply."""

import subprocess
import sys

import pytest
from playwright.sync_api import sync_playwright

from tests.browser.walk import signed_in
from tests.support.server import REPO, LabelStudioServer
from tests.video.test_import_videos import frame_folder

pytestmark = pytest.mark.browser

FRAMES, FPS = 50, 25


def test_prepared_video_plays_in_the_labeling_ui(tmp_path, template_db):
    frame_folder(tmp_path / 'src', 'deepfish/clip1', FRAMES, size=(160, 120))
    email = 'prep@example.org'
    with LabelStudioServer(tmp_path / 'data', template_db) as server, sync_playwright() as pw:
        browser, page, record = signed_in(pw, server.url, email)
        csrf = next(c['value'] for c in page.context.cookies() if c['name'] == 'csrftoken')
        created = page.request.post(
            server.url + '/api/projects', data={'title': 'DeepFish'}, headers={'X-CSRFToken': csrf}
        )
        assert created.status == 201, created.text()
        project_id = created.json()['id']

        command = [
            sys.executable,
            str(REPO / 'manage.py'),
            'frames_to_video',
            str(tmp_path / 'src'),
            '--out',
            str(tmp_path / 'videos'),
            '--fps',
            str(FPS),
            '--project',
            str(project_id),
            '--user',
            email,
            '--labels',
            'fish,crab',
        ]
        result = subprocess.run(command, env=server.env, capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, result.stderr
        assert '1 task(s) created' in result.stdout

        page.goto(f'{server.url}/projects/{project_id}/data', wait_until='domcontentloaded')
        page.click('button:has-text("Label All Tasks")')
        page.wait_for_function(
            '() => { const v = document.querySelector("video"); return v && v.readyState >= 1 }', timeout=60_000
        )
        duration = page.evaluate('document.querySelector("video").duration')
        page.evaluate('document.querySelector("video").muted = true')
        page.evaluate('document.querySelector("video").play()')
        page.wait_for_function('document.querySelector("video").currentTime > 0.3', timeout=30_000)
        browser.close()
    assert duration == pytest.approx(FRAMES / FPS, abs=1 / FPS)
    assert record.external_requests == []
