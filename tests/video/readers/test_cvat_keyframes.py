"""The keyframe reduction (keyframes.greedy_keyframes) and the CVAT model the CVAT writer gives it.

Pure: no Django, no files. The 1-D rule below is plain linear interpolation of numbers, so what is
expected is worked out by hand; the CVAT model is checked against the transcription of CVAT's own code
(cvat_rule.py), and the writer against CVAT's rule with chunks small enough to cut spans into pieces.
"""

import math
import random

import numpy as np
import pytest

from ls_extensions.video.formats.cvat_video import CvatInterpolation, _cvat_corners, cvat_turn
from ls_extensions.video.keyframes import greedy_keyframes

from .cvat_rule import CvatBox, _interpolate, _Shape, find_angle_diff, read_tracks
from .test_cvat_reader import compare, written
from .tracks import CLIPS


class Linear:
    """Numbers on consecutive frames, interpolated linearly (held after the last keyframe)."""

    def __init__(self, values):
        self.values = np.asarray(values, float)

    def error(self, a, b, at):
        if b is None:
            return np.abs(self.values[a] - self.values[at])
        r = (at - a) / (b - a)
        return np.abs(self.values[a] + (self.values[b] - self.values[a]) * r - self.values[at])


def rebuilt(values, keys, tail):
    """What a tool following the Linear rule shows from the chosen keyframes."""
    frames = np.arange(len(values))
    shown = np.interp(frames, keys, np.asarray(values, float)[keys])
    if tail == 'hold':
        shown[frames > keys[-1]] = values[keys[-1]]
    return shown


def test_a_straight_run_needs_its_two_ends_and_a_held_one_only_its_start():
    straight = np.arange(100) * 0.7
    assert greedy_keyframes(100, Linear(straight), 0.5, 'keyframe').tolist() == [0, 99]
    assert greedy_keyframes(100, Linear(np.full(100, 3.0)), 0.5, 'hold').tolist() == [0]
    assert greedy_keyframes(100, Linear(straight), 0.5, 'hold').tolist() == [0, 99]
    assert greedy_keyframes(1, Linear([1.0]), 0.5, 'keyframe').tolist() == [0]
    assert greedy_keyframes(0, Linear([]), 0.5, 'keyframe').tolist() == []


def test_kinks_are_kept_and_a_stretch_within_tolerance_is_not():
    kinked = np.concatenate([np.arange(40) * 2.0, 78 - np.arange(1, 61) * 1.0])  # turns at 39
    assert greedy_keyframes(100, Linear(kinked), 0.5, 'keyframe').tolist() == [0, 39, 99]
    wobbly = kinked + np.where(np.arange(100) % 2, 0.2, -0.2)  # 0.4 px of wobble: within 0.5
    assert greedy_keyframes(100, Linear(wobbly), 0.5, 'keyframe').tolist() == [0, 39, 99]
    held = np.concatenate([np.arange(10) * 5.0, np.full(90, 45.0)])
    assert greedy_keyframes(100, Linear(held), 0.5, 'hold').tolist() == [0, 9]


def test_jitter_makes_every_box_a_keyframe():
    jitter = np.where(np.arange(50) % 2, 10.0, 0.0)
    assert greedy_keyframes(50, Linear(jitter), 0.5, 'keyframe').tolist() == list(range(50))


def test_an_open_run_leaves_its_last_stretch_undecided():
    kinked = np.concatenate([np.arange(40) * 2.0, 78 - np.arange(1, 61) * 1.0])
    assert greedy_keyframes(100, Linear(kinked), 0.5, 'open').tolist() == [0, 39]
    assert greedy_keyframes(100, Linear(np.arange(100.0)), 0.5, 'open').tolist() == [0]


