"""The run's metrics as a user reads them (pure: no database)."""

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
