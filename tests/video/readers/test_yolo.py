"""YOLO and YOLO-OBB exports read by datumaro's `yolo` importer, supervision's loaders and Ultralytics' label rule.

Ultralytics cannot be installed here (it needs opencv-python, which clashes with the headless OpenCV
that Label Studio pins), so its published rule is applied instead: `ultralytics_label_check` below is
the label part of `ultralytics/data/utils.py::verify_image_label` (github.com/ultralytics/ultralytics,
commit 00bfe3459a05b6c36026fb7689fc73c818da1cd1), which marks the whole image "corrupt" (dropped from
training, its valid boxes too) when any value is beyond [-0.01, 1.01] or a row has the wrong width, and
removes duplicate rows. We hold ourselves to the strict [0, 1] besides.

What the UI shows, in a format that cannot leave the frame: a box partly outside is clipped (its
corners clamped into the frame, as Ultralytics' own `Instances.clip` does to polygons; the YOLO box is
the bounds of those corners, i.e. the box's bounds cut to the frame); a box with nothing inside the frame
is dropped. `summary.json` counts both.
"""

import io
import json
import zipfile

import datumaro as dm
import numpy as np
import pytest
import supervision as sv
from PIL import Image

from ls_extensions.video.formats import Track, VideoExport, VideoTrackSet, get_exporter

from .tracks import CLIPS, LABELS, export_bytes, extract, kf, shown_by_frame


def ultralytics_label_check(image_file, label_file, num_cls):
    """(corrupt reason or None, duplicates removed): `verify_image_label` for a detection/OBB dataset."""
    try:
        image = Image.open(image_file)
        image.verify()
        width, height = image.size
        assert height > 9 and width > 9, f'image size {(height, width)} <10 pixels'
        assert image.format.lower() in {'jpeg', 'jpg', 'png'}, f'invalid image format {image.format}'
        with open(label_file, encoding='utf-8') as f:
            lb = [x.split() for x in f.read().strip().splitlines() if len(x)]
            if any(len(x) > 6 for x in lb):  # is segment (OBB rows are read this way too)
                classes = np.array([x[0] for x in lb], dtype=np.float32)
                segments = [np.array(x[1:], dtype=np.float32).reshape(-1, 2) for x in lb]
                boxes = [  # ultralytics.utils.ops.segments2boxes: xywh of each polygon's bounds
                    (
                        (s[:, 0].min() + s[:, 0].max()) / 2,
                        (s[:, 1].min() + s[:, 1].max()) / 2,
                        np.ptp(s[:, 0]),
                        np.ptp(s[:, 1]),
                    )
                    for s in segments
                ]
                lb = np.concatenate((classes.reshape(-1, 1), np.array(boxes, dtype=np.float32)), 1)
            lb = np.array(lb, dtype=np.float32)
        if nl := len(lb):
            assert lb.shape[1] == 5, f'labels require 5 columns, {lb.shape[1]} columns detected'
            points = lb[:, 1:]
            assert points.max() <= 1.01, f'non-normalized or out of bounds coordinates {points[points > 1.01]}'
            assert lb.min() >= -0.01, f'negative class labels or coordinate {lb[lb < -0.01]}'
            assert lb[:, 0].max() < num_cls, f'Label class {int(lb[:, 0].max())} exceeds dataset class count {num_cls}'
            _, i = np.unique(lb, axis=0, return_index=True)
            return None, nl - len(i)
        return None, 0
    except Exception as error:  # as Ultralytics: any failure makes the image-label pair corrupt
        return f'ignoring corrupt image/label: {error}', 0


def label_values(root):
    return [
        float(v)
        for path in (root / 'labels').rglob('*.txt')
        for line in path.read_text().splitlines()
        for v in line.split()[1:]
    ]


def expected_yolo(clip, frame_boxes):
    """[(class, left, top, width, height)] in pixels: the bounds of the clamped corners, invisible boxes dropped."""
    kept = []
    for b in frame_boxes:
        if b.visible_area() > 0:
            xs, ys = zip(*b.clamped_corners(), strict=True)
            kept.append((b.class_index, min(xs), min(ys), max(xs) - min(xs), max(ys) - min(ys)))
    return sorted(kept)


