"""The uncertainty stream: "Label All Tasks" serves the most uncertain unlabeled task first.

The one module function of Label Studio we replace. Label Studio has no hook for the order of the next task, but when a
project's ``sampling`` is "Uncertainty sampling" its ``get_task_from_qs_with_sampling`` calls the
module-level ``_try_uncertainty_sampling`` (looked up at call time). :func:`install` replaces that
one function with :func:`most_uncertain_first`, which hands every project that did not choose our
stream (``ScoringPolicy.stream``, set by the action or the API) straight to Label Studio's own
function: their "Uncertainty sampling" stays Label Studio's. For the others everything around it
stays Label Studio's too: assigned tasks, the user's own lock, ground truth, breadth-first overlap,
postponed and skipped queues, and the lock set on the task it returns.
Declared with the app's other seams in ``ls_extensions/compat.py``, whose guard
(``tests/test_compat.py``) and ``tests/scoring/test_next_task.py`` fail if the call site or the
signatures change.

Order: tasks with a stored value, most uncertain first (ties by id), then the rest by id (the
sequential order). Each candidate window goes through Label Studio's own ``_get_first_unlocked``
(``SELECT ... FOR UPDATE SKIP LOCKED`` plus the task-lock check), so concurrent annotators get
different tasks.
"""

import inspect

from ls_extensions.scoring import clusters, ranking, services

WINDOW = 50
PATCHED_NAME = '_try_uncertainty_sampling'
EXPECTED_PARAMETERS = ('tasks', 'project', 'user_solved_tasks_array', 'user', 'prepared_tasks')

original = None


def _label_studio():
    import projects.functions.next_task as module

    return module


def stream_order(tasks):
    """The two querysets the stream walks, in order: scored by uncertainty, then unscored by id."""
    scored = tasks.filter(ranking.scored_q()).order_by(ranking.by_value(descending=True), 'id')
    unscored = tasks.filter(ranking.unscored_q()).order_by('id')
    return scored, unscored


def first_unlocked(queryset, user):
    """Label Studio's lock-respecting pick, over indexed windows instead of the whole ordered list."""
    pick = _label_studio()._get_first_unlocked
    start = 0
    while True:
        window = queryset[start : start + WINDOW]
        task = pick(window, user)
        if task is not None:
            return task
        if window.count() < WINDOW:
            return None
        start += WINDOW


def most_uncertain_first(tasks, project, user_solved_tasks_array, user, prepared_tasks):
    """Replacement for Label Studio's ``_try_uncertainty_sampling`` (same signature).

    During the warm-up (fewer labeled tasks than the policy's ``warmup_annotations``) a random unlabeled
    task, through Label Studio's own random pick; after it, by stored uncertainty, one task per cluster of
    near-duplicates first when the policy is ``diverse``.
    """
    policy = services.stream_policy(project)
    if policy is None:
        return original(tasks, project, user_solved_tasks_array, user, prepared_tasks)
    if services.in_warmup(project, policy):
        return _label_studio()._get_random_unlocked(tasks, user)
    scored, unscored = stream_order(tasks)
    task = clusters.first_of_a_new_cluster(scored, project, user, policy) if policy.diverse else None
    for queryset in (scored, unscored):
        task = task or first_unlocked(queryset, user)
    return task


most_uncertain_first.ls_ext_patch = True


def install():
    """Swap in :func:`most_uncertain_first`, once; refuses if Label Studio's function changed shape."""
    global original
    module = _label_studio()
    current = getattr(module, PATCHED_NAME)
    if getattr(current, 'ls_ext_patch', False):
        return
    found = tuple(inspect.signature(current).parameters)
    if found != EXPECTED_PARAMETERS:
        raise RuntimeError(f'Label Studio changed {PATCHED_NAME}{found}; review ls_extensions.scoring.next_task')
    original = current
    setattr(module, PATCHED_NAME, most_uncertain_first)
