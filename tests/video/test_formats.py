"""Each per-frame format on a small hand-checked example, parsed back and compared value by value.

The example video is 200x100 px, 6 frames at 2 fps:
- track 1 "car": keyframes (1, enabled, x=10%) and (3, disabled, x=30%), 20%x20% at y=10% ->
  frames 1-3, x = 20, 40, 60 px, box 40x20 px, hidden from frame 4 on;
- track 2 "person": keyframe (5, enabled, x=y=50%, 10%x20%, rotated 90 degrees about its top-left) ->
  frames 5-6; corners (100,50) (100,70) (80,70) (80,50) px, bounds 80,50 20x20, CVAT centre (90, 60);
- track 3: a malformed sequence, skipped with a warning.
"""

import csv
import io
import json
import xml.etree.ElementTree as ET
import zipfile

import pytest

from ls_extensions.video.formats import (
    MissingVideoInfo,
    Track,
    VideoExport,
    VideoTrackSet,
    get_exporter,
    list_exporters,
)
from ls_extensions.video.interpolation import expand_sequence

LABELS = ['car', 'person']
SKIPPED = 'track 3 (car) skipped: keyframe #0: "frame" must be a whole number, got 0.5'


def kf(frame, enabled=True, x=10.0, y=10.0, width=20.0, height=20.0, rotation=0.0):
    return {'frame': frame, 'enabled': enabled, 'x': x, 'y': y, 'width': width, 'height': height, 'rotation': rotation}


CAR = [kf(1, True), kf(3, False, x=30.0)]
PERSON = [kf(5, True, x=50.0, y=50.0, width=10.0, height=20.0, rotation=90.0)]


def task(task_id=1, video='clips/road.mp4', tracks=None, **extra):
    tracks = tracks or [
        Track(1, 'car', 0, sequence=CAR, result_id='r-car', annotation_id=7),
        Track(2, 'person', 1, sequence=PERSON, result_id='r-person', annotation_id=7),
        Track(3, 'car', 0, sequence=[{'frame': 0.5, 'x': 1}], result_id='r-bad', annotation_id=7),
    ]
    fields = dict(frame_count=6, frame_count_source='video', width=200, height=100, fps=2.0)
    return VideoTrackSet(task_id=task_id, video=video, tracks=tracks, **{**fields, **extra})


class NonSeekableSink(io.RawIOBase):
    """A response-like stream: writes only, so zips must be written in streaming mode."""

    def __init__(self):
        self.data = bytearray()

    def writable(self):
        return True

    def write(self, chunk):
        self.data += chunk
        return len(chunk)


def run(name, *track_sets):
    """Write to a non-seekable stream, as a streamed HTTP response would be, and return its bytes."""
    out = NonSeekableSink()
    summary = get_exporter(name).write(out, VideoExport(LABELS, list(track_sets)))
    return bytes(out.data), summary


def unzip(data):
    archive = zipfile.ZipFile(io.BytesIO(data))
    return {name: archive.read(name) for name in archive.namelist()}


def test_registry_lists_every_format_with_its_needs():
    found = {e.name: (e.ext, e.needs_pixels, e.needs_images) for e in list_exporters()}
    assert found == {
        'COCO-video': ('json', True, False),
        'CSV': ('csv', False, False),
        'CVAT': ('zip', True, False),
        'JSON': ('json', False, False),
        'MOT': ('zip', True, False),
        'YOLO': ('zip', False, True),
        'YOLO-OBB': ('zip', True, True),
    }
    assert get_exporter('mot') is get_exporter('MOT')
    with pytest.raises(KeyError, match='unknown video export format'):
        get_exporter('nope')


# ---------------------------------------------------------------- MOT


def test_mot_single_video():
    data, summary = run('MOT', task())
    files = unzip(data)
    assert set(files) == {'seqinfo.ini', 'gt/gt.txt', 'gt/labels.txt', 'summary.json'}
    assert files['gt/gt.txt'].decode().splitlines() == [
        '1,1,21.00,11.00,40.00,20.00,1,1,1',  # MOT Challenge pixels are 1-based: x + 1, y + 1
        '2,1,41.00,11.00,40.00,20.00,1,1,1',
        '3,1,61.00,11.00,40.00,20.00,1,1,1',
        '5,2,81.00,51.00,20.00,20.00,1,2,1',
        '6,2,81.00,51.00,20.00,20.00,1,2,1',
    ]
    assert files['gt/labels.txt'] == b'car\nperson\n'
    seqinfo = files['seqinfo.ini'].decode().splitlines()
    assert {'frameRate=2', 'seqLength=6', 'imWidth=200', 'imHeight=100', 'name=road'} <= set(seqinfo)
    assert json.loads(files['summary.json'])['tasks'][0]['warnings'] == [SKIPPED]
    assert summary.boxes == 5 and summary.warnings == [f'task 1: {SKIPPED}']


