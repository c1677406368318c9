"""`GET /api/projects/<id>/export/video-frames` and the Django side behind it (ls_extensions/video/export/).

The project uses tests/label_configs.py VIDEO_TRACKING. Its one video task plays a generated 12-frame
64x48 H.264 file uploaded to the project, whose decoded frame i is grey level 8*i, so an extracted
image tells which frame it came from. Tracks:
- "fish": keyframes (1, enabled, x=10%) and (5, disabled, x=50%), 20%x20% at y=10% -> frames 1-5,
  x = 10, 20, 30, 40, 50 % = 6.4, 12.8, 19.2, 25.6, 32 px; box 12.8x9.6 px;
- "crab": keyframe (3, enabled) at x=0, y=50%, 25%x25% -> frames 3-12 (held to the video's end).
"""

from __future__ import annotations

import csv
import io
import json
import os
import threading
import time
import tracemalloc
import zipfile
from pathlib import Path

import cv2
import numpy as np
import pytest
from django.conf import settings
from django.test import override_settings

from tests.conftest import make_project, make_user
from tests.label_configs import IMAGE_BOXES, VIDEO_TRACKING
from tests.support.media import write_video

FRAMES, WIDTH, HEIGHT = 12, 64, 48


def kf(frame, enabled=True, x=10.0, y=10.0, width=20.0, height=20.0, rotation=0.0):
    return {'frame': frame, 'enabled': enabled, 'x': x, 'y': y, 'width': width, 'height': height, 'rotation': rotation}


FISH = [kf(1, True), kf(5, False, x=50.0)]
CRAB = [kf(3, True, x=0.0, y=50.0, width=25.0, height=25.0)]


def track(sequence, label='fish', result_id=None, frames_count=FRAMES, **value):
    return {
        'id': result_id or f'r-{label}',
        'from_name': 'box',
        'to_name': 'video',
        'type': 'videorectangle',
        'origin': 'manual',
        'value': {'sequence': sequence, 'labels': [label], 'framesCount': frames_count, 'duration': 0.48, **value},
    }


def upload_video(project, user, name='clip.mp4', frames=FRAMES):
    """A video uploaded to the project the way Label Studio stores uploads; returns the task's URL."""
    from data_import.models import FileUpload

    relative = f'{settings.UPLOAD_DIR}/{project.id}/abcd1234-{name}'
    path = Path(settings.MEDIA_ROOT, relative)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_video(path, frames=frames, width=WIDTH, height=HEIGHT)
    FileUpload.objects.create(user=user, project=project, file=relative)
    return f'/data/{relative}'


def add_task(project, user, video, results, cancelled=False, raw=False):
    """A task with one annotation; `raw` stores results that Label Studio's own signals would choke on."""
    from tasks.models import Annotation, Task

    task = Task.objects.create(project=project, data={'video': video})
    if results is not None:
        annotation = Annotation(task=task, project=project, completed_by=user, result=results, was_cancelled=cancelled)
        Annotation.objects.bulk_create([annotation]) if raw else annotation.save()
    return task


@pytest.fixture
def video_task(video_project, user):
    url = upload_video(video_project, user)
    return add_task(video_project, user, url, [track(FISH, 'fish'), track(CRAB, 'crab')])


def export(client, project, **params):
    return client.get(f'/api/projects/{project.id}/export/video-frames', params)


def body(response) -> bytes:
    assert response.status_code == 200, response.content
    return b''.join(response.streaming_content)


def unzip(data: bytes) -> dict[str, bytes]:
    archive = zipfile.ZipFile(io.BytesIO(data))
    return {name: archive.read(name) for name in archive.namelist()}


def mot_rows(text: str) -> list[list[float]]:
    return [[float(v) for v in line.split(',')] for line in text.splitlines()]


# ---------------------------------------------------------------- formats over HTTP


