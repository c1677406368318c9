"""Exporting a model's video predictions (`source=predictions`, `VIDEO_MOT_PREDICTIONS`) to score it with MOT tools.

The scene is test_export_api.py's: one 12-frame 64x48 uploaded video, annotated with a "fish" track (frames
1-5, x = 10..50 %) and a "crab" track (frames 3-12). Predictions are Label Studio `Prediction` rows whose
results are `videorectangle` regions as our model server writes them (a region `score`, `enabled` spans).
motmetrics reads both MOT exports with its own loader and matches them by IoU (distance threshold 0.5).
"""

from __future__ import annotations

import csv
import io
import json

import numpy as np
import pytest

from ls_extensions.video.track_keyframes import track_region
from tests.conftest import make_project
from tests.label_configs import IMAGE_BOXES
from tests.video.reference_interpolation import reference_expand
from tests.video.test_export_api import CRAB, FISH, FRAMES, HEIGHT, WIDTH, add_task, body, export, track, unzip
from tests.video.test_export_api import upload_video as upload

STEM = 'abcd1234-clip'  # the sequence name both MOT exports give the uploaded clip.mp4
GT, HYP = 'gt/gt.txt', f'{STEM}.txt'


def region(annotated: dict, score: float | None, **value) -> dict:
    """An annotation's track as a predicted region: the same keyframes (unless `value` changes them), a score."""
    result = {**annotated, 'origin': 'prediction', 'value': {**annotated['value'], **value}}
    if score is not None:
        result['score'] = score
    return result


def predict(task, version: str, results: list[dict], score: float | None = None):
    from tasks.models import Prediction

    return Prediction.objects.create(
        task=task, project=task.project, model_version=version, score=score, result=results
    )


def shifted(sequence: list[dict], dx: float) -> list[dict]:
    return [{**keyframe, 'x': keyframe['x'] + dx} for keyframe in sequence]


@pytest.fixture
def scene(video_project, user):
    """The annotated task, with predictions of v1 (the annotation itself, scored) and v2 (the fish 30 % right)."""
    task = add_task(video_project, user, upload(video_project, user), [track(FISH, 'fish'), track(CRAB, 'crab')])
    fish, crab = track(FISH, 'fish'), track(CRAB, 'crab')
    predict(task, 'v1', [region(fish, 0.9), region(crab, 0.8)], score=0.85)
    predict(task, 'v2', [region(fish, 0.6, sequence=shifted(FISH, 30.0)), region(crab, None)], score=0.7)
    video_project.model_version = 'v1'
    video_project.save(update_fields=['model_version'])
    return task


def mot_scores(gt_text: bytes, hyp_text: bytes, tmp_path) -> dict:
    """motmetrics on the two files as written: its MOT Challenge loader, IoU matching at 0.5."""
    import motmetrics as mm

    (tmp_path / 'gt.txt').write_bytes(gt_text)
    (tmp_path / 'hyp.txt').write_bytes(hyp_text)
    gt = mm.io.loadtxt(str(tmp_path / 'gt.txt'), fmt='mot15-2D', min_confidence=1)
    hyp = mm.io.loadtxt(str(tmp_path / 'hyp.txt'), fmt='mot15-2D')
    accumulator = mm.utils.compare_to_groundtruth(gt, hyp, 'iou', distth=0.5)
    names = ['mota', 'num_objects', 'num_misses', 'num_false_positives', 'num_switches']
    row = mm.metrics.create().compute(accumulator, metrics=names, name='predictions').iloc[0]
    return {name: float(row[name]) for name in names}


def downloaded(client, snapshot_url: str, export_type: str) -> bytes:
    response = client.get(f'{snapshot_url}/download', {'exportType': export_type})
    assert response.status_code == 200, response
    return b''.join(response.streaming_content)


def rows_of(text: bytes) -> list[list[str]]:
    return [line.split(',') for line in text.decode().splitlines()]


# ---------------------------------------------------------------- MOT: scoring the model against the annotations


