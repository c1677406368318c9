"""The CVAT-for-video export read back by CVAT's own rule and by datumaro's `cvat` importer.

The hostile track set (tracks.py) is exported through the real API from a real project. CVAT itself
cannot run here: `cvat_rule.py` transcribes its import and interpolation rule from its source (only
`keyframe="1"` boxes kept, linear interpolation between them, rotation the short way round, `outside`
hides), for the server's and the annotation UI's angle step. datumaro 1.13.12 (installed) reads every
box as written. Both must give, on every frame, the box the Label Studio UI draws, within 0.5 px at
every corner, and nothing on the frames where the UI draws nothing.
"""

import io
import math
import xml.etree.ElementTree as ET
import zipfile

import pytest
from datumaro.components.annotation import RotatedBbox
from datumaro.components.dataset import Dataset

from ls_extensions.video.formats import Track, VideoExport, VideoTrackSet, get_exporter

from .cvat_rule import read_tracks
from .tracks import CLIPS, HARBOUR, LABELS, QUAY, export_bytes, shown_boxes

TOLERANCE_PX = 0.5


def corner_error(got, want) -> float:
    return max(math.dist(p, q) for p, q in zip(got, want, strict=True))


def written(clips=CLIPS, **options) -> dict[str, bytes]:
    """Clip name -> annotations.xml, from the writer itself (no project): for options the API has not."""
    track_sets = [
        VideoTrackSet(
            task_id=index,
            video=f'{clip.name}.mp4',
            frame_count=clip.frames,
            frame_count_source='video',
            width=clip.width,
            height=clip.height,
            tracks=[
                Track(i, t.label, LABELS.index(t.label), sequence=t.sequence) for i, t in enumerate(clip.tracks, 1)
            ],
        )
        for index, clip in enumerate(clips, 1)
    ]
    out = io.BytesIO()
    get_exporter('CVAT').write(out, VideoExport(list(LABELS), track_sets, **options))
    archive = zipfile.ZipFile(io.BytesIO(out.getvalue()))
    return {clip.name: archive.read(f'{clip.name}/annotations.xml') for clip in clips}


@pytest.fixture
def cvat_files(client_owner, hostile_project):
    """Clip name -> its annotations.xml, as the API exports it."""
    project, _ = hostile_project
    archive = zipfile.ZipFile(io.BytesIO(export_bytes(client_owner, project, 'CVAT')))
    return {clip.name: archive.read(f'{clip.stem}/annotations.xml') for clip in CLIPS}


def compare(clip, got: dict[int, dict[int, list]], stride: int = 1) -> list[str]:
    """Differences between what a reader shows (track -> 0-based frame -> corners) and the UI's boxes,
    on the exported frames (0, stride, 2 * stride, ...)."""
    problems = []
    want = {}
    for box in shown_boxes(clip):
        want.setdefault(box.track_id, {})[box.frame - 1] = box
    for track_id in sorted(set(want) | set(got)):
        shown, read = want.get(track_id, {}), got.get(track_id, {})
        for frame in sorted(frame for frame in set(shown) | set(read) if frame % stride == 0):
            if frame not in read:
                problems.append(f'{clip.name} track {track_id} frame {frame}: no box, the UI shows one')
            elif frame not in shown:
                problems.append(f'{clip.name} track {track_id} frame {frame}: a box, the UI shows none')
            elif (error := corner_error(read[frame], shown[frame].corners())) > TOLERANCE_PX:
                problems.append(f'{clip.name} track {track_id} frame {frame}: {error:.2f} px off')
    return problems


@pytest.mark.parametrize('rule', ['server', 'ui'])
def test_cvat_rule_shows_every_box_the_ui_shows(cvat_files, rule):
    for clip in CLIPS:
        tracks = read_tracks(cvat_files[clip.name], rule)
        got = {track_id: {frame: box.corners() for frame, box in frames.items()} for track_id, frames in tracks.items()}
        assert compare(clip, got) == [], clip.name


