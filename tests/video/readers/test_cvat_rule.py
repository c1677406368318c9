"""The transcription of CVAT's import rule (cvat_rule.py) on small hand-made files, worked out by hand."""

import pytest

from .cvat_rule import CvatImportError, read_tracks

HEAD = (
    '<annotations><version>1.1</version><meta><task><size>{size}</size><mode>interpolation</mode>'
    '<start_frame>0</start_frame><stop_frame>{stop}</stop_frame></task></meta>'
    '<track id="1" label="a" source="manual">{boxes}</track></annotations>'
)


def box(frame, key=1, outside=0, occluded=0, x=0.0, rotation=0.0):
    return (
        f'<box frame="{frame}" keyframe="{key}" outside="{outside}" occluded="{occluded}" '
        f'xtl="{x}" ytl="0" xbr="{x + 10}" ybr="10" rotation="{rotation}"></box>'
    )


def read(*boxes, size=20, rule='server'):
    return read_tracks(HEAD.format(size=size, stop=size - 1, boxes=''.join(boxes)).encode(), rule)[1]


def test_only_keyframes_count_and_frames_between_are_linear():
    shown = read(box(2, x=0), box(5, key=0, x=99), box(12, x=100), box(15, outside=1, x=100))
    assert sorted(shown) == list(range(2, 15))
    assert shown[5].xtl == 30.0 and not shown[5].keyframe  # the keyframe="0" box at 5 is ignored
    assert shown[13].xtl == 100.0 and shown[12].keyframe


def test_the_last_keyframe_is_held_and_occluded_comes_from_the_left_keyframe():
    shown = read(box(3, occluded=1, x=10), box(6, x=40), size=9)
    assert sorted(shown) == list(range(3, 9))
    assert shown[4].occluded and not shown[6].occluded and shown[8].xtl == 40.0


def test_keyframes_are_sorted_and_an_outside_one_hides_until_the_next():
    shown = read(box(10, x=50), box(0, x=0), box(4, outside=1), box(8, x=50))
    assert sorted(shown) == [0, 1, 2, 3, *range(8, 20)]
    assert shown[2].xtl == 0.0  # interpolated 0 -> outside keyframe at 4 (x=0)


def test_rotation_turns_the_short_way_and_half_turns_differ_between_server_and_ui():
    assert read(box(0, rotation=350), box(2, rotation=10))[1].rotation == 0.0
    assert read(box(0, rotation=10), box(2, rotation=350))[1].rotation == 0.0
    assert read(box(0, rotation=0), box(2, rotation=180), rule='server')[1].rotation == 0.5
    assert read(box(0, rotation=0), box(2, rotation=180), rule='ui')[1].rotation == 90.0


def test_what_cvat_refuses():
    with pytest.raises(CvatImportError, match='two keyframes on frame 3'):
        read(box(3), box(3, x=5))
    with pytest.raises(CvatImportError, match='frame 20 is out of the task range'):
        read(box(3), box(20))
