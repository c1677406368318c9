"""Guards of every declared seam (ls_extensions/compat.py): one fails when Label Studio or Django changes under it.

The last test keeps the declaration complete: a module of ours that starts swapping classes, patching a
module attribute, calling a private Label Studio method or resetting Django's settings wrapper, without a
seam that names it, fails here.
"""

import re
from pathlib import Path

import pytest

from ls_extensions import compat

ROOT = Path(__file__).resolve().parent.parent
MARKERS = {
    'a class swapped': re.compile(r'\.__class__\s*='),
    "a module's attribute replaced": re.compile(r'setattr\(module\b'),
    'a private Label Studio method called': re.compile(r'\.api\._request\('),
    'a receiver of Label Studio disconnected': re.compile(r'\.disconnect\('),
    "Django's settings wrapper reset": re.compile(r'settings\._wrapped\s*='),
    "Django's Query internals": re.compile(r'\.query\.(where|low_mark|clear_ordering|add_annotation)\b'),
    "Label Studio's thread-local request": re.compile(r'get_current_request\('),
    "Label Studio's export views subclassed": re.compile(r'from data_export\.api import'),
}


@pytest.mark.parametrize('seam', compat.SEAMS, ids=[seam.name for seam in compat.SEAMS])
def test_the_seam_still_holds(seam):
    assert (ROOT / seam.ours).exists(), f'{seam.name}: {seam.ours} is not in the tree'
    seam.check()


def test_a_broken_seam_fails_with_the_module_to_review(monkeypatch):
    import projects.functions.next_task as next_task

    from ls_extensions.scoring import next_task as ours

    def reshaped(tasks, project, user):
        return None

    monkeypatch.setattr(ours, 'original', reshaped)
    monkeypatch.setattr(next_task, ours.PATCHED_NAME, reshaped)
    with pytest.raises(compat.SeamChanged, match='next_task patch: _try_uncertainty_sampling takes'):
        compat.SEAMS[0].check()


def test_every_use_of_an_internal_is_declared():
    declared = {seam.ours for seam in compat.SEAMS}
    undeclared = []
    for path in sorted([*ROOT.joinpath('ls_extensions').rglob('*.py'), *ROOT.joinpath('settings').rglob('*.py')]):
        relative = path.relative_to(ROOT).as_posix()
        if relative == 'ls_extensions/compat.py':
            continue
        text = path.read_text()
        for what, marker in MARKERS.items():
            if marker.search(text) and not any(relative.startswith(ours) for ours in declared):
                undeclared.append(f'{relative}: {what}')
    assert undeclared == [], 'declare these in ls_extensions/compat.py, each with a check'


def test_the_in_request_predictions_seam_fails_when_label_studio_stops_calling_it_there(monkeypatch):
    import tasks.api

    def get(self, request, pk):  # a TaskAPI.get that predicts some other way
        return None

    monkeypatch.setattr(tasks.api.TaskAPI, 'get', get)
    seam = next(seam for seam in compat.SEAMS if seam.name == 'in-request predictions')
    with pytest.raises(compat.SeamChanged, match='tasks.api.TaskAPI.get no longer calls it by name'):
        seam.check()