@pytest.mark.parametrize('stride', [2, 3])
def test_with_a_frame_stride_cvat_gets_every_exported_box(stride):
    files = written(frame_stride=stride)
    for clip in CLIPS:
        tracks = read_tracks(files[clip.name])
        got = {track_id: {frame: box.corners() for frame, box in frames.items()} for track_id, frames in tracks.items()}
        assert compare(clip, got, stride) == [], clip.name


def keyframes_by_case(xml: bytes, clip) -> dict[str, list[int]]:
    root = ET.fromstring(xml)
    return {
        clip.tracks[int(track.get('id')) - 1].case: [
            int(b.get('frame')) for b in track.iter('box') if b.get('keyframe') == '1'
        ]
        for track in root.iter('track')
    }


def test_keyframes_are_few_where_cvats_interpolation_is_right():
    """Keyframes only where CVAT needs them: straight and held stretches need their ends, a box turning
    17 degrees a frame (the centre moves on an arc) one per frame."""
    files = written()
    harbour = keyframes_by_case(files[HARBOUR.name], HARBOUR)
    quay = keyframes_by_case(files[QUAY.name], QUAY)
    assert quay['past the bottom-right corner'] == [0]  # held from frame 1 to the end
    assert quay['rotated out through the top'] == [1, 11]  # a straight move at a fixed angle, then held
    assert harbour['keyframes past the end'] == [24, 29]  # towards a keyframe the video never reaches
    assert harbour['unsorted keyframes'] == [2, 14, 15]  # 3 -> 15 up to frame 14, then frame 9's box held
    assert harbour['rotation'][:2] == [1, 10] and harbour['rotation'][2:] == list(range(11, 23))
    keyframes = sum(xml.count(b'keyframe="1"') for xml in files.values())
    boxes = sum(xml.count(b'<box ') for xml in files.values())
    assert 2 * keyframes < boxes, (keyframes, boxes)


def test_datumaro_reads_every_box_the_ui_shows(cvat_files, tmp_path):
    for clip in CLIPS:
        folder = tmp_path / clip.name
        folder.mkdir()
        (folder / 'annotations.xml').write_bytes(cvat_files[clip.name])
        dataset = Dataset.import_from(str(folder), 'cvat')
        names = [label.name for label in dataset.categories()[next(iter(dataset.categories()))]]
        got, labels = {}, {}
        for item in dataset:
            for annotation in item.annotations:
                assert isinstance(annotation, RotatedBbox), annotation
                track_id = annotation.attributes['track_id']
                labels.setdefault(track_id, set()).add(names[annotation.label])
                if not annotation.attributes['outside']:
                    got.setdefault(track_id, {})[item.attributes['frame']] = annotation.as_polygon()
        assert compare(clip, got) == [], clip.name
        assert labels == {track_id: {track.label} for track_id, track in enumerate(clip.tracks, 1)}
        assert set(names) == set(LABELS)


def ui_keyframes_only(xml: bytes, clip) -> bytes:
    """The XML with the old choice of keyframes: the UI's own keyframe frames, span starts and `outside` markers."""
    root = ET.fromstring(xml)
    for track in root.iter('track'):
        stored = {int(item['frame']) for item in clip.tracks[int(track.get('id')) - 1].sequence}
        previous = None
        for box in track.iter('box'):
            frame = int(box.get('frame'))
            starts = previous is None or frame != previous + 1
            box.set('keyframe', '1' if frame + 1 in stored or starts or box.get('outside') == '1' else '0')
            previous = frame
    return ET.tostring(root)


def test_the_ui_keyframes_alone_are_far_off_in_cvat(cvat_files):
    """What the export wrote before: CVAT re-interpolates between the UI's keyframes, which is not the UI's
    rule for unsorted, repeated and past-the-end keyframes (the checks above do see such errors)."""
    tracks = read_tracks(ui_keyframes_only(cvat_files[HARBOUR.name], HARBOUR))
    got = {track_id: {frame: box.corners() for frame, box in frames.items()} for track_id, frames in tracks.items()}
    off = {int(problem.split()[2]) for problem in compare(HARBOUR, got)}
    cases = {HARBOUR.tracks[track_id - 1].case for track_id in off}
    assert {'unsorted keyframes', 'duplicate frames', 'keyframes past the end'} <= cases