def test_mot_streams_every_ui_frame_with_size_and_count_from_the_video(client_owner, video_project, video_task):
    response = export(client_owner, video_project, format='MOT')
    assert response.streaming
    assert response['Content-Type'] == 'application/zip'
    assert response['filename'].startswith(f'project-{video_project.id}-video-mot-at-')
    assert response['filename'] in response['Content-Disposition']
    assert response['X-Export-Warnings'] == '0'
    assert response['X-Export-Frame-Count-Sources'] == 'video=1'
    files = unzip(body(response))
    assert set(files) == {'seqinfo.ini', 'gt/gt.txt', 'gt/labels.txt', 'summary.json'}
    assert files['gt/labels.txt'] == b'fish\ncrab\n'
    seqinfo = files['seqinfo.ini'].decode()
    assert 'seqLength=12' in seqinfo and 'imWidth=64' in seqinfo and 'imHeight=48' in seqinfo
    assert 'frameRate=25' in seqinfo.splitlines()
    rows = mot_rows(files['gt/gt.txt'].decode())
    fish = [r for r in rows if r[1] == 1]
    crab = [r for r in rows if r[1] == 2]
    assert [r[0] for r in fish] == [1, 2, 3, 4, 5]
    assert [r[2] for r in fish] == [7.4, 13.8, 20.2, 26.6, 33.0]  # MOT Challenge pixels are 1-based
    assert fish[0][3:6] == [5.8, 12.8, 9.6] and fish[0][7] == 1
    assert [r[0] for r in crab] == list(range(3, 13))  # held to the end of the real video
    assert crab[0][2:6] == [1.0, 25.0, 16.0, 12.0] and crab[0][7] == 2
    summary = json.loads(files['summary.json'])
    assert summary['boxes'] == 15
    assert summary['tasks'][0]['frame_count_source'] == 'video'


def test_export_dialog_names_are_accepted_as_format(client_owner, video_project, video_task):
    files = unzip(body(export(client_owner, video_project, format='VIDEO_MOT')))
    assert 'gt/gt.txt' in files


def test_json_keeps_the_task_and_lists_every_frame(client_owner, video_project, video_task):
    response = export(client_owner, video_project, format='JSON')
    assert response['Content-Type'] == 'application/json'
    tasks = json.loads(body(response))
    assert [t['id'] for t in tasks] == [video_task.id]
    results = {r['id']: r for r in tasks[0]['annotations'][0]['result']}
    fish = results['r-fish']['value']['sequence']
    assert [e['frame'] for e in fish] == [1, 2, 3, 4, 5]
    assert [e['enabled'] for e in fish] == [True, True, True, True, False]
    assert fish[2]['x'] == pytest.approx(30.0) and fish[2]['time'] == pytest.approx(3 / 25)
    assert results['r-fish']['meta']['frames_count_source'] == 'video'
    assert tasks[0]['data']['video'].startswith('/data/upload/')


def test_a_track_starting_at_frame_0_is_exported_as_the_ui_draws_it(client_owner, video_project, user):
    # Tracker output converted 0-based: the UI interpolates from frame 0 into frames 1...; not a malformed track.
    url = upload_video(video_project, user)
    add_task(video_project, user, url, [track([kf(0, True, x=0.0), kf(4, False, x=40.0)], 'fish')])
    response = export(client_owner, video_project, format='JSON')
    assert response['X-Export-Warnings'] == '0'
    sequence = json.loads(body(response))[0]['annotations'][0]['result'][0]['value']['sequence']
    assert [(e['frame'], e['x']) for e in sequence] == [(1, 10.0), (2, 20.0), (3, 30.0), (4, 40.0)]


def test_csv_has_percent_and_pixel_columns(client_owner, video_project, video_task):
    response = export(client_owner, video_project, format='csv')
    assert response['Content-Type'] == 'text/csv'
    rows = list(csv.DictReader(io.StringIO(body(response).decode())))
    assert len(rows) == 15
    first = rows[0]
    assert (first['label'], first['frame'], first['x'], first['x_px']) == ('fish', '1', '10.0', '6.4')


