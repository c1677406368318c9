"""The per-frame video formats inside Label Studio's Export dialog flow and its snapshot exports.

Also the guards: these tests fail if Label Studio moves or renames what export_hooks.py routes, or if
its Export dialog stops reading the format list or the `filename` header the way it does in 1.23.2.
"""

from __future__ import annotations

import io
import json
import re
import zipfile
from pathlib import Path

import pytest
from django.urls import resolve, reverse

from tests.conftest import make_project
from tests.label_configs import IMAGE_BOXES
from tests.video.test_export_api import CRAB, FISH, add_task, track, upload_video

VIDEO_NAMES = [
    'VIDEO_JSON',
    'VIDEO_CSV',
    'VIDEO_MOT',
    'VIDEO_MOT_IMAGES',
    'VIDEO_MOT_PREDICTIONS',
    'VIDEO_YOLO',
    'VIDEO_YOLO_OBB',
    'VIDEO_CVAT',
    'VIDEO_COCO_VIDEO',
]


@pytest.fixture
def video_task(video_project, user):
    return add_task(video_project, user, upload_video(video_project, user), [track(FISH, 'fish'), track(CRAB, 'crab')])


def formats(client, project):
    response = client.get(f'/api/projects/{project.id}/export/formats')
    assert response.status_code == 200, response.content
    return response.json()


def unzip(data: bytes) -> dict[str, bytes]:
    archive = zipfile.ZipFile(io.BytesIO(data))
    return {name: archive.read(name) for name in archive.namelist()}


def content(response) -> bytes:
    assert response.status_code == 200, getattr(response, 'content', response)
    return b''.join(response.streaming_content) if response.streaming else response.content


# ---------------------------------------------------------------- the format list


def test_video_projects_list_the_video_formats_after_label_studios_enabled_ones(client_owner, video_project):
    listed = formats(client_owner, video_project)
    names = [f['name'] for f in listed]
    ours = [n for n in names if n.startswith('VIDEO_')]
    assert ours == VIDEO_NAMES
    first_ours, last_ours = names.index(ours[0]), names.index(ours[-1])
    assert all(not f.get('disabled') for f in listed[:first_ours])  # Label Studio's usable ones stay first
    assert all(f.get('disabled') for f in listed[last_ours + 1 :])
    assert names[0] == 'JSON'  # the dialog preselects the first entry: still Label Studio's JSON
    mot = listed[names.index('VIDEO_MOT')]
    assert 'MOT' in mot['title'] and mot['description'] and mot['tags'] == ['Video frames']
    assert not mot.get('disabled')


def test_other_projects_keep_label_studios_list(client_owner, user):
    from data_export.models import DataExport

    project = make_project(user, IMAGE_BOXES, 'images')
    assert formats(client_owner, project) == json.loads(json.dumps(DataExport.get_export_formats(project)))


def test_format_list_keeps_label_studios_permissions(client, client_stranger, video_project):
    assert client.get(f'/api/projects/{video_project.id}/export/formats').status_code == 401
    assert client_stranger.get(f'/api/projects/{video_project.id}/export/formats').status_code in (403, 404)


# ---------------------------------------------------------------- the dialog's download


def test_dialog_download_of_a_video_format_streams_it_with_its_filename(client_owner, video_project, video_task):
    response = client_owner.get(f'/api/projects/{video_project.id}/export', {'exportType': 'VIDEO_MOT'})
    assert response.streaming
    assert response['filename'].endswith('.zip') and 'video-mot' in response['filename']
    files = unzip(content(response))
    assert files['gt/labels.txt'] == b'fish\ncrab\n'
    assert len(files['gt/gt.txt'].splitlines()) == 15


def test_dialog_mot_with_images_extracts_the_frames(client_owner, video_project, video_task):
    response = client_owner.get(f'/api/projects/{video_project.id}/export', {'exportType': 'VIDEO_MOT_IMAGES'})
    files = unzip(content(response))
    assert sorted(n for n in files if n.startswith('img1/')) == [f'img1/{f:06d}.jpg' for f in range(1, 13)]
    assert 'gt/gt.txt' in files


def test_dialog_passes_its_task_selection(client_owner, video_project, video_task, user):
    other = add_task(video_project, user, video_task.data['video'], [track(CRAB, 'crab')])
    response = client_owner.get(f'/api/projects/{video_project.id}/export?exportType=VIDEO_JSON&ids[]={other.id}')
    assert [t['id'] for t in json.loads(content(response))] == [other.id]


def test_label_studio_formats_still_go_through_label_studio(client_owner, video_project, video_task):
    response = client_owner.get(f'/api/projects/{video_project.id}/export', {'exportType': 'JSON'})
    tasks = json.loads(content(response))
    sequence = tasks[0]['annotations'][0]['result'][0]['value']['sequence']
    assert sequence == FISH  # keyframes only, as stored: Label Studio's own export
    assert response['filename'].startswith(f'project-{video_project.id}-at-')