def expected_obb(clip, frame_boxes):
    return sorted((b.class_index, *np.ravel(b.clamped_corners())) for b in frame_boxes if b.visible_area() > 0)


def expected_counts(clips):
    shown = [b for clip in clips for boxes in shown_by_frame(clip).values() for b in boxes]
    dropped = sum(b.visible_area() <= 0 for b in shown)
    clipped = sum(b.visible_area() > 0 and b.clamped_corners() != b.corners() for b in shown)
    return clipped, dropped


def same(got, expected, atol=0.01):
    """Rows of (class, numbers...) equal, classes exactly, numbers within `atol` pixels."""
    assert [g[0] for g in got] == [e[0] for e in expected], (got, expected)
    assert np.allclose([g[1:] for g in got], [e[1:] for e in expected], atol=atol) if expected else not got, (
        got,
        expected,
    )


@pytest.fixture
def yolo_export(client_owner, hostile_project, tmp_path):
    project, _ = hostile_project
    return extract(export_bytes(client_owner, project, 'YOLO'), tmp_path / 'yolo')


@pytest.fixture
def obb_export(client_owner, hostile_project, tmp_path):
    project, _ = hostile_project
    return extract(export_bytes(client_owner, project, 'YOLO-OBB'), tmp_path / 'obb')


@pytest.mark.parametrize('fixture', ['yolo_export', 'obb_export'])
def test_ultralytics_label_rule_keeps_every_frame_and_no_value_leaves_0_1(fixture, request):
    root = request.getfixturevalue(fixture)
    checked = 0
    for clip in CLIPS:
        for frame in range(1, clip.frames + 1):
            name = f'{clip.stem}/{frame:06d}'
            corrupt, duplicates = ultralytics_label_check(
                root / f'images/{name}.jpg', root / f'labels/{name}.txt', len(LABELS)
            )
            assert corrupt is None and duplicates == 0, (name, corrupt, duplicates)
            checked += 1
    assert checked == sum(clip.frames for clip in CLIPS)
    values = label_values(root)
    assert values and min(values) >= 0 and max(values) <= 1


def test_summary_counts_the_clipped_and_dropped_boxes(yolo_export, obb_export):
    clipped, dropped = expected_counts(CLIPS)
    assert clipped > 0 and dropped > 0
    for root in (yolo_export, obb_export):
        summary = json.loads((root / 'summary.json').read_text())
        assert (summary['boxes_clipped'], summary['boxes_dropped']) == (clipped, dropped)
        assert sum(t['boxes_dropped'] for t in summary['tasks']) == dropped
        written = sum(len(p.read_text().splitlines()) for p in (root / 'labels').rglob('*.txt'))
        assert written == summary['boxes'] - dropped


def test_datumaro_yolo_reads_every_frame_with_the_shown_boxes(yolo_export):
    dataset = dm.Dataset.import_from(str(yolo_export), 'yolo')
    assert sorted(dataset.subsets()) == sorted(clip.stem for clip in CLIPS)  # one subset per video
    for clip in CLIPS:
        items = {item.id: item for item in dataset.get_subset(clip.stem)}
        assert sorted(items) == [f'{f:06d}' for f in range(1, clip.frames + 1)], clip.name  # none skipped
        for frame, shown in shown_by_frame(clip).items():
            got = sorted((a.label, a.x, a.y, a.w, a.h) for a in items[f'{frame:06d}'].annotations)
            same(got, expected_yolo(clip, shown))


def test_supervision_reads_every_frame_with_the_shown_boxes(yolo_export):
    for clip in CLIPS:
        dataset = sv.DetectionDataset.from_yolo(
            images_directory_path=str(yolo_export / 'images' / clip.stem),
            annotations_directory_path=str(yolo_export / 'labels' / clip.stem),
            data_yaml_path=str(yolo_export / 'data.yaml'),
        )
        assert dataset.classes == list(LABELS)
        assert len(dataset) == clip.frames
        for path, _, detections in dataset:
            frame = int(path.rsplit('/', 1)[-1].split('.')[0])
            xyxy = detections.xyxy.tolist()
            got = sorted(
                (int(c), x0, y0, x1 - x0, y1 - y0)
                for c, (x0, y0, x1, y1) in zip(detections.class_id, xyxy, strict=True)
            )
            same(got, expected_yolo(clip, shown_by_frame(clip)[frame]), atol=0.01)