def test_yolo_extracts_ui_frame_f_from_decoded_frame_f_minus_1(client_owner, video_project, video_task):
    files = unzip(body(export(client_owner, video_project, format='YOLO')))
    stem = 'abcd1234-clip'
    images = sorted(name for name in files if name.startswith('images/'))
    assert images == [f'images/{stem}/{f:06d}.jpg' for f in range(1, FRAMES + 1)]
    for frame in range(1, FRAMES + 1):
        pixels = cv2.imdecode(np.frombuffer(files[f'images/{stem}/{frame:06d}.jpg'], np.uint8), cv2.IMREAD_GRAYSCALE)
        assert pixels.shape == (HEIGHT, WIDTH)
        assert abs(float(pixels.mean()) - 8 * (frame - 1)) < 3, frame  # written grey level 8*i on decoded frame i
    assert files[f'labels/{stem}/000001.txt'] == b'0 0.200000 0.200000 0.200000 0.200000\n'
    assert files[f'labels/{stem}/000003.txt'].decode().splitlines()[1] == '1 0.125000 0.625000 0.250000 0.250000'
    assert files[f'labels/{stem}/000012.txt'].count(b'\n') == 1  # only the crab
    assert b'names:\n  0: "fish"\n  1: "crab"\n' in files['data.yaml']
    assert files['classes.txt'] == b'fish\ncrab\n'
    assert json.loads(files['summary.json'])['tasks'][0]['warnings'] == []


def grey(jpeg: bytes) -> float:
    return float(cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_GRAYSCALE).mean())


def test_mot_with_images_has_img1_frames_from_decoded_frame_f_minus_1(client_owner, video_project, video_task):
    files = unzip(body(export(client_owner, video_project, format='MOT', images='true')))
    assert sorted(n for n in files if n.startswith('img1/')) == [f'img1/{f:06d}.jpg' for f in range(1, FRAMES + 1)]
    for frame in range(1, FRAMES + 1):
        assert abs(grey(files[f'img1/{frame:06d}.jpg']) - 8 * (frame - 1)) < 3, frame
    strided = unzip(body(export(client_owner, video_project, format='VIDEO_MOT_IMAGES', frame_stride=5)))
    assert sorted(n for n in strided if n.startswith('img1/')) == [
        'img1/000001.jpg',
        'img1/000006.jpg',
        'img1/000011.jpg',
    ]
    assert abs(grey(strided['img1/000011.jpg']) - 80) < 3


def test_images_only_where_a_format_has_them(client_owner, video_project, video_task, user):
    response = export(client_owner, video_project, format='CSV', images='true')
    assert response.status_code == 400
    gone = add_task(video_project, user, 'https://example.com/v.mp4', [track(FISH)])
    response = export(client_owner, video_project, format='MOT', images='true', width=64, height=48)
    assert response.status_code == 422 and f'task {gone.id}' in response.json()['detail']
    assert export(client_owner, video_project, format='MOT', width=64, height=48).status_code == 200


def test_yolo_obb_cvat_and_coco_video_export(client_owner, video_project, video_task):
    obb = unzip(body(export(client_owner, video_project, format='YOLO-OBB')))
    assert obb['labels/abcd1234-clip/000001.txt'].decode().split()[0] == '0'
    assert len(obb['labels/abcd1234-clip/000001.txt'].decode().split()) == 9
    cvat = unzip(body(export(client_owner, video_project, format='CVAT')))
    assert b'<size>12</size>' in cvat['annotations.xml']
    coco = json.loads(body(export(client_owner, video_project, format='COCO-video')))
    assert len(coco['images']) == FRAMES and len(coco['annotations']) == 15
    assert coco['videos'][0]['width'] == WIDTH


# ---------------------------------------------------------------- filters


