"""The run's status moves: one table (``transitions.ALLOWED``), exactly the moves the code makes, one helper.

The table is compared with the ``transition(...)`` calls of the retraining modules, read with ``ast``: the
statuses a call names (``TrainingRun.X``, ``UNFINISHED``), a parameter's (the values its callers pass) or a
run read ``status__in=statuses`` (that tuple). No module but ``transitions.py`` writes ``status=`` itself.
"""

import ast
from pathlib import Path

import pytest

from ls_extensions.retraining import queueing, transitions
from ls_extensions.retraining.models import TrainingRun

RETRAINING = Path(transitions.__file__).parent
Q, R, T, P, S, F = 'queued', 'requesting', 'training', 'predicting', 'succeeded', 'failed'
X = 'rejected'


def test_the_table_is_the_documented_one():
    assert transitions.ALLOWED == {
        (Q, R),
        (R, R),
        (R, Q),
        (R, T),
        (R, P),
        (T, P),
        (T, S),
        (P, S),
        (T, X),
        (Q, F),
        (R, F),
        (T, F),
        (P, F),
    }
    assert set(transitions.UNFINISHED) == {s for s, _ in TrainingRun.STATUSES} - set(TrainingRun.FINISHED)


def _modules():
    return {path.stem: ast.parse(path.read_text()) for path in RETRAINING.glob('*.py')}


def _functions(modules):
    return {
        node.name: node for tree in modules.values() for node in ast.walk(tree) if isinstance(node, ast.FunctionDef)
    }


def _calls(modules, name):
    for tree in modules.values():
        for outer in ast.walk(tree):
            if isinstance(outer, ast.FunctionDef):
                for node in ast.walk(outer):
                    if (
                        isinstance(node, ast.Call)
                        and getattr(node.func, 'id', getattr(node.func, 'attr', None)) == name
                    ):
                        yield outer, node


def _argument(call, index, keyword):
    found = [k.value for k in call.keywords if k.arg == keyword]
    return found[0] if found else call.args[index]


def _statuses(expr, function, modules):
    """The statuses an expression can hold at a ``transition`` call."""
    if isinstance(expr, ast.Attribute) and isinstance(expr.value, ast.Name) and expr.value.id == 'TrainingRun':
        return {getattr(TrainingRun, expr.attr)}
    if isinstance(expr, ast.Name) and expr.id == 'UNFINISHED':
        return set(transitions.UNFINISHED)
    if isinstance(expr, ast.Tuple):
        return set().union(*(_statuses(e, function, modules) for e in expr.elts))
    params = [a.arg for a in function.args.args]
    if isinstance(expr, ast.Name) and expr.id in params:  # what every caller passes
        index = params.index(expr.id)
        passed = [_argument(call, index, expr.id) for _, call in _calls(modules, function.name)]
        assert passed, f'{function.name} is never called'
        return set().union(*(_statuses(e, function, modules) for e in passed))
    if isinstance(expr, ast.Attribute) and expr.attr == 'status':  # a run read with status__in=statuses
        for node in ast.walk(function):
            if isinstance(node, ast.Assign) and getattr(node.targets[0], 'id', None) == 'statuses':
                return _statuses(node.value, function, modules)
    raise AssertionError(f'cannot tell the statuses of {ast.unparse(expr)} in {function.name}')


def test_the_table_has_exactly_the_moves_the_code_makes():
    modules = _modules()
    used = set()
    for function, call in _calls(modules, 'transition'):
        if function.name == 'transition':
            continue
        sources = _statuses(_argument(call, 1, 'from_status'), function, modules)
        targets = _statuses(_argument(call, 2, 'to_status'), function, modules)
        used |= {(s, t) for s in sources for t in targets}
    assert used == transitions.ALLOWED


def test_no_status_is_written_but_through_transition():
    for name, tree in _modules().items():
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and getattr(node.func, 'attr', None) in ('update', 'create'):
                if name == 'transitions' or getattr(node.func.value, 'attr', None) == 'objects':
                    continue  # TrainingRun.objects.create(status=QUEUED): a new run, not a move
                assert 'status' not in {k.arg for k in node.keywords}, f'{name}: {ast.unparse(node)}'


def test_a_move_not_in_the_table_raises_before_any_query():
    with pytest.raises(ValueError, match='not allowed'):
        transitions.transition(1, TrainingRun.SUCCEEDED, TrainingRun.TRAINING)
    with pytest.raises(ValueError, match='not allowed'):
        transitions.transition(1, (TrainingRun.TRAINING, TrainingRun.FAILED), TrainingRun.SUCCEEDED)
    with pytest.raises(ValueError, match='not allowed'):
        transitions.transition(1, TrainingRun.QUEUED, 'bogus')


@pytest.mark.django_db
def test_of_two_moves_of_the_same_run_the_second_loses(image_project):
    run = TrainingRun.objects.create(project=image_project, trigger='manual')
    assert transitions.transition(run.id, TrainingRun.QUEUED, TrainingRun.REQUESTING, error='claimed') is True
    assert transitions.transition(run.id, TrainingRun.QUEUED, TrainingRun.REQUESTING, error='again') is False
    run.refresh_from_db()
    assert (run.status, run.error) == (TrainingRun.REQUESTING, 'claimed')
    assert transitions.transition(run.id, transitions.UNFINISHED, TrainingRun.FAILED) is True
    assert transitions.transition(run.id, transitions.UNFINISHED, TrainingRun.FAILED) is False


def test_a_wrong_step_name_raises_loudly_and_publishes_nothing(monkeypatch, caplog):
    from ls_extensions import publishing

    sent = []
    monkeypatch.setattr(publishing, 'publish_named', lambda *args, **kwargs: sent.append(args) or True)
    monkeypatch.setattr(publishing, 'in_background', lambda *args, **kwargs: sent.append(args))
    for enqueue in (queueing.enqueue, queueing.enqueue_on_commit, queueing.enqueue_in_background):
        with pytest.raises(LookupError, match="no retraining step 'start_runn'"):
            enqueue('start_runn', 1)
    assert sent == [] and 'broker unavailable' not in caplog.text


def test_every_step_name_is_a_celery_task_of_the_app():
    from ls_extensions.celery import app
    from ls_extensions.retraining import tasks

    for step in queueing.STEPS:
        assert getattr(tasks, step).name == queueing.celery_name(step) in app.tasks
