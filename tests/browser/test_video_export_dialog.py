"""The per-frame video formats in Label Studio's own Export dialog, in a real browser against a real server.

A user signs up, makes a video tracking project with one uploaded video (50 frames, 64x48) and one
annotation (API calls from the logged-in page, as the UI makes them), opens the Data Manager's Export
dialog, sees the video options, picks MOT and then YOLO, and gets the files the dialog downloads.
"""

import io
import json
import zipfile

import pytest
from playwright.sync_api import sync_playwright

from tests.browser.walk import WalkRecord, guard_context, launch, sign_up_and_log_in
from tests.label_configs import VIDEO_TRACKING
from tests.support.server import LabelStudioServer

pytestmark = pytest.mark.browser

TITLES = {
    'VIDEO_JSON': 'Label Studio JSON (every frame) — every video frame',
    'VIDEO_MOT': 'MOT Challenge — every video frame',
    'VIDEO_YOLO': 'YOLO (frames + labels) — every video frame',
}


def kf(frame, enabled=True, x=10.0, y=10.0, width=20.0, height=20.0):
    return {'frame': frame, 'enabled': enabled, 'x': x, 'y': y, 'width': width, 'height': height, 'rotation': 0}


def result(result_id, label, sequence):
    value = {'sequence': sequence, 'labels': [label], 'framesCount': 50, 'duration': 2.0}
    return {'id': result_id, 'from_name': 'box', 'to_name': 'video', 'type': 'videorectangle', 'value': value}


def api(page, method, url, **kwargs):
    csrf = next(c['value'] for c in page.context.cookies() if c['name'] == 'csrftoken')
    response = page.request.fetch(url, method=method, headers={'X-CSRFToken': csrf, 'Referer': url}, **kwargs)
    assert response.ok, (url, response.status, response.text()[:500])
    return response.json()


def make_project(page, base, video):
    project = api(page, 'POST', f'{base}/api/projects', data={'title': 'Fish tracks', 'label_config': VIDEO_TRACKING})
    pid = project['id']
    upload = {'file': {'name': 'fish.mp4', 'mimeType': 'video/mp4', 'buffer': video.read_bytes()}}
    api(page, 'POST', f'{base}/api/projects/{pid}/import', multipart=upload)
    tasks = api(page, 'GET', f'{base}/api/tasks?project={pid}')['tasks']
    assert len(tasks) == 1 and tasks[0]['data']['video'].startswith(f'/data/upload/{pid}/')
    results = [result('fish-1', 'fish', [kf(1), kf(5, False, x=50.0)]), result('crab-1', 'crab', [kf(3, x=0.0)])]
    api(page, 'POST', f'{base}/api/tasks/{tasks[0]["id"]}/annotations/', data={'result': results})
    return pid


def download(page, title):
    page.get_by_text(title).click()
    with page.expect_download(timeout=60_000) as info:
        page.get_by_role('button', name='Export data').click()
    data = info.value.path().read_bytes()
    return info.value.suggested_filename, zipfile.ZipFile(io.BytesIO(data))


def test_video_formats_appear_in_the_export_dialog_and_download(tmp_path, template_db, media):
    record = WalkRecord()
    with LabelStudioServer(tmp_path / 'data', template_db) as server, sync_playwright() as pw:
        browser = launch(pw)
        context = browser.new_context(viewport={'width': 1400, 'height': 900}, accept_downloads=True)
        guard_context(context, record)
        page = context.new_page()
        try:
            sign_up_and_log_in(page, server.url, record, 'exporter@example.org')
            pid = make_project(page, server.url, media['video'])
            page.goto(f'{server.url}/projects/{pid}/data/export', wait_until='domcontentloaded')
            page.wait_for_selector(f'text={TITLES["VIDEO_MOT"]}', timeout=60_000)
            for title in TITLES.values():
                assert page.get_by_text(title).is_visible(), title
            assert page.get_by_text('JSON', exact=True).first.is_visible()  # Label Studio's own stay

            name, mot = download(page, TITLES['VIDEO_MOT'])
            assert name.startswith(f'project-{pid}-video-mot-at-') and name.endswith('.zip')
            rows = mot.read('gt/gt.txt').decode().splitlines()
            assert len(rows) == 5 + 48  # fish on frames 1-5, crab from frame 3 to the video's 50th
            assert rows[0] == '1,1,7.40,5.80,12.80,9.60,1,1,1'  # MOT Challenge pixels are 1-based
            assert 'imWidth=64' in mot.read('seqinfo.ini').decode()

            name, yolo = download(page, TITLES['VIDEO_YOLO'])
            images = [n for n in yolo.namelist() if n.startswith('images/')]
            assert len(images) == 50
            assert json.loads(yolo.read('summary.json'))['boxes'] == 53
        except Exception:
            page.screenshot(path=str(tmp_path / 'video-export-failure.png'))
            raise
        finally:
            context.close()
            browser.close()
    assert record.external_requests == []