def test_frame_stride_keeps_frame_numbers_and_extracts_only_those_frames(client_owner, video_project, video_task):
    mot = unzip(body(export(client_owner, video_project, format='MOT', frame_stride=4)))
    rows = mot_rows(mot['gt/gt.txt'].decode())
    assert [(r[0], r[1]) for r in rows] == [(1, 1), (5, 1), (5, 2), (9, 2)]
    assert json.loads(mot['summary.json'])['frame_stride'] == 4
    yolo = unzip(body(export(client_owner, video_project, format='YOLO', stride=4)))
    assert sorted(n for n in yolo if n.startswith('images/')) == [
        f'images/abcd1234-clip/{f:06d}.jpg' for f in (1, 5, 9)
    ]
    assert sorted(n for n in yolo if n.startswith('labels/')) == [
        f'labels/abcd1234-clip/{f:06d}.txt' for f in (1, 5, 9)
    ]
    nine = cv2.imdecode(np.frombuffer(yolo['images/abcd1234-clip/000009.jpg'], np.uint8), cv2.IMREAD_GRAYSCALE)
    assert abs(float(nine.mean()) - 64) < 3


def test_label_filter_keeps_those_tracks_and_classes(client_owner, video_project, video_task):
    files = unzip(body(export(client_owner, video_project, format='MOT', labels='crab')))
    assert files['gt/labels.txt'] == b'crab\n'
    rows = mot_rows(files['gt/gt.txt'].decode())
    assert {r[1] for r in rows} == {2} and {r[7] for r in rows} == {1}


def test_task_id_filter(client_owner, video_project, video_task, user):
    other = add_task(video_project, user, video_task.data['video'], [track(CRAB, 'crab')])
    both = json.loads(body(export(client_owner, video_project, format='JSON')))
    assert [t['id'] for t in both] == [video_task.id, other.id]
    only = json.loads(body(export(client_owner, video_project, format='JSON', ids=str(other.id))))
    assert [t['id'] for t in only] == [other.id]
    repeated = client_owner.get(
        f'/api/projects/{video_project.id}/export/video-frames?format=JSON&ids={other.id}&ids={video_task.id}'
    )
    assert len(json.loads(body(repeated))) == 2


def test_tasks_without_annotations_only_on_request(client_owner, video_project, video_task, user):
    add_task(video_project, user, video_task.data['video'], None)
    assert body(export(client_owner, video_project, format='CSV')).count(b'\n') == 16
    assert export(client_owner, video_project, format='CSV')['X-Export-Tasks'] == '1'
    response = export(client_owner, video_project, format='CSV', download_all_tasks='true')
    assert response['X-Export-Tasks'] == '2'


def test_bad_filter_values_are_400(client_owner, video_project, video_task):
    for params in (
        {'frame_stride': 0},
        {'frame_stride': 'x'},
        {'ids': 'a'},
        {'width': 640},
        {'mot_origin': 2},
        {'mot_origin': 'x'},
    ):
        response = export(client_owner, video_project, format='MOT', **params)
        assert response.status_code == 400, (params, response.content)


# ---------------------------------------------------------------- frame counts and sizes


def test_unreadable_video_falls_back_to_frames_count_and_request_size(client_owner, video_project, user):
    task = add_task(video_project, user, 'https://example.com/v.mp4', [track(CRAB, 'crab', frames_count=7)])
    response = export(client_owner, video_project, format='MOT')
    assert response.status_code == 422
    assert f'task {task.id}' in response.json()['detail'] and 'width and height' in response.json()['detail']
    response = export(client_owner, video_project, format='MOT', width=100, height=50)
    assert response['X-Export-Frame-Count-Sources'] == 'framesCount=1'
    files = unzip(body(response))
    assert [r[0] for r in mot_rows(files['gt/gt.txt'].decode())] == [3, 4, 5, 6, 7]
    assert 'imWidth=100' in files['seqinfo.ini'].decode()
    # formats in percents need no size at all
    csv_rows = body(export(client_owner, video_project, format='CSV')).decode().splitlines()
    assert len(csv_rows) == 6 and csv_rows[0].endswith('rotation')


def test_frames_count_disagreeing_with_the_video_is_a_warning(client_owner, video_project, user):
    url = upload_video(video_project, user)
    task = add_task(video_project, user, url, [track(CRAB, 'crab', frames_count=10)])
    response = export(client_owner, video_project, format='MOT')
    assert response['X-Export-Warnings'] == '1'
    messages = json.loads(response['X-Export-Warning-Messages'])
    assert messages == [
        f"task {task.id}: annotation framesCount [10] differs from the video's 12 frames; used the video"
    ]
    assert len(mot_rows(unzip(body(response))['gt/gt.txt'].decode())) == 10