def test_predictions_identical_to_the_annotations_score_mota_1(
    client_owner, video_project, scene, tmp_path, numpy_for_motmetrics
):
    truth = unzip(body(export(client_owner, video_project, format='MOT')))
    response = export(client_owner, video_project, format='MOT', source='predictions')  # v1: the project's version
    assert response['X-Export-Source'] == 'predictions' and json.loads(response['X-Export-Model-Version']) == 'v1'
    predicted = unzip(body(response))
    assert set(predicted) == {HYP, 'meta/labels.txt', 'summary.json'}  # a tracker's output, beside the gt's sequence
    assert predicted['meta/labels.txt'] == truth['gt/labels.txt'] == b'fish\ncrab\n'
    rows, gt_rows = rows_of(predicted[HYP]), rows_of(truth[GT])
    assert [r[:6] for r in rows] == [r[:6] for r in gt_rows]  # same frames, ids and boxes as the annotations
    assert {(r[1], r[6], r[7], r[8]) for r in rows} == {('1', '0.9000', '1', '-1'), ('2', '0.8000', '2', '-1')}
    summary = json.loads(predicted['summary.json'])
    assert (summary['source'], summary['model_version'], summary['boxes']) == ('predictions', 'v1', 15)
    scores = mot_scores(truth[GT], predicted[HYP], tmp_path)
    assert scores == {'mota': 1.0, 'num_objects': 15, 'num_misses': 0, 'num_false_positives': 0, 'num_switches': 0}


def test_a_shifted_track_scores_the_known_lower_mota(
    client_owner, video_project, scene, tmp_path, numpy_for_motmetrics
):
    truth = unzip(body(export(client_owner, video_project, format='MOT')))
    predicted = unzip(body(export(client_owner, video_project, format='MOT', source='predictions', model_version='v2')))
    rows = rows_of(predicted[HYP])
    fish = [r for r in rows if r[1] == '1']
    assert [float(r[2]) for r in fish] == [26.6, 33.0, 39.4, 45.8, 52.2]  # 30 % of 64 px right of the truth
    assert {r[6] for r in fish} == {'0.6000'} and {r[6] for r in rows if r[1] == '2'} == {'0.7000'}  # else its own
    # the fish's 5 boxes overlap nothing (5 misses, 5 false positives); the crab's 10 match: 1 - 10 / 15
    scores = mot_scores(truth[GT], predicted[HYP], tmp_path)
    assert scores['mota'] == pytest.approx(1 / 3)
    assert (scores['num_objects'], scores['num_misses'], scores['num_false_positives']) == (15, 5, 5)
    assert scores['num_switches'] == 0


def test_motmetrics_own_app_scores_the_two_exports_as_unzipped(
    client_owner, video_project, scene, user, tmp_path, monkeypatch, capsys, numpy_for_motmetrics
):
    """`eval_motchallenge GT_DIR TESTS_DIR` on the zips as they are: several videos give the ground truth its
    `<sequence>/gt/gt.txt` folders, and the predictions their `<sequence>.txt` files beside each other."""
    import zipfile

    from motmetrics.apps import eval_motchallenge

    other = add_task(video_project, user, upload(video_project, user, 'other.mp4'), [track(CRAB, 'crab')])
    predict(other, 'v2', [region(track(CRAB, 'crab'), 0.5)])  # exact: MOTA 1 on its 10 boxes
    for folder, params in (('gt', {}), ('tests', {'source': 'predictions', 'model_version': 'v2'})):
        data = body(export(client_owner, video_project, format='MOT', **params))
        zipfile.ZipFile(io.BytesIO(data)).extractall(tmp_path / folder)
    monkeypatch.setattr('sys.argv', ['eval_motchallenge', str(tmp_path / 'gt'), str(tmp_path / 'tests')])
    eval_motchallenge.main()
    header, *rows = capsys.readouterr().out.splitlines()
    mota = {row.split()[0]: row.split()[header.split().index('MOTA') + 1] for row in rows}
    # the shifted fish: 10 errors in 15 boxes; the other video exact; overall 1 - 10 / 25
    assert mota == {STEM: '33.3%', 'abcd1234-other': '100.0%', 'OVERALL': '60.0%'}


def test_the_default_version_is_the_projects_else_the_newest_predictions(client_owner, video_project, scene):
    # Label Studio's project.model_version may be an ML backend's title, which no prediction carries
    for project_version, expected in (('v2', 'v2'), ('', 'v2'), ('Our backend title', 'v2'), ('v1', 'v1')):
        video_project.model_version = project_version
        video_project.save(update_fields=['model_version'])
        response = export(client_owner, video_project, format='MOT', source='predictions')
        assert json.loads(unzip(body(response))['summary.json'])['model_version'] == expected, project_version


# ---------------------------------------------------------------- boxes as the UI draws them, scores, other formats


