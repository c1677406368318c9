"""A tracked object reduced to few Label Studio keyframes that the UI interpolates back onto every tracked box.

The tracker's boxes here are ground truth plus seeded noise with dropped frames (tests/video/synthetic_tracks.py),
so this file needs no tracker; the keyframes are expanded with our engine of the UI's rule (`expand_sequence`).
"""

import numpy as np
import pytest

from ls_extensions.video.track_keyframes import reduce_track, smooth_track, track_region
from tests.video.synthetic_tracks import HEIGHT, WIDTH, assert_drawn, crossing_scene, drawn_boxes, observe

FRAMES = 300
FPS = 25.0


def shown(sequence, frames_count=FRAMES):
    return drawn_boxes(sequence, frames_count)


def assert_reproduced(frames, xyxy, sequence, max_gap, frames_count=FRAMES):
    return assert_drawn(frames, xyxy, sequence, frames_count, max_gap)


@pytest.mark.parametrize('stride', [1, 3])
@pytest.mark.parametrize('truth', crossing_scene(FRAMES), ids=lambda t: f'object{t.track_id}')
def test_the_ui_draws_every_tracked_box_within_the_tolerance(truth, stride):
    frames, xyxy, _ = observe(truth, np.random.default_rng(truth.track_id), drop=0.05, stride=stride)
    sequence = reduce_track(frames, xyxy, WIDTH, HEIGHT, FRAMES, max_gap=2 * stride)
    assert_reproduced(frames, xyxy, sequence, max_gap=2 * stride)
    assert [k['frame'] for k in sequence] == sorted({k['frame'] for k in sequence})
    assert all(k['rotation'] == 0 for k in sequence)


def test_smooth_motion_needs_over_ten_times_fewer_keyframes_than_one_per_frame():
    """Measured: 1,576 boxes on 15 keyframes at 1 % noise (over 100x); asserted with a wide margin."""
    rng = np.random.default_rng(7)
    boxes = keyframes = 0
    for truth in crossing_scene(FRAMES):
        frames, xyxy, _ = observe(truth, rng, drop=0.0)
        boxes += len(frames)
        keyframes += len(reduce_track(frames, xyxy, WIDTH, HEIGHT, FRAMES))
    assert boxes / keyframes >= 30


def test_a_track_lost_for_longer_than_the_gap_is_hidden_there():
    truth = crossing_scene(FRAMES)[0]
    frames, xyxy, _ = observe(truth, np.random.default_rng(3), drop=0.0)
    lost = (frames > 100) & (frames <= 140)
    frames, xyxy = frames[~lost], xyxy[~lost]
    sequence = reduce_track(frames, xyxy, WIDTH, HEIGHT, FRAMES, max_gap=8)
    before = [k for k in sequence if k['frame'] <= 100]
    assert before[-1]['frame'] == 100 and before[-1]['enabled'] is False  # shown on frame 100 only
    assert next(k for k in sequence if k['frame'] > 100)['frame'] == 141
    drawn = shown(sequence)
    assert not set(range(101, 141)) & set(drawn)
    assert {100, 141} <= set(drawn)
    assert_reproduced(frames, xyxy, sequence, max_gap=8)


def test_a_short_gap_is_bridged_by_interpolation():
    truth = crossing_scene(FRAMES)[0]
    frames, xyxy, _ = observe(truth, np.random.default_rng(3), drop=0.0, noise=0.0)
    lost = (frames > 100) & (frames <= 105)
    sequence = reduce_track(frames[~lost], xyxy[~lost], WIDTH, HEIGHT, FRAMES, max_gap=8)
    assert all(k['enabled'] for k in sequence)  # lasts to the last frame: the last keyframe is held
    assert set(range(101, 106)) <= set(shown(sequence))


