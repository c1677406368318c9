"""The active-learning benchmark's pool and its saved-run reader (pure: no Django, no model).

The README's reading of the benchmark rests on these: near-duplicates on a shared background mostly share
the stream's signature, copies on new noise do not, and the table is rebuilt from saved per-seed lines.
"""

import importlib.util
from collections import defaultdict

import pytest

from ls_extensions.scoring.signatures import signature_of, thumbnail
from tests.support.server import REPO

spec = importlib.util.spec_from_file_location('active_learning', REPO / 'benchmarks' / 'active_learning.py')
active_learning = importlib.util.module_from_spec(spec)
spec.loader.exec_module(active_learning)


def scenes_with_one_signature(items):
    signatures = defaultdict(set)
    for image, _, scene in items:
        signatures[scene].add(signature_of(thumbnail(image)))
    return sum(len(found) == 1 for found in signatures.values())


def test_near_duplicates_share_a_signature_only_on_a_shared_background():
    fresh = active_learning.pool(100, 30, 4, 48)
    shared = active_learning.pool(100, 30, 4, 48, shared_background=True)
    assert scenes_with_one_signature(fresh) <= 1
    assert scenes_with_one_signature(shared) >= 10


def test_the_table_is_rebuilt_from_the_saved_lines_of_two_runs(tmp_path):
    saved = sorted((REPO / 'benchmarks' / 'results').glob('active_learning_2026-12-04_*.txt'))
    budgets, curves, scenes_seen, full = active_learning.read_lines(saved, k=16, seed_labels=16)
    assert budgets == [16, 32, 48, 64] and sorted(full) == [0, 1, 2]
    assert full[1] == pytest.approx((0.657 + 0.466) / 2)  # a seed run twice counts its mean
    assert list(curves) == list(active_learning.STRATEGIES)
    assert all(sorted(runs) == [0, 1, 2] for runs in curves.values())

    uneven = tmp_path / 'uneven.txt'
    uneven.write_text('seed 0 full pool (200 labels) 0.500\nseed 0 random     0.100 0.200  (3 scenes)\n')
    (tmp_path / 'more.txt').write_text('seed 1 full pool (200 labels) 0.400\n')
    with pytest.raises(SystemExit, match='not every strategy'):
        active_learning.read_lines([uneven, tmp_path / 'more.txt'], k=16, seed_labels=16)


def test_warm_up_runs_are_named_read_back_and_ordered_after_their_strategy(tmp_path):
    runs = active_learning.runs_of(['random', 'margin', 'diverse'], [0, 24])
    assert runs == [
        ('random', 'random', 0),  # Label Studio's own sampling: our warm-up does not apply
        ('margin', 'margin', 0),
        ('margin warm-up 24', 'margin', 24),
        ('diverse', 'diverse', 0),
        ('diverse warm-up 24', 'diverse', 24),
    ]
    saved = tmp_path / 'warmup.txt'
    lines = ['seed 0 full pool (120 labels) 0.500']
    for name in ('diverse warm-up 24', 'margin warm-up 24', 'diverse', 'random', 'margin'):
        lines.append(f'seed 0 {name:10s} 0.100 0.200 0.300  (7 scenes)')  # as run() prints them
    saved.write_text('\n'.join(lines) + '\n')
    budgets, curves, scenes_seen, _ = active_learning.read_lines([saved], k=8, seed_labels=8)
    assert budgets == [8, 16, 24]
    assert list(curves) == [name for name, _, _ in runs]
    assert scenes_seen['margin warm-up 24'] == {0: 7}


@pytest.mark.parametrize('text', ['8', '40', '16,x', '-16'])
def test_a_warm_up_that_would_change_nothing_is_refused(text):
    parser = active_learning.argparse.ArgumentParser()
    with pytest.raises(SystemExit):
        active_learning.parse_warmups(parser, text, seed_labels=8, last_budget=40)
    assert active_learning.parse_warmups(parser, '32,0,16,16', seed_labels=8, last_budget=40) == [0, 16, 32]


def test_the_stream_s_default_warm_up_is_the_one_the_saved_sweep_measured_best():
    from ls_extensions.scoring.models import WARMUP_DEFAULT, ScoringPolicy

    sweep = REPO / 'benchmarks' / 'results' / 'active_learning_warmup_quick_shared_2026-12-06.txt'
    budgets, curves, _, full = active_learning.read_lines([sweep], k=8, seed_labels=8)
    best, labels = active_learning.best_warmup(budgets, active_learning.share_curves(curves, full))
    assert sorted(labels) == [8, 16, 24, 32]  # no warm-up counts as the seed set's 8
    assert best == WARMUP_DEFAULT == ScoringPolicy._meta.get_field('warmup_annotations').default
