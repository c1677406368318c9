"""The run's metrics as a user reads them (pure: no database)."""

import pytest

from ls_extensions.retraining.presentation import readable_metrics, run_title


def test_unknown_numbers_of_an_adapter_are_shown_by_name_and_bookkeeping_is_not():
    rows = readable_metrics({'loss': 1, 'box_recall': 0.5, 'rescans': 2, 'predict_only': True}, finished=True)
    assert rows == [('Loss', '1'), ('Box recall', '0.5')]


def test_a_finished_run_without_metrics_shows_nothing():
    assert readable_metrics({}, finished=True) == [] and readable_metrics(None, finished=False) == []


def test_map_with_only_one_side():
    assert ('mAP@0.5 before → after', '– → 0.5') in readable_metrics({'map_after': 0.5}, finished=True)


def test_titles():
    assert run_title('threshold', {}) == 'threshold'
    assert run_title('predictions of the served version', {'predict_only': True}).startswith('Pre-annotation')


@pytest.mark.parametrize(
    'metrics',
    [
        {'progress': '50%'},
        {'progress': ['epoch', 3]},
        {'seconds': float('inf')},
        {'seconds': float('nan'), 'loss': float('inf')},
    ],
)
def test_odd_values_from_the_model_server_are_shown_not_raised(metrics):
    # the model server's job report reaches the page as it was sent: nothing in it may make the page fail
    for finished in (False, True):
        rows = readable_metrics(metrics, finished)
        assert all(isinstance(label, str) and isinstance(value, str) for label, value in rows)
