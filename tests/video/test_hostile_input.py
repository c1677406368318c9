"""Hostile or broken input to the per-frame video export: never a 500, never a fetch, never an endless run.

Through the real API (Django test client on Label Studio's models), as test_export_api.py does:
- a user's "video" that is a playlist or a file list (HLS, ffconcat) is not opened as one: nothing connects
  to the URL it names, no other file is read through it, and the export treats it as unreadable;
- a video URL that no file can have (NUL byte, control characters, over-long names) skips that task with
  its reason while the other tasks export;
- a frame count of 10^12 (stored `framesCount`, or a keyframe with no video) is a 422 naming
  LS_EXT_VIDEO_MAX_FRAMES before anything runs;
- tens of thousands of `ids` work (SQLite allows 32766 variables per statement);
- every query parameter out of range or of the wrong type is a 400.
"""

from __future__ import annotations

import json
import socket
import sqlite3
from pathlib import Path

import pytest
from django.conf import settings

from tests.conftest import make_project, make_user
from tests.label_configs import VIDEO_TRACKING
from tests.support.media import write_video
from tests.video.test_export_api import CRAB, FISH, FRAMES, add_task, body, export, track, unzip, upload_video

pytestmark = pytest.mark.django_db


def store_upload(project, user, name: str, content: bytes) -> tuple[str, Path]:
    """A file stored as an upload of `project`, the way Label Studio stores one; (task URL, path)."""
    from data_import.models import FileUpload

    relative = f'{settings.UPLOAD_DIR}/{project.id}/{name}'
    path = Path(settings.MEDIA_ROOT, relative)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    FileUpload.objects.create(user=user, project=project, file=relative)
    return f'/data/{relative}', path


@pytest.fixture
def listening():
    """A socket on loopback that nobody should connect to; non-blocking, so accept() tells at once."""
    with socket.socket() as server:
        server.bind(('127.0.0.1', 0))
        server.listen(16)
        server.setblocking(False)
        yield server


def connections(server) -> int:
    """Connections that reached the socket: the kernel completes them in the backlog, no accept() needed."""
    count = 0
    while True:
        try:
            connection, _ = server.accept()
        except BlockingIOError:
            return count
        connection.close()
        count += 1


# ---------------------------------------------------------------- playlists and file lists


def test_playlist_and_file_list_videos_fetch_nothing_read_nothing_else_and_count_as_unreadable(
    client_owner, video_project, user, listening
):
    port = listening.getsockname()[1]
    # another organization's video: what a playlist naming its path would read without the restriction
    stranger = make_user('victim@example.org')
    victim_project = make_project(stranger, VIDEO_TRACKING, 'victim')
    victim_url = upload_video(victim_project, stranger, 'secret.mp4', frames=30)
    victim_path = Path(settings.MEDIA_ROOT, victim_url.removeprefix('/data/'))
    assert victim_path.is_file()
    hls = '#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:10\n#EXT-X-MEDIA-SEQUENCE:0\n#EXTINF:10.0,\n{}\n#EXT-X-ENDLIST\n'
    uploads = {
        'net.m3u8': hls.format(f'http://127.0.0.1:{port}/seg.ts'),
        'key.m3u8': hls.replace(
            '#EXTINF', f'#EXT-X-KEY:METHOD=AES-128,URI="http://127.0.0.1:{port}/key"\n#EXTINF'
        ).format(f'http://127.0.0.1:{port}/seg.ts'),
        'leak.m3u8': hls.format(victim_path),
        'net-list.mp4': f"ffconcat version 1.0\nfile 'http://127.0.0.1:{port}/seg.ts'\n",
        'list.mp4': "ffconcat version 1.0\nfile 'sibling.mp4'\n",  # a relative name: FFmpeg's "safe" default allows it
    }
    urls = {}
    for name, text in uploads.items():
        urls[name], path = store_upload(video_project, user, name, text.encode())
    write_video(path.parent / 'sibling.mp4', frames=30, width=64, height=48)  # on disk, nobody's upload
    tasks = {
        name: add_task(video_project, user, url, [track(FISH, 'fish', frames_count=FRAMES)])
        for name, url in urls.items()
    }

    response = export(client_owner, video_project, format='MOT', width=64, height=48)
    files = unzip(body(response))
    assert connections(listening) == 0
    # each one unreadable: frames from framesCount (12), not from the 30-frame files they name
    assert response['X-Export-Frame-Count-Sources'] == f'framesCount={len(uploads)}'
    summary = json.loads(files['summary.json'])
    by_task = {entry['task_id']: entry for entry in summary['tasks']}
    for name, task in tasks.items():
        entry = by_task[task.id]
        assert (entry['frame_count'], entry['frame_count_source']) == (FRAMES, 'framesCount'), name
        assert any('the video file could not be read' in w and 'not a video' in w for w in entry['warnings']), entry
    # a format that needs the frames says which videos it cannot read (422), as for any unreadable video
    yolo = export(client_owner, video_project, format='YOLO')
    assert yolo.status_code == 422 and sorted(yolo.json()['task_ids']) == sorted(t.id for t in tasks.values())
    assert connections(listening) == 0


