"""The hostile track set itself: every case is drawn by the UI rule, and the export reads it as built."""

import csv
import io

import pytest

from .tracks import CLIPS, HARBOUR, QUAY, export_bytes, shown_boxes, shown_by_frame

GEOMETRY = ('x', 'y', 'width', 'height', 'rotation')


def test_every_hostile_track_shows_boxes_and_some_leave_the_frame():
    for clip in CLIPS:
        shown = shown_boxes(clip)
        assert {box.track_id for box in shown} == set(range(1, len(clip.tracks) + 1)), clip.name
    harbour = shown_by_frame(HARBOUR)
    unsorted = {box.frame: box.x for boxes in harbour.values() for box in boxes if box.track_id == 3}
    assert unsorted[9] == 10 + 40 * 6 / 12  # interpolated 3 -> 15, keyframe 9 never reached
    assert unsorted[16] == 30.0  # then keyframe 9 held
    frame_zero = [box.frame for boxes in harbour.values() for box in boxes if box.track_id == 8]
    assert frame_zero == list(range(1, 11))
    assert any(not box.inside for box in shown_boxes(QUAY))
    assert any(box.clipped_bounds() is None for box in shown_boxes(HARBOUR))


def test_the_csv_export_has_exactly_the_shown_boxes(client_owner, hostile_project):
    """CSV carries the percents as computed: the builder, the API and the UI rule agree on every frame."""
    project, tasks = hostile_project
    rows = list(csv.DictReader(io.StringIO(export_bytes(client_owner, project, 'CSV').decode())))
    for clip, task in zip(CLIPS, tasks, strict=True):
        got = {
            (int(r['track_id']), r['label'], int(r['frame'])): [float(r[k]) for k in GEOMETRY]
            for r in rows
            if int(r['task_id']) == task.id
        }
        expected = {(b.track_id, b.label, b.frame): [getattr(b, k) for k in GEOMETRY] for b in shown_boxes(clip)}
        assert sorted(got) == sorted(expected), clip.name
        assert all(got[key] == pytest.approx(expected[key], abs=1e-9) for key in expected), clip.name
