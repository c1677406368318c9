"""Detections linked into tracks by ByteTrack (Roboflow's `trackers`), scored with motmetrics against ground truth.

Detections are synthetic ground truth plus 1 % noise with 3 % of the boxes dropped (tests/video/synthetic_tracks.py):
objects moving straight, turning, entering, leaving, and two of the same class crossing. Thresholds are the
values measured over seeds 0-3, lowered by a margin.
"""

import numpy as np
import pytest

from ls_extensions.video.tracking import FrameDetections, clip_boxes, link_tracks
from tests.video.synthetic_tracks import (
    HEIGHT,
    WIDTH,
    assert_drawn,
    crossing_scene,
    detect,
    linked_boxes,
    mot_scores,
    shown_boxes,
    track_regions,
)

pytest.importorskip('trackers', reason='ByteTrack lives in the `trackers` package (supervision 0.31 dropped it)')

FRAMES = 300
FPS = 25.0


@pytest.mark.parametrize('per_class', [True, False])
@pytest.mark.parametrize('seed', [0, 1])
def test_tracks_keep_their_identity_through_a_crossing(seed, per_class):
    """Measured: linked MOTA 0.966-0.975, IDF1 0.983-0.987 (misses: the dropped boxes); as the UI draws the
    reduced keyframes MOTA 0.999, IDF1 0.999-1.0; no switch."""
    scene = crossing_scene(FRAMES)
    tracks = link_tracks(detect(scene, seed=seed), FRAMES, WIDTH, HEIGHT, fps=FPS, per_class=per_class)
    assert len(tracks) == len(scene)
    assert sorted(t.class_id for t in tracks) == sorted(t.class_id for t in scene)
    linked = mot_scores(scene, linked_boxes(tracks), FRAMES)
    assert linked['num_switches'] == 0 and linked['num_false_positives'] == 0
    assert linked['mota'] >= 0.93 and linked['idf1'] >= 0.96
    made = track_regions(tracks, FRAMES, fps=FPS, max_gap=2)
    for track in tracks:  # the UI draws every box the tracker linked, within IoU 0.9
        assert_drawn(track.frame, track.xyxy, made[track.track_id]['value']['sequence'], FRAMES, max_gap=2)
    shown = mot_scores(scene, shown_boxes(made, FRAMES), FRAMES)
    assert shown['num_switches'] == 0 and shown['num_false_positives'] == 0
    assert shown['mota'] >= 0.98 and shown['idf1'] >= 0.99


def test_detections_on_every_third_frame_make_tracks_the_ui_fills_in():
    """Measured: the tracker's boxes cover a third of the frames (MOTA 0.32), the UI's interpolation of the
    keyframes all of them: MOTA 0.978, IDF1 0.989, no switch."""
    scene = crossing_scene(FRAMES)
    tracks = link_tracks(detect(scene, stride=3), FRAMES, WIDTH, HEIGHT, stride=3, fps=FPS)
    assert len(tracks) == len(scene)
    assert all(((t.frame - 1) % 3 == 0).all() for t in tracks)
    made = track_regions(tracks, FRAMES, fps=FPS, max_gap=6)
    for track in tracks:
        assert_drawn(track.frame, track.xyxy, made[track.track_id]['value']['sequence'], FRAMES, max_gap=6)
    shown = mot_scores(scene, shown_boxes(made, FRAMES), FRAMES)
    assert shown['num_switches'] == 0 and shown['mota'] >= 0.95 and shown['idf1'] >= 0.97


def test_a_track_is_its_detections_on_the_frames_it_was_seen():
    scene = crossing_scene(FRAMES)
    detections = detect(scene, seed=0)
    given = {(d.frame, tuple(box)) for d in detections for box in clip_boxes(d.xyxy, WIDTH, HEIGHT)[0].tolist()}
    for track in link_tracks(detections, FRAMES, WIDTH, HEIGHT, fps=FPS):
        assert (np.diff(track.frame) > 0).all()
        assert {(f, tuple(b)) for f, b in zip(track.frame.tolist(), track.xyxy.tolist(), strict=True)} <= given
        assert ((track.score >= 0.7) & (track.score <= 0.95)).all()


def frame(number, boxes, scores=None, classes=None):
    boxes = np.asarray(boxes, float).reshape(-1, 4)
    return FrameDetections(
        number,
        boxes,
        np.full(len(boxes), 0.9) if scores is None else np.asarray(scores, float),
        np.zeros(len(boxes), int) if classes is None else np.asarray(classes),
    )


def test_no_detections_give_no_tracks():
    assert link_tracks([], FRAMES, WIDTH, HEIGHT) == []
    assert link_tracks([frame(1, []), frame(2, [])], FRAMES, WIDTH, HEIGHT) == []


def test_boxes_outside_the_frame_or_not_finite_are_dropped_and_partly_outside_ones_clipped():
    steady = [[100 + f, 100, 200 + f, 200] for f in range(20)]
    frames = [
        frame(f + 1, [steady[f], [WIDTH + 10, 0, WIDTH + 90, 50], [np.nan, 0, 10, 10], [-30, 300, 40, 380]])
        for f in range(20)
    ]
    tracks = link_tracks(frames, FRAMES, WIDTH, HEIGHT)
    assert len(tracks) == 2
    assert all(len(t) == 20 for t in tracks)  # ByteTrack's unconfirmed first frame is put back
    assert np.array_equal(tracks[1].xyxy[0], [0, 300, 40, 380])  # clipped at the left edge


@pytest.mark.parametrize(
    ('frames', 'options', 'message'),
    [
        ([frame(0, [])], {}, 'outside the video'),
        ([frame(301, [])], {}, 'outside the video'),
        ([frame(2, [])], {'stride': 3}, 'not a detection frame'),
        ([frame(1, []), frame(1, [])], {}, 'given twice'),
        ([frame(1, [[0, 0, 9, 9]], scores=[0.9, 0.8])], {}, '1 boxes, 2 scores'),
        ([], {'stride': 0}, 'must be >= 1'),
    ],
)
def test_detections_that_cannot_be_linked_are_refused_clearly(frames, options, message):
    with pytest.raises(ValueError, match=message):
        link_tracks(frames, FRAMES, WIDTH, HEIGHT, **options)
