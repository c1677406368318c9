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