def test_without_video_or_frames_count_the_last_keyframe_ends_the_export(client_owner, video_project, user):
    add_task(video_project, user, '', [track(CRAB, 'crab', frames_count=None)])
    response = export(client_owner, video_project, format='CSV')
    assert response['X-Export-Frame-Count-Sources'] == 'keyframes=1'
    assert response['X-Export-Warnings'] == '1'
    assert len(body(response).decode().splitlines()) == 2  # header + frame 3


def test_image_formats_name_the_tasks_whose_video_is_missing(client_owner, video_project, video_task, user):
    gone = add_task(video_project, user, f'/data/upload/{video_project.id}/deleted.mp4', [track(FISH)])
    response = export(client_owner, video_project, format='YOLO')
    assert response.status_code == 422
    detail = response.json()['detail']
    assert f'task {gone.id} (/data/upload/{video_project.id}/deleted.mp4)' in detail
    assert f'task {video_task.id}' not in detail
    assert response.json()['task_ids'] == [gone.id]


# ---------------------------------------------------------------- bad input


MALFORMED = {
    'non-numeric': [kf(1, x='left')],
    'fractional frame': [kf(2.5)],
    'frame beyond JavaScript integers': [kf(2**60)],
    'empty': [],
    'not a list': 'frames',
}


def test_malformed_sequences_are_skipped_with_a_warning_per_track(client_owner, video_project, video_task, user):
    results = [track(seq, 'fish', result_id=f'bad-{i}') for i, seq in enumerate(MALFORMED.values())]
    results += [
        {**track(FISH, 'fish', result_id='no-value'), 'value': 'oops'},
        track(FISH, 'fish', result_id='no-label', labels=[]),
        track(FISH, 'crab', result_id='fine'),
    ]
    bad = add_task(video_project, user, video_task.data['video'], results, raw=True)
    for name in ('MOT', 'JSON', 'CSV', 'YOLO', 'CVAT', 'COCO-video'):
        response = export(client_owner, video_project, format=name)
        assert response.status_code == 200, (name, response.content)
        assert response['X-Export-Warnings'] == '7', name
        data = body(response)
    messages = json.loads(response['X-Export-Warning-Messages'])
    assert all(m.startswith(f'task {bad.id}: track ') for m in messages)
    assert 'must be a number' in messages[0] and '"x"' in messages[0]
    assert 'whole number, got 2.5' in messages[1] and f'got {2**60}' in messages[2]
    assert 'no keyframes' in messages[3] and 'must be a list' in messages[4]
    assert 'value is not an object' in messages[5] and 'has no label' in messages[6]
    coco = json.loads(data)
    assert coco['info']['tasks'][1]['tracks'] == 1  # the good track of the bad task is exported
    zipped = unzip(body(export(client_owner, video_project, format='MOT')))
    summary = json.loads(zipped['summary.json'])
    assert len(summary['tasks'][1]['warnings']) == 7


def test_cancelled_annotations_are_not_exported(client_owner, video_project, video_task, user):
    add_task(video_project, user, video_task.data['video'], [track(CRAB, 'crab')], cancelled=True)
    assert body(export(client_owner, video_project, format='CSV')).count(b'\n') == 16


def test_project_without_video_tracking_is_400(client_owner, user):
    project = make_project(user, IMAGE_BOXES, 'images')
    response = export(client_owner, project, format='MOT')
    assert response.status_code == 400
    assert 'no video tracking' in response.json()['detail']


def test_unknown_or_missing_format_is_400_listing_the_valid_ones(client_owner, video_project, video_task):
    for params in ({'format': 'VOC'}, {}):
        response = export(client_owner, video_project, **params)
        assert response.status_code == 400
        detail = response.json()['detail']
        assert 'MOT' in detail and 'YOLO-OBB' in detail and 'COCO-video' in detail and 'VIDEO_MOT' in detail
        assert 'MOT' in response.json()['valid_formats']


