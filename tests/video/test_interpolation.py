"""The UI's keyframe rule (docs/video-interpolation.md), case by case, and against the per-frame oracle."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ls_extensions.video.geometry import bounding_box, corners, to_cvat_box
from ls_extensions.video.interpolation import (
    ExpansionPlan,
    FrameBoxes,
    MalformedSequence,
    expand_sequence,
    iter_expanded,
    normalize_angle,
    normalize_sequence,
)
from tests.video.reference_interpolation import reference_expand


def kf(frame, enabled=True, x=0.0, rotation=0.0, **extra):
    return {
        'frame': frame,
        'enabled': enabled,
        'x': x,
        'y': 5.0,
        'width': 10.0,
        'height': 20.0,
        'rotation': rotation,
        **extra,
    }


def frames(boxes):
    return boxes.frame.tolist()


def as_rows(boxes: FrameBoxes) -> list[dict]:
    names = ('frame', 'x', 'y', 'width', 'height', 'rotation', 'keyframe', 'continues')
    return [
        dict(zip(names, row, strict=True)) for row in zip(*(getattr(boxes, n).tolist() for n in names), strict=True)
    ]


# ---------------------------------------------------------------- the doc's examples


def test_enabled_keyframe_is_held_to_the_end():
    boxes = expand_sequence([kf(10, True, x=7.5)], 15)
    assert frames(boxes) == [10, 11, 12, 13, 14, 15]
    assert boxes.x.tolist() == [7.5] * 6
    assert boxes.keyframe.tolist() == [True, False, False, False, False, False]
    assert boxes.continues.all()


def test_disabled_keyframe_shows_only_its_own_frame():
    boxes = expand_sequence([kf(10, False)], 15)
    assert frames(boxes) == [10]
    assert boxes.continues.tolist() == [False]


def test_span_ends_on_a_disabled_keyframe_interpolating_towards_it():
    boxes = expand_sequence([kf(1, True, x=0), kf(5, False, x=40)], 8)
    assert frames(boxes) == [1, 2, 3, 4, 5]
    assert boxes.x.tolist() == [0.0, 10.0, 20.0, 30.0, 40.0]
    assert boxes.keyframe.tolist() == [True, False, False, False, True]
    assert boxes.continues.tolist() == [True, True, True, True, False]


def test_disabled_first_keyframe_then_enabled():
    boxes = expand_sequence([kf(1, False, x=0), kf(5, True, x=40)], 8)
    assert frames(boxes) == [1, 5, 6, 7, 8]
    assert boxes.x.tolist() == [0.0, 40.0, 40.0, 40.0, 40.0]
    assert boxes.continues.tolist() == [False, True, True, True, True]


def test_no_box_before_the_first_keyframe():
    assert frames(expand_sequence([kf(4, True), kf(6, True)], 8)) == [4, 5, 6, 7, 8]


# ---------------------------------------------------------------- stored order, duplicates, defaults


def test_unsorted_walk_holds_the_last_stored_keyframe():
    # f=10 matches the first keyframe; from f=11 the walk passes both, so `prev` is the stored-last (frame 5).
    # f<10: the walk stops at frame 10 first, so there is no `prev` and frame 5 itself shows nothing.
    boxes = expand_sequence([kf(10, True, x=0), kf(5, True, x=50)], 13)
    assert frames(boxes) == [10, 11, 12, 13]
    assert boxes.x.tolist() == [0.0, 50.0, 50.0, 50.0]
    assert boxes.keyframe.tolist() == [True, False, False, False]


def test_unsorted_interpolates_from_the_stored_previous_keyframe():
    # For f=6,7 the walk passes frames 5 and 3, stops at 8: prev = frame 3 (x=30), r = (f-3)/5.
    # Visibility: the last stored keyframe with frame <= f is frame 3 (enabled) for f in 5..7.
    boxes = expand_sequence([kf(5, False, x=0), kf(3, True, x=30), kf(8, False, x=80)], 10)
    assert frames(boxes) == [5, 6, 7, 8]
    assert boxes.x.tolist() == [0.0, 60.0, 70.0, 80.0]
    assert boxes.keyframe.tolist() == [True, False, False, True]


def test_unsorted_disabled_keyframe_can_hide_its_own_frame():
    # On frame 5 the closest keyframe is the stored-last one with frame <= 5, i.e. frame 3 (disabled).
    assert frames(expand_sequence([kf(5, True), kf(3, False)], 8)) == []
    assert frames(expand_sequence([kf(5, True), kf(3, True)], 8)) == [5, 6, 7, 8]


def test_duplicate_frame_uses_first_for_geometry_and_last_for_visibility():
    sequence = [kf(1, True, x=0), kf(5, True, x=10), kf(5, False, x=99), kf(9, True, x=20)]
    boxes = expand_sequence(sequence, 9)
    assert frames(boxes) == [1, 2, 3, 4, 5, 9]  # hidden after the disabled duplicate, back on keyframe 9
    assert boxes.x.tolist() == [0.0, 2.5, 5.0, 7.5, 10.0, 20.0]
    enabled_last = expand_sequence([kf(1, True, x=0), kf(5, False, x=10), kf(5, True, x=99), kf(9, True, x=20)], 9)
    assert frames(enabled_last) == list(range(1, 10))
    # after the duplicates `prev` is the second one (x=99): 99 + (20 - 99) * 0.25
    assert enabled_last.x.tolist()[4:] == [10.0, 79.25, 59.5, 39.75, 20.0]


def test_missing_enabled_is_false_and_missing_rotation_is_zero():
    sequence = [{'frame': 3, 'x': 1, 'y': 2, 'width': 3, 'height': 4}]
    assert normalize_sequence(sequence)[0].tolist() == (3, False, 1.0, 2.0, 3.0, 4.0, 0.0)
    boxes = expand_sequence(sequence, 6)
    assert frames(boxes) == [3]
    assert boxes.rotation.tolist() == [0.0]


def test_enabled_uses_javascript_truthiness():
    truthy = normalize_sequence([kf(1, e) for e in (1, 'no', [], {})])['enabled'].tolist()
    falsy = normalize_sequence([kf(1, e) for e in (0, '', None, float('nan'), False)])['enabled'].tolist()
    assert truthy == [True] * 4
    assert falsy == [False] * 5


def test_normalize_keeps_stored_order_and_accepts_whole_float_frames():
    kfs = normalize_sequence([kf(9.0), kf(2), kf(5)])
    assert kfs['frame'].tolist() == [9, 2, 5]
    assert kfs['frame'].dtype == np.int64
    assert as_rows(expand_sequence(kfs, 12)) == as_rows(expand_sequence([kf(9), kf(2), kf(5)], 12))


# ---------------------------------------------------------------- rotation


def test_rotation_takes_the_short_way_through_180():
    boxes = expand_sequence([kf(1, rotation=170), kf(11, rotation=-170)], 11)
    assert boxes.rotation.tolist() == pytest.approx(
        [170, 172, 174, 176, 178, 180, -178, -176, -174, -172, -170], abs=1e-12
    )
    assert boxes.rotation[5] == 180.0  # (-180, 180]: exactly 180, not -180


def test_rotation_short_way_backwards_through_zero():
    boxes = expand_sequence([kf(1, rotation=350), kf(3, rotation=10)], 3)
    # turn = norm(10 - 350) = 20; frame 2: norm(350 + 10) = 0
    assert boxes.rotation.tolist() == [350.0, 0.0, 10.0]


def test_raw_rotation_on_keyframes_and_after_the_last():
    boxes = expand_sequence([kf(1, rotation=370), kf(3, rotation=10)], 5)
    assert boxes.rotation.tolist() == [370.0, 10.0, 10.0, 10.0, 10.0]
    assert expand_sequence([kf(1, rotation=-400)], 2).rotation.tolist() == [-400.0, -400.0]


def test_half_turn_goes_clockwise():
    # norm(180) = 180, so -90 -> 90 passes through 0
    assert expand_sequence([kf(1, rotation=-90), kf(3, rotation=90)], 3).rotation.tolist() == [-90.0, 0.0, 90.0]


def _literal_norm(a):
    while a > 0:
        a -= 360
    return math.fmod(a - 180, 360) + 180


@pytest.mark.parametrize(
    'angle',
    [
        0.0,
        -0.0,
        1e-300,
        5e-324,
        180.0,
        -180.0,
        360.0,
        720.0,
        540.0000001,
        359.99999999999994,
        1080.5,
        -1000.25,
        1e6 + 0.1,
        0.1 + 0.2,
    ],
)
def test_normalize_angle_matches_the_javascript_loop_bit_for_bit(angle):
    assert normalize_angle(angle) == _literal_norm(angle)
    assert math.copysign(1, normalize_angle(angle)) == math.copysign(1, _literal_norm(angle))


@settings(max_examples=200, deadline=None)
@given(st.lists(st.floats(-5000, 5000, allow_nan=False), min_size=1, max_size=20))
def test_normalize_angle_vectorised_equals_loop(angles):
    assert normalize_angle(np.array(angles)).tolist() == [_literal_norm(a) for a in angles]


# ---------------------------------------------------------------- frame range


def test_keyframe_beyond_frames_count_still_drives_interpolation():
    boxes = expand_sequence([kf(1, x=0), kf(21, x=20)], 10)
    assert frames(boxes) == list(range(1, 11))
    assert boxes.x.tolist() == [float(i) for i in range(10)]


def test_frames_count_smaller_than_every_keyframe():
    assert len(expand_sequence([kf(50), kf(60)], 10)) == 0


def test_window_and_stop_are_clipped_to_frames_count():
    boxes = expand_sequence([kf(1, x=0), kf(11, x=10)], 8, start=3, stop=100)
    assert frames(boxes) == [3, 4, 5, 6, 7, 8]
    assert boxes.x.tolist() == [2.0, 3.0, 4.0, 5.0, 6.0, 7.0]


def test_iter_expanded_chunks_skip_invisible_stretches():
    sequence = [kf(1, False), kf(1000, True, x=1), kf(1100, False, x=2)]
    chunks = list(iter_expanded(sequence, 5000, chunk_frames=40))
    assert [(frames(c)[0], frames(c)[-1], len(c)) for c in chunks] == [
        (1, 1, 1),
        (1000, 1039, 40),
        (1040, 1079, 40),
        (1080, 1100, 21),
    ]
    assert as_rows(FrameBoxes.concat(chunks)) == as_rows(expand_sequence(sequence, 5000))


def test_precomputed_boxes_expand_like_a_plan():
    plan = ExpansionPlan([kf(2, x=0), kf(6, False, x=4)])
    boxes = plan.expand(1, 10)
    assert as_rows(boxes.expand(3, 5)) == as_rows(plan.expand(3, 5))
    assert boxes.next_visible(7) is None and plan.next_visible(7) is None
    assert boxes.next_visible(1) == plan.next_visible(1) == 2


# ---------------------------------------------------------------- malformed input


@pytest.mark.parametrize(
    ('sequence', 'message'),
    [
        ([], 'no keyframes'),
        (None, 'must be a list'),
        ({'frame': 1}, 'must be a list'),
        ([kf(1), 'x'], 'keyframe #1: expected an object'),
        ([{'frame': 1, 'y': 0, 'width': 1, 'height': 1}], '"x" is missing'),
        ([kf(1, x='5')], '"x" must be a number'),
        ([kf(1, x=True)], '"x" must be a number'),
        ([kf(1, x=float('nan'))], '"x" must be finite'),
        ([kf(1, rotation=float('inf'))], '"rotation" must be finite'),
        ([kf(1, x=10**400)], '"x" must be finite'),
        ([dict(kf(1), height=None)], '"height" is missing'),
        ([kf(2.5)], '"frame" must be a whole number'),
        ([kf(2**60)], '"frame" must be a whole number'),
        ([kf(-(2**60))], '"frame" must be a whole number'),
        ([kf('3')], '"frame" must be a number'),
        ([kf(True)], '"frame" must be a number'),
        ([{'x': 0, 'y': 0, 'width': 1, 'height': 1}], '"frame" is missing'),
    ],
)
def test_malformed_sequences_are_rejected_with_a_reason(sequence, message):
    with pytest.raises(MalformedSequence, match=message):
        expand_sequence(sequence, 10)


def test_null_rotation_counts_as_missing():
    assert expand_sequence([kf(1, rotation=None)], 1).rotation.tolist() == [0.0]


# ---------------------------------------------------------------- the vectorised walk equals the per-frame oracle

keyframes = st.fixed_dictionaries(
    {
        'frame': st.integers(-2, 30),  # 0 and below: tracker output converted 0-based, drawn from frame 1
        'x': st.floats(-50, 150, allow_nan=False, width=32),
        'y': st.floats(-50, 150, allow_nan=False),
        'width': st.floats(0, 100, allow_nan=False),
        'height': st.sampled_from([0.0, 10.0, 33.3]),
    },
    optional={
        'enabled': st.booleans(),
        'rotation': st.one_of(st.floats(-720, 720, allow_nan=False), st.sampled_from([0, 90, 180, -180, 360, 170])),
    },
)


@settings(max_examples=200, deadline=None)
@given(st.lists(keyframes, min_size=1, max_size=7), st.integers(1, 40))
def test_expand_equals_reference(sequence, frames_count):
    assert as_rows(expand_sequence(sequence, frames_count)) == reference_expand(sequence, frames_count)


@settings(max_examples=100, deadline=None)
@given(st.lists(keyframes, min_size=1, max_size=5), st.integers(1, 40), st.integers(1, 7))
def test_chunks_concatenate_to_the_full_expansion(sequence, frames_count, chunk):
    chunks = list(iter_expanded(sequence, frames_count, chunk_frames=chunk))
    assert all(0 < len(c) <= chunk for c in chunks)
    assert as_rows(FrameBoxes.concat(chunks)) == reference_expand(sequence, frames_count)


def test_a_keyframe_at_frame_0_interpolates_into_frame_1_as_the_ui_draws_it():
    # The UI walks frame 0 like any keyframe: frame 1 lies a quarter of the way from frame 0 to frame 4.
    boxes = expand_sequence([kf(0, True, x=0), kf(4, True, x=40)], 6)
    assert frames(boxes) == [1, 2, 3, 4, 5, 6]
    assert boxes.x.tolist() == [10.0, 20.0, 30.0, 40.0, 40.0, 40.0]
    assert boxes.keyframe.tolist() == [False, False, False, True, False, False]


def test_a_track_entirely_before_frame_1_is_held_if_enabled_and_absent_if_not():
    assert frames(expand_sequence([kf(-5, True), kf(0, True, x=5)], 3)) == [1, 2, 3]
    assert len(expand_sequence([kf(-5, True), kf(0, False, x=5)], 3)) == 0


def test_reference_agrees_on_a_hand_worked_case():
    rows = reference_expand([kf(1, True, x=0), kf(3, False, x=2)], 4)
    assert [(r['frame'], r['x'], r['keyframe'], r['continues']) for r in rows] == [
        (1, 0.0, True, True),
        (2, 1.0, False, True),
        (3, 2.0, True, False),
    ]


# ---------------------------------------------------------------- pixel geometry


def test_corners_rotate_clockwise_about_the_top_left():
    points = corners(10, 10, 20, 10, 90, 100, 100)
    np.testing.assert_allclose(points, [[10, 10], [10, 30], [0, 30], [0, 10]], atol=1e-9)


def test_bounding_box_of_a_rotated_box_and_exact_when_straight():
    assert [float(v) for v in bounding_box(10, 10, 20, 10, 90, 100, 100)] == pytest.approx([0, 10, 10, 20], abs=1e-9)
    straight = bounding_box(
        np.array([12.5]), np.array([7.0]), np.array([33.3]), np.array([1.0]), np.array([0.0]), 640, 480
    )
    assert [v.tolist() for v in straight] == [[80.0], [33.6], [33.3 * 640 / 100], [4.8]]


def test_cvat_box_rotated_about_its_centre_draws_the_same_rectangle():
    xtl, ytl, xbr, ybr, rotation = (float(v) for v in to_cvat_box(10, 10, 20, 10, 90, 100, 100))
    assert (xtl, ytl, xbr, ybr, rotation) == pytest.approx((-5, 15, 15, 25, 90), abs=1e-9)
    same = corners(xtl, ytl, xbr - xtl, ybr - ytl, rotation, 100, 100, about='center')
    np.testing.assert_allclose(same, corners(10, 10, 20, 10, 90, 100, 100), atol=1e-9)


@settings(max_examples=100, deadline=None)
@given(st.floats(-50, 150), st.floats(-50, 150), st.floats(0, 100), st.floats(0, 100), st.floats(-720, 720))
def test_cvat_conversion_round_trips_any_box(x, y, w, h, rotation):
    xtl, ytl, xbr, ybr, angle = to_cvat_box(x, y, w, h, rotation, 640, 360)
    assert 0 <= angle < 360
    ls = corners(x, y, w, h, rotation, 640, 360)
    cvat = corners(
        xtl * 100 / 640,
        ytl * 100 / 360,
        (xbr - xtl) * 100 / 640,
        (ybr - ytl) * 100 / 360,
        angle,
        640,
        360,
        about='center',
    )
    np.testing.assert_allclose(cvat, ls, atol=1e-6)