def test_every_read_of_a_user_video_goes_through_the_restricted_open(tmp_path):
    from ls_extensions.video import frames

    real = write_video(tmp_path / 'real.mp4', frames=5)
    (tmp_path / 'list.mp4').write_text("ffconcat version 1.0\nfile 'real.mp4'\n")
    (tmp_path / 'list.m3u8').write_text(f'#EXTM3U\n#EXT-X-TARGETDURATION:1\n#EXTINF:1.0,\n{real}\n#EXT-X-ENDLIST\n')
    assert frames.probe(real).frame_count == 5
    assert [f for f, _ in frames.iter_frames(real, [1, 5])] == [1, 5]
    for name in ('list.mp4', 'list.m3u8'):
        with pytest.raises(frames.UnsafeVideo):
            frames.probe(tmp_path / name)
        with pytest.raises(frames.UnsafeVideo):
            list(frames.iter_frames(tmp_path / name, [1]))
    source = Path(frames.__file__).parent
    opens = [p.name for p in source.rglob('*.py') if 'av.open(' in p.read_text()]
    assert opens == ['frames.py']  # reading in open_video, writing in VideoWriter: nowhere else


# ---------------------------------------------------------------- malformed video URLs


@pytest.mark.parametrize(
    ('url', 'reason'),
    [
        ('/data/upload/{project}/clip%00.mp4', "control character '\\x00'"),
        ('/data/upload/{project}/clip\x00.mp4', "control character '\\x00'"),
        ('/data/local-files/?d=videos/clip%00.mp4', "control character '\\x00'"),
        ('/data/upload/{project}/clip%0A.mp4', "control character '\\n'"),
        ('/data/upload/{project}/' + 'a' * 300 + '.mp4', 'cannot name a file (OSError'),
        ('/data/upload/' + 'a/' * 2100 + 'x.mp4', 'longer than 4096 characters'),
    ],
)
def test_a_malformed_video_url_skips_that_task_with_its_reason_and_the_rest_exports(
    client_owner, video_project, user, url, reason, worker
):
    good = add_task(video_project, user, upload_video(video_project, user), [track(FISH, 'fish'), track(CRAB, 'crab')])
    bad = add_task(video_project, user, url.format(project=video_project.id), [track(FISH, 'fish')])
    for fmt in ('MOT', 'YOLO', 'JSON'):
        response = export(client_owner, video_project, format=fmt)
        assert response.status_code == 200, (fmt, response.content)
        assert response['X-Export-Tasks'] == '1' and response['X-Export-Warnings'] == '1'
        (message,) = json.loads(response['X-Export-Warning-Messages'])
        assert message.startswith(f'task {bad.id} skipped: its video URL') and reason in message, message
        data = body(response)
        if fmt == 'JSON':
            assert [t['id'] for t in json.loads(data)] == [good.id]
        else:
            summary = json.loads(unzip(data)['summary.json'])
            assert [t['task_id'] for t in summary['tasks']] == [good.id]
            (skipped,) = summary['skipped']
            assert skipped['task_id'] == bad.id and reason in skipped['reason']
    # the same in a snapshot conversion, on the worker
    from data_export.models import ConvertedFormat

    snapshot = client_owner.post(f'/api/projects/{video_project.id}/exports/', {}, content_type='application/json')
    base = f'/api/projects/{video_project.id}/exports/{snapshot.json()["id"]}'
    with worker():
        converted = client_owner.post(f'{base}/convert', {'export_type': 'VIDEO_MOT'}, content_type='application/json')
    assert converted.status_code == 200, converted.content
    row = ConvertedFormat.objects.get(id=converted.json()['converted_format'])
    assert row.status == 'completed', row.traceback
    summary = json.loads(
        unzip(b''.join(client_owner.get(f'{base}/download', {'exportType': 'VIDEO_MOT'})))['summary.json']
    )
    assert [s['task_id'] for s in summary['skipped']] == [bad.id]


