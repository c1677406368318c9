"""MOT Challenge export read by datumaro's `mot_seq` importer (what CVAT's MOT import runs) and motmetrics.

MOT Challenge pixel positions are 1-based (MATLAB convention): motmetrics' loader subtracts 1 from
`bb_left`/`bb_top` (`motmetrics/io.py::load_motchallenge`, "Account for matlab convention"), so its
boxes must come out as the 0-based pixel boxes Label Studio draws. datumaro's `mot_seq` reads the
numbers as written (`datumaro/plugins/data_formats/mot.py::MotSeqBase._load_items`, no shift; its
exporter writes them back unchanged), so there a box is the UI's plus (1, 1), unless the export is asked
for ``mot_origin=0``.
"""

import configparser

import datumaro as dm
import motmetrics as mm
import numpy as np
import pytest

from .tracks import CLIPS, LABELS, NTSC, export_bytes, extract, make_project_with_clips, shown_by_frame


@pytest.mark.parametrize('origin', [1, 0])
def test_datumaro_mot_seq_imports_every_sequence_with_every_shown_box(client_owner, hostile_project, tmp_path, origin):
    """Default 1-based positions come out as the UI's plus (1, 1); with ``mot_origin=0`` exactly the UI's."""
    project, _ = hostile_project
    params = {} if origin == 1 else {'mot_origin': 0}
    root = extract(export_bytes(client_owner, project, 'MOT', **params), tmp_path)
    for clip in CLIPS:
        folder = root / clip.stem
        dataset = dm.Dataset.import_from(str(folder), 'mot_seq')  # raises on a bad seqinfo.ini
        labels = [label.name for label in dataset.categories()[dm.AnnotationType.label]]
        assert labels == list(LABELS)
        items = {int(item.id): item for item in dataset}
        assert sorted(items) == list(range(1, clip.frames + 1)), clip.name  # every frame, from seqLength
        for frame, shown in shown_by_frame(clip).items():
            got = sorted(
                (a.attributes['track_id'], labels[a.label], a.x, a.y, a.w, a.h)
                for a in items[frame].annotations
                if a.type == dm.AnnotationType.bbox
            )
            # the positions as written (1-based by default, as MOT Challenge writes them): datumaro keeps them
            expected = sorted((b.track_id, b.label, *np.add(b.bounds(), (origin, origin, 0, 0))) for b in shown)
            assert [g[:2] for g in got] == [e[:2] for e in expected], (clip.name, frame)
            assert np.allclose([g[2:] for g in got], [e[2:] for e in expected], atol=0.005), (clip.name, frame)


def test_motmetrics_reads_the_ui_boxes_and_scores_them_perfect(
    client_owner, hostile_project, tmp_path, numpy_for_motmetrics
):
    """motmetrics' own loader and IoU matching against the boxes the UI shows: MOTA 1, IoU distance 0."""
    project, _ = hostile_project
    root = extract(export_bytes(client_owner, project, 'MOT'), tmp_path)
    for clip in CLIPS:
        gt = mm.io.loadtxt(str(root / clip.stem / 'gt' / 'gt.txt'), fmt='mot15-2D', min_confidence=1)
        accumulator = mm.MOTAccumulator(auto_id=False)
        for frame, shown in shown_by_frame(clip).items():
            rows = gt.loc[frame] if frame in gt.index.get_level_values(0) else gt.iloc[0:0]
            boxes = {b.track_id: b.bounds() for b in shown}  # a tracker that outputs exactly what the UI drew
            assert sorted(rows.index) == sorted(boxes), (clip.name, frame)
            read = rows[['X', 'Y', 'Width', 'Height']].to_numpy()
            ui = np.array([boxes[i] for i in rows.index]).reshape(-1, 4)
            assert np.allclose(read, ui, atol=0.005), (clip.name, frame)
            distances = mm.distances.iou_matrix(read, ui, max_iou=0.5)
            accumulator.update(list(rows.index), list(rows.index), distances, frameid=frame)
        metrics = mm.metrics.create().compute(accumulator, metrics=['mota', 'motp', 'num_switches', 'num_objects'])
        metrics = metrics.iloc[0]
        assert metrics['num_objects'] == sum(len(b) for b in shown_by_frame(clip).values()), clip.name
        assert metrics['mota'] == 1.0 and metrics['num_switches'] == 0, clip.name
        # mean IoU distance of the matches: only gt.txt's 2 decimals (<= 0.005 px) remain; 1 px off was 0.13-0.19
        assert metrics['motp'] < 1e-3, clip.name


def test_seqinfo_frame_rate_is_a_whole_number_rounded_from_29_97(client_owner, user, tmp_path):
    project, _ = make_project_with_clips(user, [NTSC], framerate='29.97')
    root = extract(export_bytes(client_owner, project, 'MOT'), tmp_path)
    info = configparser.ConfigParser()
    info.optionxform = str
    info.read(root / 'seqinfo.ini')
    assert dict(info['Sequence']) == {
        'name': NTSC.stem,
        'imDir': 'img1',
        'frameRate': '30',
        'seqLength': '8',
        'imWidth': '64',
        'imHeight': '48',
        'imExt': '.jpg',
    }
    dataset = dm.Dataset.import_from(str(root), 'mot_seq')
    assert len(dataset) == NTSC.frames