def test_supervision_reads_every_obb_frame_with_the_shown_corners(obb_export):
    for clip in CLIPS:
        dataset = sv.DetectionDataset.from_yolo(
            images_directory_path=str(obb_export / 'images' / clip.stem),
            annotations_directory_path=str(obb_export / 'labels' / clip.stem),
            data_yaml_path=str(obb_export / 'data.yaml'),
            is_obb=True,
        )
        assert len(dataset) == clip.frames
        for path, _, detections in dataset:
            frame = int(path.rsplit('/', 1)[-1].split('.')[0])
            corners = detections.data.get(sv.config.ORIENTED_BOX_COORDINATES, np.empty((0, 4, 2)))
            got = sorted((int(c), *np.ravel(q).tolist()) for c, q in zip(detections.class_id, corners, strict=True))
            same(got, expected_obb(clip, shown_by_frame(clip)[frame]), atol=0.01)


def test_images_are_the_frames_at_the_video_size(yolo_export):
    for clip in CLIPS:
        with Image.open(yolo_export / f'images/{clip.stem}/000001.jpg') as image:
            assert image.size == (clip.width, clip.height)


def write_labels(format_name, sequences, size=(100, 100)):
    """Frame 1's label rows and the summary of a one-frame export of the given tracks (writer only, no video)."""
    tracks = [Track(index, 'fish', 0, sequence=[sequence]) for index, sequence in enumerate(sequences, 1)]
    track_set = VideoTrackSet(1, 'v.mp4', 1, 'video', tracks, *size, fps=25.0)
    out = io.BytesIO()
    summary = get_exporter(format_name).write(out, VideoExport(list(LABELS), [track_set]))
    rows = zipfile.ZipFile(out).read('labels/v/000001.txt').decode().splitlines()
    return rows, summary


def test_boxes_touching_the_border_or_only_near_a_corner_are_dropped_and_no_negative_zero_is_written():
    side = 10 * 2**0.5
    diamond_beyond_the_corner = kf(1, 108, -18, side, side, rotation=45)  # its bounds overlap the frame, it does not
    touching_right = kf(1, 100, 10, 20, 20)
    touching_left = kf(1, -20, 10, 20, 20)
    hugging_the_edge = kf(1, -0.0, 0.0, 20, 20)  # -0.0: '%.6f' would write '-0.000000', which datumaro skips
    for format_name in ('YOLO', 'YOLO-OBB'):
        rows, summary = write_labels(
            format_name, [diamond_beyond_the_corner, touching_right, touching_left, hugging_the_edge]
        )
        assert (summary.boxes, summary.boxes_dropped, summary.boxes_clipped) == (4, 3, 0), format_name
        assert len(rows) == 1 and '-' not in rows[0], (format_name, rows)
    assert write_labels('YOLO', [hugging_the_edge])[0] == ['0 0.100000 0.100000 0.200000 0.200000']


def test_a_rotated_box_over_the_edge_is_clamped_corner_by_corner():
    rows, summary = write_labels('YOLO-OBB', [kf(1, 110, 10, 30, 50, rotation=90)])
    # rotated 90 degrees about its top-left (110, 10) of a 100x100 frame: corners (110,10) (110,40) (60,40) (60,10);
    # the two on the right move onto x = 100
    assert rows == ['0 1.000000 0.100000 1.000000 0.400000 0.600000 0.400000 0.600000 0.100000']
    assert (summary.boxes_clipped, summary.boxes_dropped) == (1, 0)
    rows, _ = write_labels('YOLO', [kf(1, 110, 10, 30, 50, rotation=90)])
    assert rows == ['0 0.800000 0.250000 0.400000 0.300000']  # bounds 60..100 x 10..40
