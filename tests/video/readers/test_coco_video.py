"""COCO-video export read by pycocotools (COCO, loadRes, COCOeval) and datumaro's `coco` importer.

Images carry TAO's `frame_index` (the frame's 0-based index in the video) and mmtracking's `frame_id`
(CocoVID; 0-based position among the video's exported images, as mmtracking's own converters number
them: `tools/convert_datasets/mot/mot2coco.py` enumerates a sequence's images from 0).
"""

import contextlib
import io
import json
import logging
import warnings

import datumaro as dm
import numpy as np
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from .tracks import CLIPS, LABELS, export_bytes, shown_by_frame


def coco_export(client, project, tmp_path, **params):
    path = tmp_path / 'annotations' / 'instances_default.json'  # where COCO tools (datumaro) look for it
    path.parent.mkdir(exist_ok=True)
    (tmp_path / 'images').mkdir(exist_ok=True)  # datumaro wants the frames' folder beside it (not read here)
    path.write_bytes(export_bytes(client, project, 'COCO-video', **params))
    return path


def test_pycocotools_reads_every_frame_and_box_and_scores_gt_against_itself_ap_1(
    client_owner, hostile_project, tmp_path
):
    project, _ = hostile_project
    path = coco_export(client_owner, project, tmp_path)
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(str(path))
    videos = {v['name']: v for v in gt.dataset['videos']}
    for clip in CLIPS:
        video = videos[clip.stem]
        images = sorted((img for img in gt.dataset['images'] if img['video_id'] == video['id']), key=lambda i: i['id'])
        assert [img['frame_id'] for img in images] == list(range(clip.frames))  # CocoVID: 0-based, consecutive
        assert [img['frame_index'] for img in images] == list(range(clip.frames))
        for image, (frame, shown) in zip(images, shown_by_frame(clip).items(), strict=True):
            assert image['file_name'] == f'{clip.stem}/{frame:06d}.jpg'
            anns = gt.loadAnns(gt.getAnnIds(imgIds=[image['id']]))
            got = sorted((a['category_id'], *a['bbox']) for a in anns)
            expected = sorted((b.class_index + 1, *b.bounds()) for b in shown)
            assert [g[0] for g in got] == [e[0] for e in expected], (clip.name, frame)
            assert np.allclose([g[1:] for g in got], [e[1:] for e in expected], atol=0.005) if shown else not got
            for a in anns:
                [polygon] = a['segmentation']
                assert len(polygon) == 8 and a['instance_id'] == a['track_id']
    results = [{**a, 'score': 1.0} for a in gt.dataset['annotations']]
    with contextlib.redirect_stdout(io.StringIO()):
        evaluation = COCOeval(gt, gt.loadRes(results), 'bbox')
        evaluation.evaluate()
        evaluation.accumulate()
        evaluation.summarize()
    assert evaluation.stats[0] == 1.0 and evaluation.stats[1] == 1.0  # AP@[.5:.95], AP@.5


def test_segmentation_is_the_rotated_box_the_ui_draws(client_owner, hostile_project, tmp_path):
    project, _ = hostile_project
    doc = json.loads(coco_export(client_owner, project, tmp_path).read_text())
    by_key = {}
    for clip, video in zip(CLIPS, doc['videos'], strict=True):
        for shown in shown_by_frame(clip).values():
            for b in shown:
                by_key[(video['id'], b.track_id, b.frame)] = b
    tracks = {t['id']: t for t in doc['tracks']}
    images = {img['id']: img for img in doc['images']}
    for a in doc['annotations']:
        b = by_key[(a['video_id'], tracks[a['track_id']]['ls_track_id'], images[a['image_id']]['frame_index'] + 1)]
        assert np.allclose(a['segmentation'][0], np.ravel(b.corners()), atol=0.005)
        assert abs(a['area'] - b.width * b.clip.width / 100 * b.height * b.clip.height / 100) < 0.01


def test_datumaro_coco_imports_every_frame_and_box_without_a_warning(client_owner, hostile_project, tmp_path, caplog):
    project, _ = hostile_project
    path = coco_export(client_owner, project, tmp_path)
    with caplog.at_level(logging.WARNING), warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        dataset = dm.Dataset.import_from(str(path), 'coco_instances')
        items = {item.id: item for item in dataset}
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []
    assert [str(w.message) for w in caught if 'datumaro' in (w.filename or '')] == []
    labels = [label.name for label in dataset.categories()[dm.AnnotationType.label]]
    assert labels == list(LABELS)
    for clip in CLIPS:
        for frame, shown in shown_by_frame(clip).items():
            item = items[f'{clip.stem}/{frame:06d}']
            got = sorted(
                (labels[a.label], a.x, a.y, a.w, a.h) for a in item.annotations if a.type == dm.AnnotationType.bbox
            )
            expected = sorted((b.label, *b.bounds()) for b in shown)
            assert [g[0] for g in got] == [e[0] for e in expected], (clip.name, frame)
            assert np.allclose([g[1:] for g in got], [e[1:] for e in expected], atol=0.005) if shown else not got


def test_frame_id_counts_the_exported_frames_with_a_stride(client_owner, hostile_project, tmp_path):
    project, _ = hostile_project
    doc = json.loads(coco_export(client_owner, project, tmp_path, frame_stride=4).read_text())
    first = [img for img in doc['images'] if img['video_id'] == 1]
    assert [img['frame_index'] for img in first] == list(range(0, CLIPS[0].frames, 4))
    assert [img['frame_id'] for img in first] == list(range(len(first)))