def test_dialog_errors(client_owner, client_stranger, client, video_project, video_task, user):
    url = f'/api/projects/{video_project.id}/export'
    unknown = client_owner.get(url, {'exportType': 'VIDEO_VOC'})
    assert unknown.status_code == 400 and 'VIDEO_MOT' in unknown.json()['detail']
    images = make_project(user, IMAGE_BOXES, 'images')
    refused = client_owner.get(f'/api/projects/{images.id}/export', {'exportType': 'VIDEO_MOT'})
    assert refused.status_code == 400 and 'no video tracking' in refused.json()['detail']
    assert client_stranger.get(url, {'exportType': 'VIDEO_MOT'}).status_code in (403, 404)
    assert client.get(url, {'exportType': 'VIDEO_MOT'}).status_code == 401


# ---------------------------------------------------------------- snapshots


def snapshot(client, project):
    response = client.post(f'/api/projects/{project.id}/exports/', {}, content_type='application/json')
    assert response.status_code == 201, response.content
    assert response.json()['status'] == 'completed'  # no Redis: Label Studio exports inline
    return response.json()['id']


def test_snapshot_converts_to_a_video_format_and_downloads(
    client_owner, video_project, video_task, worker, django_capture_on_commit_callbacks
):
    from data_export.models import ConvertedFormat

    snapshot_id = snapshot(client_owner, video_project)
    base = f'/api/projects/{video_project.id}/exports/{snapshot_id}'
    with django_capture_on_commit_callbacks() as published:  # the request only records and publishes
        response = client_owner.post(
            f'{base}/convert', {'export_type': 'VIDEO_MOT', 'frame_stride': 2}, content_type='application/json'
        )
    assert response.status_code == 200, response.content
    converted = ConvertedFormat.objects.get(id=response.json()['converted_format'])
    assert response.json()['export_type'] == 'VIDEO_MOT'
    assert converted.status == ConvertedFormat.Status.CREATED and len(published) == 1
    with worker():
        published[0]()  # the publish after commit: the Celery task runs (eagerly, as the worker would)
    converted.refresh_from_db()
    assert converted.status == ConvertedFormat.Status.COMPLETED, converted.traceback
    listed = client_owner.get(f'/api/projects/{video_project.id}/exports/').json()[0]['converted_formats']
    assert [(c['export_type'], c['status']) for c in listed] == [('VIDEO_MOT', 'completed')]
    again = client_owner.post(f'{base}/convert', {'export_type': 'VIDEO_MOT'}, content_type='application/json')
    assert again.status_code == 400
    download = client_owner.get(f'{base}/download', {'exportType': 'VIDEO_MOT'})
    assert download['filename'].endswith('.zip')
    files = unzip(content(download))
    frames = [int(line.split(b',')[0]) for line in files['gt/gt.txt'].splitlines()]
    assert frames == [1, 3, 5, 3, 5, 7, 9, 11]  # every second frame, from the video's 12
    assert json.loads(files['summary.json'])['frame_stride'] == 2


def test_snapshot_download_before_conversion_is_404(client_owner, video_project, video_task):
    snapshot_id = snapshot(client_owner, video_project)
    base = f'/api/projects/{video_project.id}/exports/{snapshot_id}'
    assert client_owner.get(f'{base}/download', {'exportType': 'VIDEO_CSV'}).status_code == 404
    plain = client_owner.get(f'{base}/download')  # Label Studio's own download still works
    assert json.loads(content(plain))[0]['id'] == video_task.id


