"""Snapshot conversions with real processes: Label Studio (`label-studio start`) and Celery workers on its data dir.

The convert request publishes to the embedded broker; a worker claims the conversion and is SIGKILLed
while it holds it. The path is forced, not raced: the snapshot's file is swapped for a named pipe with
no writer, so the worker blocks opening it, `in_progress`, until it is killed. The next worker's sweep
finds no heartbeat for the staleness window and restarts the conversion, which then completes once.
"""

import io
import os
import sqlite3
import time
import zipfile

import pytest

from tests.label_configs import VIDEO_TRACKING
from tests.retraining.support import ENV, TOKEN, Worker
from tests.support.api import TokenApi
from tests.support.media import write_video
from tests.support.server import LabelStudioServer, migrated_database
from tests.video.test_export_api import CRAB, FISH, track

# a conversion without progress for 10 s is restarted; the sweep runs every second
FAST = {'LS_EXT_VIDEO_CONVERSION_STALE_SECONDS': '10', 'LS_EXT_VIDEO_CONVERSION_SWEEP_SECONDS': '1'}


@pytest.fixture(scope='module')
def ls(tmp_path_factory):
    template = migrated_database(tmp_path_factory)
    with LabelStudioServer(tmp_path_factory.mktemp('ls'), template, env={**ENV, **FAST}) as server:
        yield server


def wait_for(what, check, timeout, logs=lambda: ''):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f'{what}: not within {timeout} s\n{logs()}')


def test_a_worker_killed_mid_conversion_is_recovered_by_the_next_worker(ls, tmp_path):
    api = TokenApi(ls.url, TOKEN)
    project = api('POST', '/api/projects', json={'title': 'videos', 'label_config': VIDEO_TRACKING})['id']
    video = write_video(tmp_path / 'clip.mp4', frames=12, width=64, height=48)
    api('POST', f'/api/projects/{project}/import', files=[('file', ('clip.mp4', video.read_bytes(), 'video/mp4'))])
    (task,) = api('GET', f'/api/tasks?project={project}')['tasks']
    api('POST', f'/api/tasks/{task["id"]}/annotations', json={'result': [track(FISH, 'fish'), track(CRAB, 'crab')]})
    snapshot = api('POST', f'/api/projects/{project}/exports/', json={})
    assert snapshot['status'] == 'completed'  # no Redis: Label Studio writes the snapshot in the request
    base = f'/api/projects/{project}/exports/{snapshot["id"]}'
    (snapshot_file,) = (ls.data_dir / 'media' / 'export').rglob(f'project-{project}-at-*.json')
    content = snapshot_file.read_bytes()

    def conversion():
        (listed,) = [s for s in api('GET', f'/api/projects/{project}/exports/') if s['id'] == snapshot['id']]
        return listed['converted_formats']

    snapshot_file.unlink()
    os.mkfifo(snapshot_file)  # the worker will block opening it: no writer, ever
    with Worker(ls.data_dir, {**ENV, **FAST}) as first:
        converted_id = api('POST', f'{base}/convert', json={'export_type': 'VIDEO_MOT'})['converted_format']
        wait_for(
            'claimed',
            lambda: (
                conversion()
                == [{'id': converted_id, 'status': 'in_progress', 'export_type': 'VIDEO_MOT', 'traceback': None}]
            ),
            120,
            first.log_tail,
        )
        first.kill()
    snapshot_file.unlink()
    snapshot_file.write_bytes(content)
    assert conversion()[0]['status'] == 'in_progress'  # no worker: nothing recovers it, nothing fails it

    killed_at = time.monotonic()
    with Worker(ls.data_dir, {**ENV, **FAST}) as second:
        done = wait_for('recovered', lambda: conversion()[0]['status'] in ('completed', 'failed'), 120, second.log_tail)
        recovered_after = time.monotonic() - killed_at
        assert conversion() == [
            {'id': converted_id, 'status': 'completed', 'export_type': 'VIDEO_MOT', 'traceback': None}
        ], (
            done,
            second.log_tail(),
        )
        assert 'no progress for' in second.log_tail(200)  # the sweep's restart, in the worker's log
    download = api.session.get(ls.url + f'{base}/download', params={'exportType': 'VIDEO_MOT'}, timeout=60)
    assert download.status_code == 200
    rows = zipfile.ZipFile(io.BytesIO(download.content)).read('gt/gt.txt').decode().splitlines()
    assert len(rows) == 15  # fish on frames 1-5, crab on 3-12 of the real 12-frame video
    with sqlite3.connect(ls.data_dir / 'label_studio.sqlite3') as db:
        attempts, restarts = db.execute(
            'SELECT attempts, restarts FROM ls_ext_video_videoconversion WHERE converted_format_id = ?', (converted_id,)
        ).fetchone()
    assert attempts >= 2 and restarts >= 1  # the killed worker's claim, then the recovering one
    converted_files = list((ls.data_dir / 'media' / 'export').rglob('*video-mot*'))
    assert len(converted_files) == 1, converted_files
    print(f'\nrecovered {recovered_after:.1f} s after the kill (window 10 s); attempts {attempts}, restarts {restarts}')