# ---------------------------------------------------------------- frame counts beyond the bound


@pytest.mark.parametrize(
    ('results', 'source'),
    [
        ([track(FISH, 'fish', frames_count=10**12)], 'framesCount'),
        ([track([{**FISH[0], 'frame': 10**12}], 'fish', frames_count=None)], 'keyframes'),
    ],
)
def test_a_frame_count_beyond_the_setting_is_a_422_naming_it(client_owner, video_project, user, results, source):
    task = add_task(video_project, user, 'https://example.com/gone.mp4', results)
    for fmt in ('JSON', 'CSV', 'MOT'):
        response = export(client_owner, video_project, format=fmt, width=64, height=48)
        assert response.status_code == 422, (fmt, response.status_code)
        detail = response.json()['detail']
        assert (
            'LS_EXT_VIDEO_MAX_FRAMES = 1000000' in detail
            and f'task {task.id}: {10**12} frames (from {source})' in detail
        )
        assert response.json()['task_ids'] == [task.id]
    dialog = client_owner.get(f'/api/projects/{video_project.id}/export', {'exportType': 'VIDEO_CSV'})
    assert dialog.status_code == 422 and 'LS_EXT_VIDEO_MAX_FRAMES' in dialog.json()['detail']


def test_the_frame_bound_is_the_setting(client_owner, video_project, user, settings, worker):
    from data_export.models import ConvertedFormat

    settings.LS_EXT_VIDEO_MAX_FRAMES = 100
    at_bound = add_task(video_project, user, '', [track(FISH, 'fish', frames_count=100)])
    assert export(client_owner, video_project, format='CSV').status_code == 200
    over = add_task(video_project, user, '', [track(FISH, 'fish', frames_count=101)])
    response = export(client_owner, video_project, format='CSV')
    assert response.status_code == 422 and response.json()['task_ids'] == [over.id]
    assert export(client_owner, video_project, format='CSV', ids=at_bound.id).status_code == 200
    assert export(client_owner, video_project, format='CSV', frame_stride=101).status_code == 400
    # a snapshot conversion fails with the same reason (the worker finds it)
    snapshot = client_owner.post(f'/api/projects/{video_project.id}/exports/', {}, content_type='application/json')
    with worker():
        converted = client_owner.post(
            f'/api/projects/{video_project.id}/exports/{snapshot.json()["id"]}/convert',
            {'export_type': 'VIDEO_CSV'},
            content_type='application/json',
        )
    row = ConvertedFormat.objects.get(id=converted.json()['converted_format'])
    assert row.status == 'failed' and 'LS_EXT_VIDEO_MAX_FRAMES = 100 ' in row.traceback


# ---------------------------------------------------------------- many ids


@pytest.fixture
def stock_sqlite_limits():
    """SQLite's variables per statement as it ships (32766); Debian compiles its library with 250000."""
    from django.db import connection

    if connection.vendor != 'sqlite':
        yield
        return
    connection.ensure_connection()
    previous = connection.connection.setlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER, 32766)
    yield
    connection.connection.setlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER, previous)


