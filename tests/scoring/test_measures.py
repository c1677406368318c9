"""The uncertainty measures on plain prediction JSON: definitions, conventions, bad input."""

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ls_extensions.scoring.measures import (
    EMPTY_VALUE,
    MEASURES,
    TASK_SCORE,
    UnknownMeasure,
    binary_entropy,
    check_measure,
    uncertainty,
)


def boxes(*scores):
    return [{'type': 'rectanglelabels', 'value': {'rectanglelabels': ['fish']}, 'score': s} for s in scores]


def test_one_minus_task_score():
    assert uncertainty('score', boxes(0.9), 0.8).value == pytest.approx(0.2)
    assert uncertainty('score', [], 0.25).value == pytest.approx(0.75)
    outcome = uncertainty('score', boxes(0.9), None)
    assert (outcome.value, outcome.ignored, outcome.reason) == (None, 1, 'no task score')


def test_lowest_region_score():
    outcome = uncertainty('min_region', boxes(0.9, 0.35, 0.8))
    assert (outcome.value, outcome.regions, outcome.used) == (pytest.approx(0.65), 3, 3)


def test_mean_binary_entropy():
    assert binary_entropy(0.5) == 1.0
    assert binary_entropy(1.0) == binary_entropy(0.0) == 0.0
    expected = (1.0 + binary_entropy(0.9)) / 2
    assert uncertainty('entropy', boxes(0.5, 0.9)).value == pytest.approx(expected)
    assert binary_entropy(0.9) == pytest.approx(0.4690, abs=1e-4)


def test_margin_between_the_two_best_classes():
    region = {'type': 'choices', 'value': {'choices': ['cat']}, 'scores': {'cat': 0.5, 'dog': 0.4, 'fox': 0.1}}
    assert uncertainty('margin', [region]).value == pytest.approx(0.9)
    in_value = {'type': 'choices', 'value': {'choices': ['cat'], 'scores': [0.05, 0.9, 0.05]}}
    assert uncertainty('margin', [in_value]).value == pytest.approx(0.15)
    # the least clear-cut region decides; a single score p is a choice between p and 1 - p
    assert uncertainty('margin', [region, *boxes(0.95)]).value == pytest.approx(0.9)
    assert uncertainty('margin', boxes(0.95, 0.6)).value == pytest.approx(0.8)


def test_items_sharing_an_id_are_one_region_scored_by_its_weakest_item():
    result = [
        {'id': 'a', 'type': 'rectangle', 'value': {'x': 1}, 'score': 0.9},
        {'id': 'a', 'type': 'labels', 'value': {'labels': ['fish']}, 'score': 0.6},
        {'id': 'b', 'type': 'rectanglelabels', 'value': {}, 'score': 0.8},
        {'type': 'relation', 'from_id': 'a', 'to_id': 'b'},
    ]
    outcome = uncertainty('min_region', result)
    assert (outcome.regions, outcome.value) == (2, pytest.approx(0.4))


@pytest.mark.parametrize('measure', ['min_region', 'entropy', 'margin'])
def test_a_prediction_without_regions_or_task_score_is_certain_by_convention(measure):
    outcome = uncertainty(measure, [], None)
    assert (outcome.value, outcome.reason, outcome.ignored) == (EMPTY_VALUE, 'no regions', 0)
    assert uncertainty(measure, [], float('nan')).value == EMPTY_VALUE  # an unusable task score changes nothing


CHOICE = [{'from_name': 'c', 'to_name': 't', 'type': 'choices', 'value': {'choices': ['class_A']}}]


@pytest.mark.parametrize(
    ('measure', 'expected'),
    [('min_region', 0.8), ('entropy', binary_entropy(0.2)), ('margin', 1.0 - abs(2 * 0.2 - 1)), ('score', 0.8)],
)
@pytest.mark.parametrize('result', [CHOICE, [], None], ids=['unscored-regions', 'no-regions', 'no-result'])
def test_every_measure_reads_the_task_score_when_no_region_has_one(measure, expected, result):
    """Label Studio's documented prediction, ``{"result": [...], "score": 0.2}``, ranks under every measure."""
    outcome = uncertainty(measure, result, 0.2)
    assert outcome.value == pytest.approx(expected)
    # absent region scores are not "ignored" then; a result that is not a list is (and the score still counts)
    assert (outcome.used, outcome.ignored) == (1, int(result is None and measure != 'score'))
    if measure != 'score':
        assert outcome.reason == TASK_SCORE


def test_region_scores_win_over_the_task_score_and_bad_ones_still_count():
    assert uncertainty('min_region', boxes(0.9, 0.6), 0.1).value == pytest.approx(0.4)
    outcome = uncertainty('min_region', boxes('high', None), 0.25)
    assert (outcome.value, outcome.ignored, outcome.reason) == (pytest.approx(0.75), 1, TASK_SCORE)
    clamped = uncertainty('entropy', CHOICE, 1.5)
    assert (clamped.value, clamped.clamped) == (0.0, 1)
    assert uncertainty('margin', CHOICE, 'n/a').value is None  # no usable score anywhere: no value


def test_out_of_range_scores_are_clamped_and_counted():
    outcome = uncertainty('min_region', boxes(1.4, -0.2, 0.5))
    assert (outcome.value, outcome.clamped, outcome.ignored) == (1.0, 2, 0)
    assert uncertainty('score', [], 7).value == 0.0


def test_missing_nan_and_non_numeric_scores_are_ignored_and_counted():
    outcome = uncertainty('min_region', boxes(None, float('nan'), float('inf'), 'high', True, [0.2], 0.7))
    assert (outcome.value, outcome.used, outcome.ignored) == (pytest.approx(0.3), 1, 6)
    assert uncertainty('min_region', boxes('0.25')).value == pytest.approx(0.75)  # a numeric string is a number


def test_unrankable_predictions_have_no_value_and_say_why():
    assert uncertainty('min_region', boxes(None, 'x')).reason == 'no valid region scores'
    assert uncertainty('min_region', {'not': 'a list'}).reason == 'result is not a list'
    assert uncertainty('entropy', None).value is None
    garbage = uncertainty('margin', ['text', 3])
    assert (garbage.value, garbage.ignored) == (None, 2)


def test_unknown_measure_lists_the_valid_ones():
    with pytest.raises(UnknownMeasure) as error:
        check_measure('variance')
    assert error.value.valid == ['entropy', 'margin', 'min_region', 'score']
    assert 'entropy, margin, min_region, score' in str(error.value)


json_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-5, 5), st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=4)
)
items = st.one_of(
    st.fixed_dictionaries(
        {'type': st.sampled_from(['rectanglelabels', 'choices', 'relation']), 'score': json_scalars},
        optional={
            'id': st.sampled_from(['a', 'b', 7]),
            'value': st.one_of(st.none(), st.fixed_dictionaries({}, optional={'scores': st.lists(json_scalars)})),
            'scores': st.one_of(st.dictionaries(st.text(max_size=3), json_scalars), st.lists(json_scalars)),
        },
    ),
    json_scalars,
)


@given(
    measure=st.sampled_from(sorted(MEASURES)),
    result=st.one_of(st.lists(items, max_size=6), json_scalars),
    score=json_scalars,
)
def test_any_input_gives_a_value_in_unit_interval_or_none(measure, result, score):
    outcome = uncertainty(measure, result, score)
    assert outcome.value is None or (math.isfinite(outcome.value) and 0.0 <= outcome.value <= 1.0)
    assert outcome.value is not None or outcome.reason
    assert min(outcome.regions, outcome.used, outcome.clamped, outcome.ignored) >= 0