def test_mot_several_videos_get_a_folder_each_with_unique_names():
    other = task(2, video='https://host/x/road.mp4?sig=1', tracks=[Track(1, 'person', 1, sequence=[kf(4, False)])])
    files = unzip(run('MOT', task(), other)[0])
    assert sorted(files) == [
        'road/gt/gt.txt',
        'road/gt/labels.txt',
        'road/seqinfo.ini',
        'road_2/gt/gt.txt',
        'road_2/gt/labels.txt',
        'road_2/seqinfo.ini',
        'summary.json',
    ]
    assert files['road_2/gt/gt.txt'] == b'4,1,21.00,11.00,40.00,20.00,1,2,1\n'


def test_pixel_formats_name_the_task_without_a_video_size():
    for name in ('MOT', 'CVAT', 'COCO-video', 'YOLO-OBB'):
        with pytest.raises(MissingVideoInfo, match="task 4: the pixel size of video 'v.mp4' is unknown"):
            run(name, task(), task(4, video='v.mp4', width=None))


# ---------------------------------------------------------------- CSV


def test_csv_rows_in_percent_and_pixels():
    data, summary = run(
        'CSV', task(), task(2, video='b.mp4', width=None, height=None, tracks=[Track(5, 'car', 0, sequence=[kf(6)])])
    )
    rows = list(csv.DictReader(io.StringIO(data.decode())))
    assert [
        (r['task_id'], r['track_id'], r['frame'], r['keyframe'], r['x'], r['x_px'], r['width_px']) for r in rows
    ] == [
        ('1', '1', '1', '1', '10.0', '20.0', '40.0'),
        ('1', '1', '2', '0', '20.0', '40.0', '40.0'),
        ('1', '1', '3', '1', '30.0', '60.0', '40.0'),
        ('1', '2', '5', '1', '50.0', '100.0', '20.0'),
        ('1', '2', '6', '0', '50.0', '100.0', '20.0'),
        ('2', '5', '6', '1', '10.0', '', ''),
    ]
    assert rows[3]['rotation'] == '90.0' and rows[3]['label'] == 'person' and rows[3]['video'] == 'clips/road.mp4'
    assert summary.boxes == 6


def test_csv_without_any_size_has_no_pixel_columns():
    data, _ = run('CSV', task(width=None, height=None))
    header = data.decode().splitlines()[0]
    assert header == 'task_id,video,track_id,label,frame,keyframe,x,y,width,height,rotation'


# ---------------------------------------------------------------- JSON


def test_json_rewrites_matching_results_and_keeps_the_rest():
    stored = {
        'id': 1,
        'data': {'video': '/data/road.mp4'},
        'annotations': [
            {
                'id': 7,
                'result': [
                    {
                        'id': 'r-car',
                        'type': 'videorectangle',
                        'from_name': 'box',
                        'value': {'sequence': CAR, 'labels': ['car']},
                    },
                    {'id': 'r-choice', 'type': 'choices', 'value': {'choices': ['day']}},
                ],
            }
        ],
    }
    original = json.dumps(stored)
    data, summary = run(
        'JSON', task(task=stored, tracks=[Track(1, 'car', 0, sequence=CAR, result_id='r-car', annotation_id=7)])
    )
    [exported] = json.loads(data)
    car, choice = exported['annotations'][0]['result']
    assert choice == {'id': 'r-choice', 'type': 'choices', 'value': {'choices': ['day']}}
    assert car['from_name'] == 'box' and car['value']['labels'] == ['car'] and car['value']['interpolated'] is True
    assert car['meta'] == {'interpolated': True, 'frames_count': 6, 'frames_count_source': 'video'}
    assert car['value']['sequence'] == [
        {
            'frame': 1,
            'enabled': True,
            'x': 10.0,
            'y': 10.0,
            'width': 20.0,
            'height': 20.0,
            'rotation': 0.0,
            'keyframe': True,
            'time': 0.5,
        },
        {
            'frame': 2,
            'enabled': True,
            'x': 20.0,
            'y': 10.0,
            'width': 20.0,
            'height': 20.0,
            'rotation': 0.0,
            'keyframe': False,
            'time': 1.0,
        },
        {
            'frame': 3,
            'enabled': False,
            'x': 30.0,
            'y': 10.0,
            'width': 20.0,
            'height': 20.0,
            'rotation': 0.0,
            'keyframe': True,
            'time': 1.5,
        },
    ]
    assert json.dumps(stored) == original  # the caller's task is not modified
    assert summary.warnings == []