@pytest.mark.parametrize('tail', ['hold', 'keyframe'])
def test_random_runs_are_rebuilt_within_tolerance_from_few_keyframes(tail):
    rng = np.random.default_rng(7)
    for _ in range(200):
        count = int(rng.integers(1, 300))
        kinks = np.sort(rng.choice(count, size=min(count, int(rng.integers(1, 8))), replace=False))
        values = np.interp(np.arange(count), kinks, rng.uniform(-100, 100, len(kinks)))
        values += rng.uniform(-0.1, 0.1, count) * rng.integers(0, 2)
        keys = greedy_keyframes(count, Linear(values), 0.5, tail)
        assert keys[0] == 0 and np.all(np.diff(keys) > 0)
        assert np.abs(rebuilt(values, keys, tail) - values).max() <= 0.5 + 1e-9
        if tail == 'keyframe':
            assert keys[-1] == count - 1
        assert len(keys) <= len(kinks) + 2


def test_cvat_angle_step_is_cvats_on_the_server_and_in_the_ui():
    angles = [0.0, 0.01, 1.5, 90.0, 179.99, 180.0, 180.01, 270.0, 359.99, 360.0]
    for right in angles:
        for left in angles:
            for rule in ('server', 'ui'):
                want = find_angle_diff(right, left, rule)
                assert float(cvat_turn(np.array([right]), np.array([left]), rule)[0]) == want, (right, left, rule)
    assert find_angle_diff(180.0, 0.0, 'server') == 1 and find_angle_diff(180.0, 0.0, 'ui') == 180


def test_the_writers_cvat_model_is_cvats_interpolation():
    rng = random.Random(3)
    for _ in range(300):
        left = _Shape(
            0, [rng.uniform(-50, 50) for _ in range(4)], rng.choice([0.0, 180.0, rng.uniform(0, 360)]), False, False
        )
        right = _Shape(rng.randint(2, 9), [rng.uniform(-50, 50) for _ in range(4)], rng.uniform(0, 360), False, False)
        values = np.array([[*left.points, left.rotation], [*right.points, right.rotation]])
        for shape in _interpolate(left, right, 'ui'):
            box = CvatBox(shape.frame, *shape.points, shape.rotation, False, False)
            model = _cvat_corners(np.array([shape.points]), np.array([shape.rotation]))[0]
            assert max(math.dist(p, q) for p, q in zip(box.corners(), model.tolist(), strict=True)) < 1e-9
            rule = CvatInterpolation(
                np.array([0, right.frame, shape.frame]), np.vstack([values, values[:1]]), model[None].repeat(3, 0)
            )
            assert rule.error(np.array([0]), np.array([1]), np.array([2]))[0] < 1e-9


def test_half_turns_need_a_keyframe_since_cvats_server_and_ui_disagree():
    values = np.array([[0, 0, 40, 20, 0.0], [0, 0, 40, 20, 180.0], [0, 0, 40, 20, 0.0]])
    shapes = [_Shape(0, list(values[0, :4]), 0.0, False, False), _Shape(2, list(values[1, :4]), 180.0, False, False)]
    [ui_middle] = _interpolate(*shapes, 'ui')
    [server_middle] = _interpolate(*shapes, 'server')
    assert (ui_middle.rotation, server_middle.rotation) == (90.0, 0.5)
    target = _cvat_corners(np.array([ui_middle.points]), np.array([ui_middle.rotation]))
    rule = CvatInterpolation(np.array([0, 2, 1]), values, target.repeat(3, 0))
    assert rule.error(np.array([0]), np.array([1]), np.array([2]))[0] > 10  # the server's box is a quarter turn off


@pytest.mark.parametrize('chunk_frames', [1, 3, 7])
def test_small_chunks_cut_spans_and_cvat_still_gets_every_box(chunk_frames):
    files = written(chunk_frames=chunk_frames)
    for clip in CLIPS:
        for rule in ('server', 'ui'):
            tracks = read_tracks(files[clip.name], rule)
            got = {
                track_id: {frame: box.corners() for frame, box in frames.items()} for track_id, frames in tracks.items()
            }
            assert compare(clip, got) == [], (clip.name, rule)
