"""Which frames of an annotated video training keeps (`video.frame_sampling.choose_frames`)."""

import pytest

from ls_extensions.video.frame_sampling import FrameSampling, choose_frames


def moving(frames, speed, size=40.0):
    """{frame: {0: xyxy}} of one box moving right by `speed` px per frame."""
    return {f: {0: (speed * f, 10.0, speed * f + size, 10.0 + size)} for f in range(1, frames + 1)}


def test_a_still_or_empty_video_keeps_a_frame_every_max_gap():
    rule = FrameSampling(stride=5, motion_iou=0.7, max_gap=50)
    assert choose_frames(200, {}, rule) == [1, 51, 101, 151]
    assert choose_frames(200, moving(200, 0.0), rule) == [1, 51, 101, 151]


def test_a_fast_box_is_sampled_every_stride_and_a_slow_one_when_it_has_moved_enough():
    rule = FrameSampling(stride=5, motion_iou=0.7, max_gap=50)
    assert choose_frames(30, moving(30, 8.0), rule) == [1, 6, 11, 16, 21, 26]
    # 1 px per frame, 40 px wide: IoU with the last kept box is (40 - d) / (40 + d), below 0.7 from d = 8
    assert choose_frames(60, moving(60, 1.0), rule) == [1, 9, 17, 25, 33, 41, 49, 57]


def test_a_track_entering_or_leaving_keeps_the_first_frame_the_stride_allows():
    rule = FrameSampling(stride=5, motion_iou=0.7, max_gap=50)
    boxes = {f: {0: (10.0, 10.0, 50.0, 50.0)} for f in range(1, 101)}
    for f in range(23, 41):
        boxes[f][1] = (60.0, 60.0, 90.0, 90.0)
    assert choose_frames(100, boxes, rule) == [1, 23, 41, 91]


def test_a_video_of_one_frame_and_a_stride_of_one():
    assert choose_frames(1, {}) == [1]
    assert choose_frames(0, {}) == []
    assert choose_frames(4, moving(4, 30.0), FrameSampling(stride=1, motion_iou=0.9, max_gap=10)) == [1, 2, 3, 4]


@pytest.mark.parametrize(('stride', 'iou', 'gap'), [(0, 0.7, 50), (60, 0.7, 50), (5, 1.5, 50), (5, -0.1, 50)])
def test_an_impossible_rule_is_refused(stride, iou, gap):
    with pytest.raises(ValueError):
        FrameSampling(stride=stride, motion_iou=iou, max_gap=gap)