def test_json_expanded_sequence_draws_the_same_frames_when_imported_again():
    sequence = [kf(1, False), kf(4, True, x=40.0), kf(6, False, x=20.0, rotation=30.0), kf(9, True, x=0.0)]
    track_set = task(frame_count=10, tracks=[Track(1, 'car', 0, sequence=sequence)])
    data, _ = run('JSON', track_set)
    [exported] = json.loads(data)
    again = exported['annotations'][0]['result'][0]['value']['sequence']
    assert [e['frame'] for e in again] == [1, 4, 5, 6, 9, 10]
    for frames_count in (10, 12):
        first, second = expand_sequence(sequence, frames_count), expand_sequence(again, frames_count)
        assert first.frame.tolist() == second.frame.tolist()
        assert first.x.tolist() == second.x.tolist() and first.rotation.tolist() == second.rotation.tolist()


def test_json_builds_a_minimal_task_and_reports_unmatched_results():
    data, summary = run('JSON', task(), task(2, task={'id': 2, 'annotations': [{'id': 1, 'result': []}]}))
    first, second = json.loads(data)
    assert first['id'] == 1 and first['data'] == {'video': 'clips/road.mp4'}
    results = first['annotations'][0]['result']
    assert [(r['id'], r['value']['labels'], len(r['value']['sequence'])) for r in results] == [
        ('r-car', ['car'], 3),
        ('r-person', ['person'], 2),
    ]
    assert second == {'id': 2, 'annotations': [{'id': 1, 'result': []}]}
    assert summary.warnings[-2:] == [
        "task 2: track 1: result 'r-car' not found in the task JSON, not exported",
        "task 2: track 2: result 'r-person' not found in the task JSON, not exported",
    ]


# ---------------------------------------------------------------- CVAT


def boxes_of(track):
    return [
        (
            int(b.get('frame')),
            b.get('keyframe'),
            b.get('outside'),
            b.get('xtl'),
            b.get('ytl'),
            b.get('xbr'),
            b.get('ybr'),
            b.get('rotation'),
        )
        for b in track.iter('box')
    ]


def test_cvat_tracks_outside_markers_and_centre_rotation():
    data, summary = run('CVAT', task())
    files = unzip(data)
    assert set(files) == {'annotations.xml', 'summary.json'}
    root = ET.fromstring(files['annotations.xml'])
    assert root.findtext('version') == '1.1'
    assert root.findtext('meta/task/size') == '6' and root.findtext('meta/task/stop_frame') == '5'
    assert [label.findtext('name') for label in root.iter('label')] == LABELS
    assert root.findtext('meta/task/original_size/width') == '200'
    car, person = root.findall('track')
    assert (car.get('id'), car.get('label'), person.get('label')) == ('1', 'car', 'person')
    assert boxes_of(car) == [
        (0, '1', '0', '20.00', '10.00', '60.00', '30.00', '0.00'),
        (1, '0', '0', '40.00', '10.00', '80.00', '30.00', '0.00'),
        (2, '1', '0', '60.00', '10.00', '100.00', '30.00', '0.00'),
        (3, '1', '1', '60.00', '10.00', '100.00', '30.00', '0.00'),
    ]
    # rotated about the top-left at (100, 50): centre (90, 60), so the centre-rotated box spans 80..100 x 50..70;
    # held to the end, so CVAT needs only the first as a keyframe (it holds the last keyframe)
    assert boxes_of(person) == [
        (4, '1', '0', '80.00', '50.00', '100.00', '70.00', '90.00'),
        (5, '0', '0', '80.00', '50.00', '100.00', '70.00', '90.00'),
    ]
    assert json.loads(files['summary.json'])['boxes'] == 5 == summary.boxes


def test_cvat_escapes_labels_and_marks_each_span_start():
    labels_task = task(tracks=[Track(9, 'a "b" <c> & d', 0, sequence=[kf(1, False), kf(3, True), kf(4, False)])])
    out = io.BytesIO()
    get_exporter('CVAT').write(out, VideoExport(['a "b" <c> & d'], [labels_task]))
    root = ET.fromstring(unzip(out.getvalue())['annotations.xml'])
    [track] = root.findall('track')
    assert track.get('label') == 'a "b" <c> & d'
    assert [(f, k, o) for f, k, o, *_ in boxes_of(track)] == [
        (0, '1', '0'),
        (1, '1', '1'),
        (2, '1', '0'),
        (3, '1', '0'),
        (4, '1', '1'),
    ]


# ---------------------------------------------------------------- YOLO


def frame_images(frames):
    return ((frame, b'JPEG%d' % frame) for frame in frames if frame <= 5)  # the video is one frame short