def test_snapshot_conversion_refusals(client_owner, client_stranger, video_project, video_task, user, worker):
    from data_export.models import ConvertedFormat

    gone = add_task(video_project, user, '/data/upload/1/gone.mp4', [track(FISH)])
    snapshot_id = snapshot(client_owner, video_project)
    base = f'/api/projects/{video_project.id}/exports/{snapshot_id}'
    with worker():  # known only once the worker reads the snapshot: the conversion fails with the reason
        response = client_owner.post(f'{base}/convert', {'export_type': 'VIDEO_YOLO'}, content_type='application/json')
    assert response.status_code == 200, response.content
    failed = ConvertedFormat.objects.get(export_id=snapshot_id, export_type='VIDEO_YOLO')
    assert failed.status == ConvertedFormat.Status.FAILED and f'task {gone.id}' in failed.traceback
    listed = client_owner.get(f'/api/projects/{video_project.id}/exports/').json()[0]['converted_formats']
    assert [(c['export_type'], c['status']) for c in listed] == [('VIDEO_YOLO', 'failed')]
    bad_options = client_owner.post(
        f'{base}/convert', {'export_type': 'VIDEO_CSV', 'images': True}, content_type='application/json'
    )
    assert bad_options.status_code == 400 and 'CSV has no frame images' in bad_options.content.decode()
    unknown = client_owner.post(f'{base}/convert', {'export_type': 'VIDEO_X'}, content_type='application/json')
    assert unknown.status_code == 400 and 'VIDEO_MOT' in unknown.json()['detail']
    for export_type in ('VIDEO_MOT', 'JSON_MIN'):  # Label Studio's own view would let another organization in
        stranger = client_stranger.post(
            f'{base}/convert', {'export_type': export_type}, content_type='application/json'
        )
        assert stranger.status_code in (403, 404), export_type
    wrong_project = client_owner.post(
        f'/api/projects/{video_project.id + 1000}/exports/{snapshot_id}/convert',
        {'export_type': 'JSON_MIN'},
        content_type='application/json',
    )
    assert wrong_project.status_code == 404
    assert client_stranger.get(f'{base}/download', {'exportType': 'VIDEO_MOT'}).status_code in (403, 404)
    # Label Studio's formats still go through Label Studio's conversion
    ls = client_owner.post(f'{base}/convert', {'export_type': 'JSON_MIN'}, content_type='application/json')
    assert ls.status_code == 200, ls.content


def test_snapshot_of_a_project_without_video_tracking_is_refused(client_owner, user):
    project = make_project(user, IMAGE_BOXES, 'images')
    snapshot_id = snapshot(client_owner, project)
    response = client_owner.post(
        f'/api/projects/{project.id}/exports/{snapshot_id}/convert',
        {'export_type': 'VIDEO_MOT'},
        content_type='application/json',
    )
    assert response.status_code == 400 and 'no video tracking' in response.json()['detail']


# ---------------------------------------------------------------- guards: Label Studio under us


ROUTED = {
    # our view name: (Label Studio's URL name in data_export.urls, Label Studio's view class name, kwargs)
    'project-export': ('ExportAPI', {'pk': 7}),
    'project-export-formats': ('ExportFormatsListAPI', {'pk': 7}),
    'project-exports-convert': ('ExportConvertAPI', {'pk': 7, 'export_pk': 3}),
    'project-exports-download': ('ExportDownloadAPI', {'pk': 7, 'export_pk': 3}),
}


@pytest.mark.parametrize('name', sorted(ROUTED))
def test_we_shadow_label_studios_export_urls_with_subclasses_of_its_views(name):
    import data_export.api

    class_name, kwargs = ROUTED[name]
    label_studio_path = reverse(f'data_export:api-projects:{name}', kwargs=kwargs)
    assert reverse(f'ls_ext_video:{name}', kwargs=kwargs) == label_studio_path
    view = resolve(label_studio_path).func.view_class
    label_studio_view = getattr(data_export.api, class_name)
    assert view.__module__ == 'ls_extensions.video.export_hooks'
    assert issubclass(view, label_studio_view) and view is not label_studio_view


def test_label_studio_format_list_and_converter_still_have_the_shape_we_extend(video_project):
    from data_export.models import DataExport
    from label_studio_sdk.converter.converter import Format

    listed = DataExport.get_export_formats(video_project)
    assert all({'name', 'title', 'description'} <= set(f) for f in listed)
    assert not any(f['name'].startswith('VIDEO_') for f in listed)
    assert not any(name.startswith('VIDEO_') for name in Format.__members__)  # no clash with our names


def _dialog_bundle() -> str:
    import label_studio

    bundle = Path(label_studio.__file__).resolve().parent.parent / 'web' / 'dist' / 'apps' / 'labelstudio' / 'main.js'
    return bundle.read_text(errors='replace')


def test_the_export_dialog_still_reads_the_list_and_saves_under_the_filename_header():
    bundle = _dialog_bundle()
    assert 'exportFormats:"/projects/:pk/export/formats"' in bundle
    assert 'export:"/projects/:pk/export"' in bundle
    assert re.search(r'callApi\("exportRaw"', bundle)
    assert 'headers.get("filename")' in bundle


def test_label_studios_documentation_stays_on_the_routed_urls(client_owner):
    paths = client_owner.get('/docs/api/schema/', {'format': 'json'}).json()['paths']
    assert paths['/api/projects/{id}/export']['get']['summary'] == '[Deprecated] Easy export of tasks and annotations'
    assert paths['/api/projects/{id}/export/formats']['get']['summary'] == '[Deprecated] Get export formats'
    assert paths['/api/projects/{id}/exports/{export_pk}/convert']['post']['summary'] == 'Export conversion'
    download = paths['/api/projects/{id}/exports/{export_pk}/download']['get']
    assert download['summary'] == 'Download export snapshot as file in specified format'