def test_a_model_servers_track_is_exported_on_every_frame_the_ui_draws_it(client_owner, video_project, user):
    """A region made by our model server's reducer (two spans, so `enabled` gaps) against the UI's rule."""
    task = add_task(video_project, user, upload(video_project, user), None)
    frames = np.array([1, 2, 3, 4, 8, 9, 10])  # seen, lost for 3 frames (beyond max_gap=2), seen again
    xyxy = np.array([[4 + 3 * f, 6, 20 + 3 * f, 18 + f] for f in frames], np.float64)
    made = track_region(
        frames,
        xyxy,
        WIDTH,
        HEIGHT,
        FRAMES,
        fps=25,
        label='fish',
        region_id='t1',
        from_name='box',
        to_name='video',
        scores=np.linspace(0.5, 0.8, len(frames)),
        max_gap=2,
    )
    assert any(not keyframe['enabled'] for keyframe in made['value']['sequence'])
    predict(task, 'm1', [made])
    response = export(client_owner, video_project, format='CSV', source='predictions')  # an unannotated task too
    rows = list(csv.DictReader(io.StringIO(body(response).decode())))
    drawn = reference_expand(made['value']['sequence'], FRAMES)
    assert [int(r['frame']) for r in rows] == [b['frame'] for b in drawn]
    assert not {5, 6, 7} & {b['frame'] for b in drawn}  # the gap: the UI draws nothing there
    for row, box in zip(rows, drawn, strict=True):
        for name in ('x', 'y', 'width', 'height'):
            assert float(row[name]) == pytest.approx(box[name], abs=1e-9), (row['frame'], name)
    assert [float(r['score']) for r in rows] == [made['score']] * len(rows)  # the region's, as stored
    assert list(rows[0])[-1] == 'score'


def test_json_rewrites_the_versions_predictions_and_leaves_the_annotations_as_stored(
    client_owner, video_project, scene
):
    tasks = json.loads(body(export(client_owner, video_project, format='JSON', source='predictions')))
    (task,) = tasks
    assert [p['model_version'] for p in task['predictions']] == ['v1']  # only the exported version
    fish = task['predictions'][0]['result'][0]
    assert [e['frame'] for e in fish['value']['sequence']] == [1, 2, 3, 4, 5] and fish['score'] == 0.9
    assert fish['meta']['interpolated'] is True
    assert task['annotations'][0]['result'][0]['value']['sequence'] == FISH  # same result id: untouched


def test_coco_video_carries_the_track_score(client_owner, video_project, scene):
    document = json.loads(body(export(client_owner, video_project, format='COCO-video', source='predictions')))
    assert {(t['ls_track_id'], t['score']) for t in document['tracks']} == {(1, 0.9), (2, 0.8)}
    assert {a['score'] for a in document['annotations'] if a['track_id'] == 1} == {0.9}
    truth = json.loads(body(export(client_owner, video_project, format='COCO-video')))
    assert all('score' not in a for a in truth['annotations'])  # ground truth unchanged


# ---------------------------------------------------------------- tasks without a prediction of the version


def test_tasks_without_a_prediction_of_the_version_are_skipped_and_listed(client_owner, video_project, scene, user):
    unpredicted = add_task(video_project, user, scene.data['video'], [track(CRAB, 'crab')])
    predict(unpredicted, 'v2', [region(track(CRAB, 'crab'), 0.5)])
    response = export(client_owner, video_project, format='MOT', source='predictions', model_version='v1')
    assert response['X-Export-Tasks'] == '1' and response['X-Export-Warnings'] == '1'
    reason = "it has no prediction of model version 'v1'"
    assert json.loads(response['X-Export-Warning-Messages']) == [f'task {unpredicted.id} skipped: {reason}']
    summary = json.loads(unzip(body(response))['summary.json'])
    assert summary['skipped'] == [{'task_id': unpredicted.id, 'video': scene.data['video'], 'reason': reason}]
    everything = export(client_owner, video_project, format='MOT', source='predictions', download_all_tasks='1')
    assert everything['X-Export-Tasks'] == '2' and everything['X-Export-Warnings'] == '0'


# ---------------------------------------------------------------- the Export dialog and snapshots