# ---------------------------------------------------------------- permissions


def test_anonymous_is_401(client, video_project, video_task):
    assert export(client, video_project, format='MOT').status_code == 401


def test_another_organization_cannot_export(client_stranger, video_project, video_task):
    response = export(client_stranger, video_project, format='MOT')
    assert response.status_code in (403, 404)
    assert b'fish' not in response.content


def test_a_member_of_the_organization_can_export(video_project, video_task, organization):
    from tests.conftest import logged_in_client

    member = make_user('member@example.org', organization)
    assert export(logged_in_client(member), video_project, format='CSV').status_code == 200


# ---------------------------------------------------------------- video files


def test_uploads_resolve_only_inside_the_upload_root_and_the_organization(video_project, video_task, user):
    from ls_extensions.video.export import resolve_video

    url = video_task.data['video']
    assert resolve_video(video_project, url) == Path(settings.MEDIA_ROOT, url[len('/data/') :]).resolve()
    assert resolve_video(video_project, url.replace('abcd1234-', 'abcd1234%2D')) is not None  # URL-encoded
    assert resolve_video(video_project, f'/data/upload/{video_project.id}/../../../../etc/passwd') is None
    assert resolve_video(video_project, '/data/upload/%2e%2e/%2e%2e/etc/passwd') is None
    assert resolve_video(video_project, '/data/upload/') is None
    assert resolve_video(video_project, 'https://example.com' + url) is None
    assert resolve_video(video_project, None) is None
    # a file in the upload folder that is no upload of this organization is not read
    stranger = make_user('other-org@example.org')
    foreign = make_project(stranger, VIDEO_TRACKING, 'theirs')
    theirs = upload_video(foreign, stranger, 'secret.mp4')
    assert resolve_video(video_project, theirs) is None
    assert resolve_video(foreign, theirs) is not None
    with override_settings(HOSTNAME='http://ls.example:8080'):
        assert resolve_video(video_project, 'http://ls.example:8080' + url) is not None
    with override_settings(FORCE_SCRIPT_NAME='/ls'):
        assert resolve_video(video_project, '/ls' + url) is not None


def test_local_files_resolve_only_inside_a_storage_of_the_project(video_project, tmp_path):
    from io_storages.localfiles.models import LocalFilesImportStorage

    from ls_extensions.video.export import resolve_video

    root = tmp_path / 'root'
    (root / 'videos').mkdir(parents=True)
    (root / 'private').mkdir()
    write_video(root / 'videos' / 'a b.mp4', frames=3, width=WIDTH, height=HEIGHT)
    write_video(root / 'private' / 'p.mp4', frames=3, width=WIDTH, height=HEIGHT)
    os.symlink(root / 'private' / 'p.mp4', root / 'videos' / 'link.mp4')
    LocalFilesImportStorage.objects.create(project=video_project, path=str(root / 'videos'))
    with override_settings(LOCAL_FILES_DOCUMENT_ROOT=str(root)):
        assert resolve_video(video_project, '/data/local-files/?d=videos/a%20b.mp4') == root / 'videos' / 'a b.mp4'
        assert resolve_video(video_project, '/data/local-files/?d=videos/a b.mp4') == root / 'videos' / 'a b.mp4'
        assert resolve_video(video_project, '/data/local-files/?d=private/p.mp4') is None  # no storage of ours
        assert resolve_video(video_project, '/data/local-files/?d=videos/link.mp4') is None  # symlink out
        assert resolve_video(video_project, '/data/local-files/?d=videos/../private/p.mp4') is None
        assert resolve_video(video_project, '/data/local-files/?d=../../etc/passwd') is None
    with override_settings(LOCAL_FILES_DOCUMENT_ROOT=str(root / 'private')):
        assert resolve_video(video_project, '/data/local-files/?d=videos/a b.mp4') is None  # outside the root