def test_a_track_ending_before_the_video_does_ends_on_a_disabled_keyframe():
    truth = crossing_scene(FRAMES)[3]  # leaves through the right edge
    frames, xyxy, _ = observe(truth, np.random.default_rng(4), drop=0.0)
    sequence = reduce_track(frames, xyxy, WIDTH, HEIGHT, FRAMES)
    assert sequence[-1]['frame'] == frames[-1] and sequence[-1]['enabled'] is False
    assert all(k['enabled'] for k in sequence[:-1])
    assert max(shown(sequence)) == frames[-1]


def test_a_still_object_to_the_end_is_one_held_keyframe():
    frames = np.arange(50, FRAMES + 1)
    xyxy = np.tile([100.0, 100.0, 200.0, 150.0], (len(frames), 1))
    sequence = reduce_track(frames, xyxy, WIDTH, HEIGHT, FRAMES)
    assert sequence == [
        {
            'frame': 50,
            'enabled': True,
            'rotation': 0,
            'x': 100 / 12.8,
            'y': 100 / 7.2,
            'width': 100 / 12.8,
            'height': 50 / 7.2,
        }
    ]
    assert sorted(shown(sequence)) == list(range(50, FRAMES + 1))


def make_region(frames, xyxy, scores=None):
    return track_region(
        frames,
        xyxy,
        WIDTH,
        HEIGHT,
        FRAMES,
        fps=FPS,
        label='Car',
        region_id='r',
        from_name='box',
        to_name='video',
        scores=scores,
    )


def test_the_region_is_a_label_studio_videorectangle():
    truth = crossing_scene(FRAMES)[1]
    frames, xyxy, scores = observe(truth, np.random.default_rng(5))
    region = make_region(frames, xyxy, scores)
    assert set(region) == {'type', 'from_name', 'to_name', 'id', 'value', 'score'}
    assert (region['type'], region['from_name'], region['to_name'], region['id']) == (
        'videorectangle',
        'box',
        'video',
        'r',
    )
    value = region['value']
    assert value['labels'] == ['Car'] and value['framesCount'] == FRAMES and value['duration'] == FRAMES / FPS
    for keyframe in value['sequence']:
        assert set(keyframe) == {'frame', 'enabled', 'rotation', 'x', 'y', 'width', 'height', 'time'}
        assert keyframe['time'] == keyframe['frame'] / FPS  # what the UI writes on save (VideoRegion.serialize)
        assert all(type(keyframe[k]) is float for k in ('x', 'y', 'width', 'height'))
    assert region['score'] == pytest.approx(scores.mean())
    assert_reproduced(frames, xyxy, value['sequence'], max_gap=8)


def test_an_empty_track_gives_no_keyframes_and_no_region():
    assert reduce_track([], np.empty((0, 4)), WIDTH, HEIGHT, FRAMES) == []
    assert make_region([], []) is None


def test_a_one_frame_track_is_one_disabled_keyframe_drawn_on_its_frame_only():
    sequence = make_region([10], [[10, 20, 110, 220]], scores=[0.8])['value']['sequence']
    assert [(k['frame'], k['enabled']) for k in sequence] == [(10, False)]
    assert sorted(shown(sequence)) == [10]
    last = make_region([FRAMES], [[10, 20, 110, 220]])['value']['sequence']
    assert [(k['frame'], k['enabled']) for k in last] == [(FRAMES, True)]  # on the last frame: held, nothing follows


def test_boxes_touching_the_edge_are_kept_exactly():
    xyxy = [[0, 0, 100, 100], [WIDTH - 100, HEIGHT - 50, WIDTH, HEIGHT]]
    sequence = make_region([1, 2], xyxy)['value']['sequence']
    assert [(k['x'], k['y'], k['x'] + k['width'], k['y'] + k['height']) for k in sequence] == [
        (0, 0, 100 / 12.8, 100 / 7.2),
        ((WIDTH - 100) / 12.8, (HEIGHT - 50) / 7.2, 100.0, 100.0),
    ]