def test_tens_of_thousands_of_ids_work(client_owner, video_project, user, stock_sqlite_limits):
    from tasks.models import Task

    url = upload_video(video_project, user)
    wanted = [add_task(video_project, user, url, [track(FISH, 'fish')]).id for _ in range(3)]
    Task.objects.bulk_create([Task(project=video_project, data={'video': ''}) for _ in range(2000)])
    ids = list(Task.objects.filter(project=video_project).values_list('id', flat=True))
    unknown = list(range(max(ids) + 1, max(ids) + 40_001))  # ids of no task of this project: nothing
    asked = ','.join(map(str, unknown[:20_000] + ids + unknown[20_000:]))  # 42003 ids, beyond 32766 variables
    response = export(client_owner, video_project, format='CSV', ids=asked)
    assert response.status_code == 200, response.content[:300]
    assert response['X-Export-Tasks'] == '3'  # the annotated ones
    rows = body(response).decode().splitlines()[1:]
    assert {int(row.split(',')[0]) for row in rows} == set(wanted)
    everything = export(client_owner, video_project, format='CSV', ids=asked, download_all_tasks='true')
    assert everything['X-Export-Tasks'] == str(len(ids))  # every task found, across the chunks of ids
    too_many = export(client_owner, video_project, format='CSV', ids=','.join(map(str, range(1, 100_002))))
    assert too_many.status_code == 400
    assert 'no more than 100000' in too_many.json()['validation_errors']['ids'][0]


# ---------------------------------------------------------------- query parameters


BAD_PARAMETERS = [
    {'frame_stride': 0},
    {'frame_stride': -1},
    {'frame_stride': 'x'},
    {'frame_stride': '1.5'},
    {'frame_stride': 10**30},
    {'frame_stride': 1_000_001},
    {'frame_stride': 'NaN'},
    {'frame_stride': '9' * 2000},
    {'ids': 'a'},
    {'ids': '0'},
    {'ids': '-3'},
    {'ids': str(2**63)},
    {'ids': '1,,x'},
    {'ids': '1e5'},
    {'width': 640},
    {'width': 0, 'height': 10},
    {'width': 10**9, 'height': 10},
    {'width': 'wide', 'height': 10},
    {'labels': 'fi\x00sh'},
    {'labels': 'x' * 1001},
    {'download_all_tasks': 'maybe'},
    {'images': 'perhaps'},
    {'format': 'MOT\x00'},
    {'format': 'x' * 5000},
]


@pytest.mark.parametrize('params', BAD_PARAMETERS, ids=lambda p: repr(p)[:60])
def test_bad_query_parameters_are_400_with_the_reason(client_owner, video_project, video_task, params):
    params = {'format': 'MOT', **params}
    response = export(client_owner, video_project, **params)
    assert response.status_code == 400, (params, response.status_code, response.content[:300])
    problem = response.json()
    assert problem.get('validation_errors') or 'format' in problem['detail'], problem
    dialog_params = {'exportType': 'VIDEO_' + params.pop('format'), **params}
    dialog = client_owner.get(f'/api/projects/{video_project.id}/export', dialog_params)
    assert dialog.status_code == 400, (dialog_params, dialog.status_code, dialog.content[:300])


@pytest.fixture
def video_task(video_project, user):
    return add_task(video_project, user, upload_video(video_project, user), [track(FISH, 'fish')])


def test_frame_stride_names_the_setting(client_owner, video_project, video_task):
    response = export(client_owner, video_project, format='MOT', frame_stride=10**7)
    assert response.status_code == 400
    assert 'LS_EXT_VIDEO_MAX_FRAMES' in response.json()['validation_errors']['frame_stride'][0]


@pytest.mark.parametrize(
    'payload',
    [
        {'ids': 'abc'},
        {'ids': [1, 'x']},
        {'ids': {'a': 1}},
        {'ids': [2**64]},
        {'frame_stride': [1]},
        {'frame_stride': 1e400},
        {'frame_stride': None},
        {'labels': {}},
        {'labels': [None]},
        {'width': 64},
        {'images': 'perhaps'},
        {'export_type': ['VIDEO_MOT']},
        {'export_type': None},
    ],
    ids=lambda p: repr(p)[:60],
)
def test_bad_snapshot_conversion_bodies_are_400_and_store_nothing(client_owner, video_project, video_task, payload):
    from data_export.models import ConvertedFormat

    snapshot = client_owner.post(f'/api/projects/{video_project.id}/exports/', {}, content_type='application/json')
    url = f'/api/projects/{video_project.id}/exports/{snapshot.json()["id"]}/convert'
    response = client_owner.post(
        url, json.dumps({'export_type': 'VIDEO_MOT', **payload}), content_type='application/json'
    )
    assert 400 <= response.status_code < 500, (payload, response.status_code, response.content[:300])
    assert not ConvertedFormat.objects.exists()