def test_local_files_video_drives_frame_count(client_owner, video_project, user, tmp_path):
    from io_storages.localfiles.models import LocalFilesImportStorage

    write_video(tmp_path / 'seq.mp4', frames=6, width=WIDTH, height=HEIGHT)
    LocalFilesImportStorage.objects.create(project=video_project, path=str(tmp_path))
    add_task(video_project, user, f'/data/local-files/?d={tmp_path.name}/seq.mp4', [track(CRAB, 'crab')])
    with override_settings(LOCAL_FILES_DOCUMENT_ROOT=str(tmp_path.parent)):
        response = export(client_owner, video_project, format='MOT')
        files = unzip(body(response))
    assert response['X-Export-Frame-Count-Sources'] == 'video=1'
    assert [r[0] for r in mot_rows(files['gt/gt.txt'].decode())] == [3, 4, 5, 6]


def test_frame_reader_decodes_once_across_windows_and_stops_at_the_end(tmp_path, monkeypatch):
    from ls_extensions.video import export as video_export
    from ls_extensions.video import frames
    from ls_extensions.video.export import reader as frame_reader

    path = write_video(tmp_path / 'v.mp4', frames=10, width=WIDTH, height=HEIGHT)
    opened = []
    real = frames.iter_frames

    def counting(*args):
        opened.append(args[0])
        return real(*args)

    monkeypatch.setattr(frame_reader, 'iter_frames', counting)  # looked up where FrameReader lives
    reader = video_export.FrameReader(path)

    def levels(frames_wanted):
        return [
            (f, round(float(cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_GRAYSCALE).mean()) / 8))
            for f, jpeg in reader(frames_wanted)
        ]

    assert levels(range(1, 4)) == [(1, 0), (2, 1), (3, 2)]
    assert levels(range(6, 13, 3)) == [(6, 5), (9, 8)]  # 12 is past the end
    assert len(opened) == 1
    assert levels([2]) == [(2, 1)]  # asked again from the start: a new pass
    assert len(opened) == 2
    reader.close()


# ---------------------------------------------------------------- streaming


