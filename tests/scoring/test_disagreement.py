"""The disagreement of a model's boxes with an annotation's, per kind, on plain Label Studio results."""

import pytest

from ls_extensions.scoring import disagreement
from tests.conftest import box

TRUTH = [box(10, 10, 20, 20, 'fish'), box(60, 50, 15, 25, 'crab')]


def predicted(*regions, score=0.9):
    return [{**r, 'score': score} if 'score' not in r else r for r in regions]


def test_agreement_is_zero():
    found = disagreement.compare_results(predicted(*TRUTH), TRUTH)
    assert found.value == 0.0
    assert found.counts == dict.fromkeys(disagreement.KINDS, 0)
    assert found.kinds == ''


@pytest.mark.parametrize(
    ('annotation', 'kind'),
    [
        ([TRUTH[0]], 'missing'),  # the crab was not annotated
        ([*TRUTH, box(40, 80, 10, 10, 'fish')], 'spurious'),  # a box around nothing
        ([box(18, 18, 20, 20, 'fish'), TRUTH[1]], 'off'),  # shifted by 40% of its size
        ([box(10, 10, 20, 20, 'crab'), TRUTH[1]], 'wrong_label'),  # the fish called a crab
    ],
)
def test_each_injected_error_is_found_as_its_kind(annotation, kind):
    found = disagreement.compare_results(predicted(*TRUTH), annotation)
    assert found.counts == {k: int(k == kind) for k in disagreement.KINDS}
    assert 0.5 < found.value <= 1.0
    assert found.kinds == f'1 {disagreement.KIND_WORDS[kind]}'


def test_unconfident_boxes_make_no_missing_or_wrong_label_finding():
    found = disagreement.compare_results(predicted(*TRUTH, score=0.2), [box(10, 10, 20, 20, 'crab')])
    assert found.count('missing') == 0 and found.count('wrong_label') == 0
    assert found.count('spurious') == 1  # the model supports no crab there


def test_surer_findings_rank_higher_and_several_add_up():
    one = disagreement.compare_results(predicted(*TRUTH, score=0.6), [TRUTH[0]]).value
    surer = disagreement.compare_results(predicted(*TRUTH, score=0.95), [TRUTH[0]]).value
    both = disagreement.compare_results(predicted(*TRUTH, score=0.95), []).value
    assert one < surer < both <= 1.0
    assert disagreement.compare_results(predicted(*TRUTH), []).kinds == '2 missing'


def test_malformed_items_are_left_out_not_raised():
    junk = [{'type': 'rectanglelabels', 'value': {'x': 'a'}}, {'type': 'choices', 'value': {}}, None, 7]
    found = disagreement.compare_results([*junk, *predicted(*TRUTH)], [*junk, *TRUTH])
    assert found.value == 0.0
    assert disagreement.compare_results('not a list', {'x': 1}).value == 0.0


def test_a_rotated_box_counts_as_its_bounding_box():
    turned = box(10, 10, 20, 20, 'fish')
    turned['value']['rotation'] = 90  # about the top-left corner: the box lies left of x
    found = disagreement.compare_results(predicted(TRUTH[0]), [turned])
    assert found.count('spurious') == 1 and found.count('missing') == 1


def track(label, keyframes, frames_count=100, score=None):
    sequence = [{'frame': f, 'enabled': on, 'x': x, 'y': 10, 'width': 20, 'height': 20, 'rotation': 0}
                for f, x, on in keyframes]  # fmt: skip
    item = {
        'id': f'{label}{keyframes[0][0]}',
        'type': 'videorectangle',
        'from_name': 'box',
        'to_name': 'video',
        'value': {'labels': [label], 'sequence': sequence, 'framesCount': frames_count},
    }
    return item if score is None else {**item, 'score': score}


def test_videos_compare_frame_by_frame_on_the_tracks_as_drawn():
    model = [track('fish', [(1, 10, True), (50, 10, False)], score=0.9)]
    # the annotated track drifts away from frame 20 (interpolated up to x=20 at frame 40) and ends at 40
    annotation = [track('fish', [(1, 10, True), (20, 10, True), (40, 20, False)])]
    found = disagreement.compare_video_results(model, annotation)
    off = {frame for frame, d in found.frames.items() if d.count('off')}
    assert off == set(range(35, 41))  # weight 0.9 x (1 - IoU / 0.6) reaches 0.2 once 7.3 of its 20 points off
    missing = {frame for frame, d in found.frames.items() if d.count('missing')}
    assert missing == set(range(41, 51))  # the model still sees the fish, the annotation ended
    assert found.counts['missing'] == 10
    assert found.worst_frames and set(found.worst_frames) <= missing | off
    assert found.kinds == 'missing on 10 frames, off on 6 frames'
    assert disagreement.compare_any(model, annotation).value == found.value > 0.5


def test_a_video_the_model_agrees_with_has_no_findings():
    model = [track('fish', [(1, 10, True), (50, 30, False)], score=0.9)]
    found = disagreement.compare_any(model, [track('fish', [(1, 10, True), (50, 30, False)])])
    assert found.value == 0.0 and found.frames == {} and found.worst_frames == []


def test_a_group_box_over_touching_objects_is_no_mistake_of_the_annotator():
    """A model that merges two touching fish into one box still sees both: neither off nor spurious."""
    pair = [box(10, 10, 20, 20, 'fish'), box(30, 12, 20, 20, 'fish')]
    found = disagreement.compare_results(predicted(box(9, 9, 42, 24, 'fish')), pair)
    assert found.findings == []


def test_findings_too_weak_to_look_at_are_dropped():
    nudged = box(12, 11, 20, 20, 'fish')  # IoU 0.78 with the model's box: fine
    barely = box(15.5, 10, 20, 20, 'fish')  # IoU 0.57: off by the rule, but weighs 0.05, under MIN_WEIGHT
    assert disagreement.compare_results(predicted(TRUTH[0]), [nudged]).findings == []
    assert disagreement.compare_results(predicted(TRUTH[0]), [barely]).findings == []