def test_boxes_partly_outside_are_clipped_and_boxes_entirely_outside_are_dropped():
    xyxy = [[-50, 10, 50, 60], [WIDTH + 5, 10, WIDTH + 50, 60], [10, 10, 60, np.nan], [1200, 700, 1300, 800]]
    result = make_region([1, 2, 3, 4], xyxy, scores=[0.9, 0.1, 0.1, 0.5])
    sequence = result['value']['sequence']
    assert [k['frame'] for k in sequence] == [1, 4]  # frames 2 (outside) and 3 (not finite) are not seen
    assert (sequence[0]['x'], sequence[0]['width']) == (0.0, 50 / 12.8)
    assert (sequence[1]['x'] + sequence[1]['width'], sequence[1]['y'] + sequence[1]['height']) == (100.0, 100.0)
    assert result['score'] == pytest.approx(0.7)  # the kept boxes' scores only
    assert make_region([5], [[-100, -100, -1, -1]]) is None


@pytest.mark.parametrize(
    ('frames', 'xyxy', 'message'),
    [
        ([3, 2], [[0, 0, 9, 9]] * 2, 'ascending'),
        ([2, 2], [[0, 0, 9, 9]] * 2, 'ascending'),
        ([0], [[0, 0, 9, 9]], 'within 1..300'),
        ([301], [[0, 0, 9, 9]], 'within 1..300'),
        ([1, 2], [[0, 0, 9, 9]], '2 frames but 1 boxes'),
    ],
)
def test_frames_that_cannot_be_a_track_are_refused_clearly(frames, xyxy, message):
    with pytest.raises(ValueError, match=message):
        reduce_track(frames, xyxy, WIDTH, HEIGHT, FRAMES)


def test_a_frame_size_that_is_not_positive_is_refused_clearly():
    with pytest.raises(ValueError, match='the frame size must be positive, got 0x720'):
        reduce_track([1], [[0, 0, 9, 9]], 0, HEIGHT, FRAMES)


def test_smoothing_takes_a_detectors_jitter_out_of_a_track_and_keeps_its_motion():
    straight = crossing_scene(FRAMES)[0]  # moving and growing at constant speed: passes unchanged
    assert np.allclose(smooth_track(straight.frame, straight.xyxy), straight.xyxy)
    rng = np.random.default_rng(7)
    noisy = straight.xyxy + rng.normal(0, 3.0, straight.xyxy.shape)  # a detector's few-pixel jitter
    smoothed = smooth_track(straight.frame, noisy)
    assert np.abs(smoothed - straight.xyxy).mean() < 0.7 * np.abs(noisy - straight.xyxy).mean()  # 0.61 measured
    raw = reduce_track(straight.frame, noisy, WIDTH, HEIGHT, FRAMES)
    kept = reduce_track(straight.frame, smoothed, WIDTH, HEIGHT, FRAMES)
    assert len(kept) < len(raw) / 2  # fewer keyframes hold the smoothed track within IoU 0.9
    assert_reproduced(straight.frame, smoothed, kept, max_gap=8)


def test_smoothing_never_crosses_a_gap_and_leaves_short_runs_and_small_windows_alone():
    rng = np.random.default_rng(3)
    frames = np.concatenate([np.arange(1, 21), np.arange(40, 61)])
    boxes = np.column_stack([frames * 2.0, np.full(len(frames), 50.0), frames * 2.0 + 40, np.full(len(frames), 90.0)])
    boxes += rng.normal(0, 2.0, boxes.shape)
    both = smooth_track(frames, boxes)
    assert np.allclose(both[:20], smooth_track(frames[:20], boxes[:20]))  # each run on its own
    assert np.allclose(both[20:], smooth_track(frames[20:], boxes[20:]))
    assert np.array_equal(smooth_track(frames[:5], boxes[:5]), boxes[:5])  # shorter than the window
    assert np.array_equal(smooth_track(frames, boxes, window=0), boxes)  # off