def test_yolo_axis_aligned_labels_images_and_classes():
    track_set = task(tracks=[Track(1, 'car', 0, sequence=CAR)], frame_images=frame_images)
    data, summary = run('YOLO', track_set)
    files = unzip(data)
    assert files['images/road/000002.jpg'] == b'JPEG2' and 'images/road/000006.jpg' not in files
    assert files['labels/road/000001.txt'] == b'0 0.200000 0.200000 0.200000 0.200000\n'
    assert files['labels/road/000003.txt'] == b'0 0.400000 0.200000 0.200000 0.200000\n'
    assert [files[f'labels/road/{f:06d}.txt'] for f in (4, 5, 6)] == [b'', b'', b'']
    assert files['classes.txt'] == b'car\nperson\n'
    assert files['data.yaml'].decode().endswith('nc: 2\nnames:\n  0: "car"\n  1: "person"\n')
    assert summary.warnings == ['task 1: 1 frames had no image']


def test_yolo_writes_a_rotated_box_as_its_bounds():
    files = unzip(run('YOLO', task(frame_images=frame_images))[0])
    assert files['labels/road/000001.txt'] == b'0 0.200000 0.200000 0.200000 0.200000\n'
    assert files['labels/road/000005.txt'] == b'1 0.450000 0.600000 0.100000 0.200000\n'  # bounds 80,50 20x20 px
    assert files['labels/road/000004.txt'] == b''


def test_yolo_groups_tracks_per_frame_across_windows():
    tracks = [
        Track(1, 'car', 0, sequence=[kf(1, True), kf(6, True, x=60.0)]),
        Track(2, 'person', 1, sequence=[kf(2, True)]),
    ]
    out = io.BytesIO()
    get_exporter('YOLO').write(out, VideoExport(LABELS, [task(tracks=tracks)], chunk_frames=4))
    files = unzip(out.getvalue())
    assert (
        files['labels/road/000005.txt']
        == b'0 0.600000 0.200000 0.200000 0.200000\n1 0.200000 0.200000 0.200000 0.200000\n'
    )
    assert json.loads(files['summary.json'])['tasks'][0]['warnings'] == ['no frame images available: labels only']


# ---------------------------------------------------------------- COCO video


def test_coco_video_images_tracks_and_pixel_boxes():
    other = task(
        2, video='b.mp4', frame_count=3, width=100, height=50, tracks=[Track(1, 'person', 1, sequence=[kf(3, False)])]
    )
    data, summary = run('COCO-video', task(), other)
    doc = json.loads(data)
    assert doc['categories'] == [{'id': 1, 'name': 'car'}, {'id': 2, 'name': 'person'}]
    assert [(v['id'], v['name'], v['length'], v['width']) for v in doc['videos']] == [
        (1, 'road', 6, 200),
        (2, 'b', 3, 100),
    ]
    assert len(doc['images']) == 9
    assert doc['images'][7] == {
        'id': 8,
        'video_id': 2,
        'frame_index': 1,
        'frame_id': 1,
        'file_name': 'b/000002.jpg',
        'width': 100,
        'height': 50,
    }
    assert [(t['id'], t['category_id'], t['video_id']) for t in doc['tracks']] == [(1, 1, 1), (2, 2, 1), (3, 2, 2)]
    assert [(a['id'], a['image_id'], a['track_id'], a['category_id'], a['bbox']) for a in doc['annotations']] == [
        (1, 1, 1, 1, [20.0, 10.0, 40.0, 20.0]),
        (2, 2, 1, 1, [40.0, 10.0, 40.0, 20.0]),
        (3, 3, 1, 1, [60.0, 10.0, 40.0, 20.0]),
        (4, 5, 2, 2, [80.0, 50.0, 20.0, 20.0]),
        (5, 6, 2, 2, [80.0, 50.0, 20.0, 20.0]),
        (6, 9, 3, 2, [10.0, 5.0, 20.0, 10.0]),
    ]
    assert doc['annotations'][0]['area'] == 800.0
    assert doc['info']['boxes'] == 6 == summary.boxes
    assert doc['info']['tasks'][0]['warnings'] == [SKIPPED]


def test_track_needs_exactly_one_source():
    with pytest.raises(ValueError, match='exactly one of sequence and boxes'):
        Track(1, 'car', 0)


def test_precomputed_boxes_are_written_like_sequences():
    boxes = expand_sequence(CAR, 6)
    from_boxes = run('MOT', task(tracks=[Track(1, 'car', 0, boxes=[boxes])]))[0]
    from_sequence = run('MOT', task(tracks=[Track(1, 'car', 0, sequence=CAR)]))[0]
    assert unzip(from_boxes)['gt/gt.txt'] == unzip(from_sequence)['gt/gt.txt']