def test_dialog_format_exports_the_current_versions_predictions(client_owner, video_project, scene, user):
    listed = client_owner.get(f'/api/projects/{video_project.id}/export/formats').json()
    entry = next(f for f in listed if f['name'] == 'VIDEO_MOT_PREDICTIONS')
    assert "model version's predictions" in entry['title'] and entry['tags'] == ['Video frames']
    other = add_task(video_project, user, scene.data['video'], [track(FISH, 'fish')])
    predict(other, 'v1', [region(track(FISH, 'fish'), 0.3)])
    url = f'/api/projects/{video_project.id}/export?exportType=VIDEO_MOT_PREDICTIONS&ids[]={other.id}'
    response = client_owner.get(url)  # what the dialog's "Export" button sends, with its task selection
    assert response['filename'].endswith('.zip') and 'video-mot' in response['filename']
    files = unzip(body(response))
    assert set(files) == {HYP, 'meta/labels.txt', 'summary.json'}
    assert {r[6] for r in rows_of(files[HYP])} == {'0.3000'} and len(rows_of(files[HYP])) == 5
    api = unzip(body(export(client_owner, video_project, format='VIDEO_MOT_PREDICTIONS', ids=other.id)))
    assert api[HYP] == files[HYP]


def test_snapshot_converts_to_predictions_with_the_version_fixed_at_request(
    client_owner, video_project, scene, worker, django_capture_on_commit_callbacks
):
    from data_export.models import ConvertedFormat

    made = client_owner.post(
        f'/api/projects/{video_project.id}/exports/',
        {'serialization_options': {'predictions': {'only_id': False}}},
        content_type='application/json',
    )
    assert made.status_code == 201 and made.json()['status'] == 'completed', made.content
    base = f'/api/projects/{video_project.id}/exports/{made.json()["id"]}'
    with django_capture_on_commit_callbacks() as published:
        response = client_owner.post(
            f'{base}/convert', {'export_type': 'VIDEO_MOT_PREDICTIONS'}, content_type='application/json'
        )
    assert response.status_code == 200, response.content
    converted = ConvertedFormat.objects.get(id=response.json()['converted_format'])
    assert converted.ls_ext_video_conversion.options['model_version'] == 'v1'
    video_project.model_version = 'v2'  # switched after the request: the conversion keeps what was asked for
    video_project.save(update_fields=['model_version'])
    with worker():
        published[0]()
    converted.refresh_from_db()
    assert converted.status == ConvertedFormat.Status.COMPLETED, converted.traceback
    files = unzip(downloaded(client_owner, base, 'VIDEO_MOT_PREDICTIONS'))
    video_project.model_version = 'v1'
    video_project.save(update_fields=['model_version'])
    api = unzip(body(export(client_owner, video_project, format='VIDEO_MOT_PREDICTIONS')))
    assert files[HYP] == api[HYP] and json.loads(files['summary.json'])['model_version'] == 'v1'


def test_a_snapshot_without_predictions_says_why_its_tasks_are_skipped(
    client_owner, video_project, scene, worker, django_capture_on_commit_callbacks
):
    from data_export.models import ConvertedFormat

    made = client_owner.post(f'/api/projects/{video_project.id}/exports/', {}, content_type='application/json')
    base = f'/api/projects/{video_project.id}/exports/{made.json()["id"]}'
    with worker():
        response = client_owner.post(
            f'{base}/convert', {'export_type': 'VIDEO_MOT', 'source': 'predictions'}, content_type='application/json'
        )
    converted = ConvertedFormat.objects.get(id=response.json()['converted_format'])
    assert converted.status == ConvertedFormat.Status.COMPLETED, converted.traceback
    files = unzip(downloaded(client_owner, base, 'VIDEO_MOT'))
    (skipped,) = json.loads(files['summary.json'])['skipped']
    assert 'create it with predictions included' in skipped['reason'] and skipped['task_id'] == scene.id


# ---------------------------------------------------------------- refusals and permissions