class _BigExporter:
    """Writes `total` bytes in 64 KiB pieces, like a writer streaming a large zip."""

    name, ext = 'BIG', 'bin'

    def __init__(self, total):
        self.total = total
        self.piece = os.urandom(1 << 16)

    def write(self, out, export):
        for _ in range(self.total // len(self.piece)):
            out.write(self.piece)


def test_streaming_memory_stays_flat_and_a_closed_stream_stops_the_writer():
    from ls_extensions.video.export import stream_export
    from ls_extensions.video.formats import VideoExport

    total = 96 << 20
    exporter = _BigExporter(total)
    tracemalloc.start()
    received = 0
    for chunk in stream_export(exporter, VideoExport([], [])):
        received += len(chunk)
        time.sleep(0)  # let the writer run ahead as far as the queue lets it
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert received == total
    assert peak < 8 << 20, f'peak {peak / 2**20:.1f} MiB for a {total >> 20} MiB export'

    stream = stream_export(_BigExporter(total), VideoExport([], []))
    next(stream)
    stream.close()  # the client went away
    deadline = time.monotonic() + 5
    while any(t.name.startswith('video-export-') for t in threading.enumerate()) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(t.name.startswith('video-export-') for t in threading.enumerate())


def test_an_error_while_streaming_ends_the_stream_with_it():
    from ls_extensions.video.export import stream_export
    from ls_extensions.video.formats import VideoExport

    class Failing(_BigExporter):
        def write(self, out, export):
            out.write(b'x' * (1 << 17))
            raise RuntimeError('disk on fire')

    with pytest.raises(RuntimeError, match='disk on fire'):
        b''.join(stream_export(Failing(0), VideoExport([], [])))


# ---------------------------------------------------------------- API schema


def test_endpoint_is_in_the_api_schema(client_owner):
    response = client_owner.get('/docs/api/schema/', {'format': 'json'})
    assert response.status_code == 200
    operation = response.json()['paths']['/api/projects/{id}/export/video-frames']['get']
    assert operation['operationId'] == 'api_projects_export_video_frames'
    assert 'Export' in operation['tags']
    names = {p['name'] for p in operation['parameters']}
    assert {'id', 'format', 'ids', 'labels', 'frame_stride', 'width', 'height', 'download_all_tasks'} <= names
    assert 'MOT' in next(p for p in operation['parameters'] if p['name'] == 'format')['description']


# ---------------------------------------------------------------- engine additions made for this export


def test_stride_json_marks_whether_the_box_is_on_the_next_exported_frame(client_owner, video_project, video_task):
    tasks = json.loads(body(export(client_owner, video_project, format='JSON', frame_stride=2)))
    results = {r['id']: r for r in tasks[0]['annotations'][0]['result']}
    fish = results['r-fish']['value']['sequence']
    assert [(e['frame'], e['enabled']) for e in fish] == [(1, True), (3, True), (5, False)]
    assert [e['frame'] for e in results['r-crab']['value']['sequence']] == [3, 5, 7, 9, 11]
    assert results['r-fish']['meta']['frame_stride'] == 2


def test_format_rows_is_printf_byte_for_byte():
    from ls_extensions.video.formats.streaming import _template, format_rows

    rng = np.random.default_rng(7)
    n = 20_000
    tricky = [-0.0, 0.0, -0.001, 0.004999, 0.005, -0.005, 1e-300, 0.015, 1.005, 2.675, 1e15, -123456.785]
    for _ in range(10):
        floats = [rng.normal(0, 10.0 ** rng.integers(-3, 6), n) for _ in range(3)]
        floats[0][:1000] = np.round(rng.uniform(-100, 100, 1000) * 1000) / 1000  # x.xx5: near ties
        floats[1][:1000] = rng.integers(-(10**6), 10**6, 1000) / 8  # exact binary ties
        floats[2][: len(tricky)] = tricky
        parts = [(rng.integers(1, 10**6, n), 0), ',7,', (floats[0], 2), ',', (floats[1], 2), ',']
        parts += [(floats[2], 3), ',1,', (rng.integers(-5, 5, n), 0), '\n']
        rows = zip(*(p[0].tolist() for p in parts if not isinstance(p, str)), strict=True)
        assert format_rows(parts) == ''.join(_template(parts) % row for row in rows).encode()
    assert format_rows([(np.array([1e300, 1.5]), 2), '\n']) == f'{1e300:.2f}\n1.50\n'.encode()  # huge: Python path
    assert format_rows([(np.array([], float), 2), '\n']) == b''


def test_plain_keyframes_fast_path_gives_what_the_item_by_item_path_gives(monkeypatch):
    import random

    from ls_extensions.video import interpolation

    def both(sequence):
        outcomes = []
        for fast in (True, False):
            if not fast:
                monkeypatch.setattr(interpolation, '_plain_keyframes', lambda _: None)
            try:
                outcomes.append(interpolation.normalize_sequence(sequence).tobytes())
            except interpolation.MalformedSequence as error:
                outcomes.append(str(error))
        monkeypatch.undo()
        return outcomes

    rng = random.Random(3)
    odd = [0, 1, -1, 2.5, 1e308, 10**400, float('nan'), float('inf'), True, None, '3', 2**53 + 1, 2**63, 7.0, -0.0]
    for _ in range(3000):
        sequence = []
        for _ in range(rng.randint(1, 4)):
            item = {}
            for key in ('frame', 'enabled', 'x', 'y', 'width', 'height', 'rotation'):
                if rng.random() < 0.05:
                    continue
                if key == 'frame':
                    item[key] = rng.choice([rng.randint(1, 100), float(rng.randint(1, 100))] * 6 + odd)
                elif key == 'enabled':
                    item[key] = rng.choice([True, False, True, False, 1, 0, None, 'x'])
                else:
                    item[key] = rng.choice([rng.uniform(-100, 100), rng.randint(-5, 5)] * 6 + odd)
            sequence.append(item)
        fast, slow = both(sequence)
        assert fast == slow, sequence