def test_bad_source_or_version_is_a_400_with_the_reason(client_owner, video_project, scene, user):
    unknown = export(client_owner, video_project, format='MOT', source='model')
    assert unknown.status_code == 400
    reason = 'unknown source "model": give annotations (the default) or predictions'
    assert unknown.json()['validation_errors'] == {'source': [reason]}
    missing = export(client_owner, video_project, format='MOT', source='predictions', model_version='v9')
    assert missing.status_code == 400
    assert "no predictions of model version 'v9'" in missing.json()['detail']
    assert missing.json()['model_versions'] == ['v2', 'v1']
    aside = export(client_owner, video_project, format='MOT', model_version='v1')  # source is annotations
    assert aside.status_code == 400
    assert aside.json()['validation_errors'] == {'model_version': ['a model version is for source=predictions']}
    images = export(client_owner, video_project, format='MOT', source='predictions', images='1')
    assert images.status_code == 400 and 'VIDEO_MOT_IMAGES' in images.json()['validation_errors']['images'][0]
    empty = make_project(user, video_project.label_config, 'no predictions')
    for response in (
        export(client_owner, empty, format='VIDEO_MOT_PREDICTIONS'),
        client_owner.get(f'/api/projects/{empty.id}/export', {'exportType': 'VIDEO_MOT_PREDICTIONS'}),
    ):
        assert response.status_code == 400 and 'has no predictions to export' in response.json()['detail']
    images_project = make_project(user, IMAGE_BOXES, 'images')
    refused = export(client_owner, images_project, format='VIDEO_MOT_PREDICTIONS')
    assert refused.status_code == 400 and 'no video tracking' in refused.json()['detail']


def test_predictions_keep_the_endpoints_permissions(client, client_stranger, video_project, scene):
    stranger = export(client_stranger, video_project, format='MOT', source='predictions')
    assert stranger.status_code == 404 and b'fish' not in stranger.content
    dialog = client_stranger.get(f'/api/projects/{video_project.id}/export', {'exportType': 'VIDEO_MOT_PREDICTIONS'})
    assert dialog.status_code == 404
    assert export(client, video_project, format='MOT', source='predictions').status_code == 401


# ---------------------------------------------------------------- hostile input: never a 500


@pytest.mark.parametrize(
    'params',
    [
        {'model_version': '\x00'},
        {'model_version': 'v' * 5000},
        {'model_version': '%00'},
        {'model_version': 'ü' * 10},
        {'model_version': ''},
        {'source': 'PREDICTIONS'},
        {'source': 'predictions\x00'},
        {'source': ''},
    ],
)
def test_hostile_source_or_version_is_refused_with_a_reason(client_owner, video_project, scene, params):
    response = export(client_owner, video_project, format='MOT', **{'source': 'predictions', **params})
    assert response.status_code == 400 and response.json()['detail'], response.content


def test_hostile_predictions_are_skipped_tracks_not_errors(client_owner, video_project, user):
    """What Label Studio lets a prediction hold (imports take any JSON): the export skips it with a warning."""
    from tasks.models import Prediction

    task = add_task(video_project, user, upload(video_project, user), None)
    fish = track(FISH, 'fish')
    results = [
        {'not': 'a list'},
        None,
        [fish | {'score': True}, fish | {'id': 'no-value', 'value': 7}, 'text'],
        [fish | {'score': 'high', 'value': {**fish['value'], 'sequence': [{'frame': 'x'}]}}],
        [fish | {'id': 'no-label', 'value': {**fish['value'], 'labels': []}}],
    ]
    Prediction.objects.bulk_create(  # past Label Studio's signals, as an import of raw rows would be
        Prediction(task=task, project=video_project, model_version=None, result=result, score=float('inf'))
        for result in results
    )
    for params in ({'model_version': ''}, {}):  # NULL is the version '' (and the newest)
        response = export(client_owner, video_project, format='MOT', source='predictions', **params)
        files = unzip(body(response))
        rows = rows_of(files[HYP])
        assert len(rows) == 5 and {r[6] for r in rows} == {'1.0000'}  # True, 'high', inf are no scores
        warnings = json.loads(files['summary.json'])['tasks'][0]['warnings']
        assert int(response['X-Export-Warnings']) == len(warnings) == 4, warnings


@pytest.mark.parametrize(
    'extra',
    ['"model_version": "\\ud800"', '"model_version": 5', '"model_version": "v9"', '"source": ["predictions"]'],
)
def test_hostile_snapshot_conversion_options_are_400s(client_owner, video_project, scene, extra):
    made = client_owner.post(f'/api/projects/{video_project.id}/exports/', {}, content_type='application/json')
    url = f'/api/projects/{video_project.id}/exports/{made.json()["id"]}/convert'
    raw = '{"export_type": "VIDEO_MOT_PREDICTIONS", ' + extra + '}'
    response = client_owner.post(url, raw, content_type='application/json')
    assert response.status_code == 400 and response.content.strip(), response.content
