"""Data Manager actions, registered with Label Studio's ``register_action`` (permission idiom:
``ls_extensions/permissions.py``)."""

from ls_extensions.ids import selection_refusal
from ls_extensions.permissions import action_refusal, require_member
from ls_extensions.scoring import jobs, measures, services
from ls_extensions.scoring.models import TaskMistake

INLINE_LIMIT = 1000  # a selection up to this many tasks is rescored in the request, more goes to a job


def _measure_form(user, project):
    require_member(user, project)
    policy = services.get_policy(project.id)
    return [
        {
            'columnCount': 1,
            'fields': [
                {
                    'type': 'select',
                    'name': 'measure',
                    'label': 'Uncertainty measure',
                    'options': sorted(measures.MEASURES),
                    'value': policy.measure,
                }
            ],
        }
    ]


def _chosen_measure(request):
    data = getattr(request, 'data', None) or {}
    measure = data.get('measure') if hasattr(data, 'get') else None
    return measure or None


def recompute_uncertainty(project, queryset, **kwargs):
    """Recompute the selected tasks' uncertainty; a new measure or a big selection runs in the background."""
    refusal = action_refusal(project, kwargs) or selection_refusal(kwargs)  # the queryset is read below
    if refusal:
        return refusal
    measure = _chosen_measure(kwargs.get('request'))
    try:
        measure = measure and measures.check_measure(measure)
    except measures.UnknownMeasure as exc:
        return {'response_code': 400, 'detail': str(exc), 'valid': exc.valid}
    policy = services.get_policy(project.id)
    if measure and measure != policy.measure:
        policy.measure = measure
        policy.save(update_fields=['measure', 'updated_at'])
    desired = services.desired_state(policy)
    ids = list(queryset.values_list('id', flat=True)[: INLINE_LIMIT + 1])
    if desired != (policy.active_version, policy.active_measure) or len(ids) > INLINE_LIMIT:
        job = jobs.enqueue(project.id, reason='Data Manager action')
        return {'detail': f'Recomputing uncertainty for the project in the background (job {job.id})', 'job': job.id}
    tally = services.Tally()
    services.rescore_tasks(project.id, ids, tally)
    return {
        'processed_items': len(ids),
        'reload': True,
        'detail': f'Recomputed {len(ids)} tasks: {tally.scored} ranked, {tally.unranked} without a value, '
        f'{tally.clamped} scores clamped, {tally.ignored} ignored',
    }


def label_most_uncertain_first(project, queryset, **kwargs):
    """Turn the uncertainty stream on: "Label All Tasks" serves the most uncertain unlabeled task first."""
    refusal = action_refusal(project, kwargs)
    if refusal:
        return refusal
    services.choose_stream(project, True)
    services.reconcile(project.id, 'uncertainty stream turned on')
    return {
        'detail': 'Label All Tasks now serves the most uncertain unlabeled task first; choose another '
        'sampling in Settings > Annotation to turn it off'
    }


MISTAKES_TAB = 'Likely mistakes'
TAB_KEY = 'ls_ext_tab'  # marks our tabs in ``View.data``, so an action finds its tab again whatever its title


def mistakes_tab_data():
    """The tab the UI would save: labeled tasks with a stored possible mistake, most likely first."""
    from ls_extensions.scoring.dm import MISTAKE, MISTAKE_KINDS

    return {
        'title': MISTAKES_TAB,
        'ordering': [f'-tasks:{MISTAKE}'],
        'filters': {
            'conjunction': 'and',
            'items': [{'filter': f'filter:tasks:{MISTAKE}', 'operator': 'greater', 'type': 'Number', 'value': 0}],
        },
        'columnsDisplayType': {MISTAKE: 'Number', MISTAKE_KINDS: 'String'},
    }


def open_tab(project, request, key, data):
    """Create the project's tab marked ``key`` (``TAB_KEY`` in ``View.data``), or reset it to ``data``."""
    from data_manager.models import View
    from data_manager.serializers import ViewSerializer

    tab = View.objects.filter(project=project, **{f'data__{TAB_KEY}': key}).order_by('id').first()
    serializer = ViewSerializer(tab, data={'project': project.id, 'data': {**data, TAB_KEY: key}})
    serializer.is_valid(raise_exception=True)
    return serializer.save(**({} if tab else {'user': getattr(request, 'user', None)}))


def review_likely_mistakes_first(project, queryset, **kwargs):
    """Create (or reset) the project's "Likely mistakes" tab: labeled tasks the current model disagrees with,
    the likeliest mistake first, so that the review (the tab's list and the labeling view's arrows, which
    walk the tab in its order) starts where a mistake is likeliest."""
    refusal = action_refusal(project, kwargs)
    if refusal:
        return refusal
    tab = open_tab(project, kwargs.get('request'), 'mistakes', mistakes_tab_data())
    services.reconcile(project.id, 'likely mistakes reviewed')
    scored = TaskMistake.objects.filter(project_id=project.id, value__gt=0).count()
    return {
        'reload': True,
        'tab': tab.id,
        'detail': f'The "{MISTAKES_TAB}" tab lists the {scored} labeled tasks the current model disagrees with, the '
        'likeliest mistake first. Tasks need a prediction of the current version: predict labeled tasks with '
        '"Retrieve Predictions" or the retraining policy\'s "Predict labeled tasks"',
    }


DIVERSE_TAB = 'Diverse order'


def diverse_tab_data():
    """The most uncertain unlabeled task of each group of near-duplicates first (``dm.annotate_diverse_order``),
    labeled tasks last. Not filtered to unlabeled tasks: the labeled ones must be in the tab's rows for their
    groups to count as covered."""
    from ls_extensions.scoring.dm import DIVERSE_ORDER, UNCERTAINTY

    return {
        'title': DIVERSE_TAB,
        'ordering': [f'tasks:{DIVERSE_ORDER}'],
        'columnsDisplayType': {DIVERSE_ORDER: 'Number', UNCERTAINTY: 'Number'},
    }


def order_diverse_uncertain_first(project, queryset, **kwargs):
    """Turn diversity on (the stream, and the clusters of every task) and open the "Diverse order" tab."""
    refusal = action_refusal(project, kwargs)
    if refusal:
        return refusal
    services.change_policy(project, {'diverse': True})
    tab = open_tab(project, kwargs.get('request'), 'diverse', diverse_tab_data())
    return {
        'reload': True,
        'tab': tab.id,
        'detail': f'The "{DIVERSE_TAB}" tab lists the unlabeled tasks, the most uncertain of each group of '
        'near-duplicate images first, labeled tasks last; Label All Tasks serves them the same way when it serves by uncertainty. '
        'Tasks not grouped yet are grouped in the background',
    }


def register():
    from core.permissions import all_permissions
    from data_manager.actions import register_action

    register_action(
        recompute_uncertainty,
        'Recompute uncertainty',
        order=95,
        permission=all_permissions.projects_change,
        dialog={
            'title': 'Recompute uncertainty',
            'text': 'Recompute the model uncertainty of the selected tasks from their predictions of the '
            'current model version. Choosing another measure recomputes the whole project.',
            'type': 'confirm',
            'form': _measure_form,
        },
    )
    register_action(
        label_most_uncertain_first,
        'Label most uncertain first',
        order=96,
        permission=all_permissions.projects_change,
        dialog={
            'title': 'Label most uncertain first',
            'text': 'Label All Tasks will serve the unlabeled task the model is least confident about, '
            'then tasks without a prediction in order. Each annotator gets a different task.',
            'type': 'confirm',
        },
    )
    register_action(
        review_likely_mistakes_first,
        'Review likely mistakes first',
        order=97,
        permission=all_permissions.projects_change,
        dialog={
            'title': 'Review likely mistakes first',
            'text': f'Open a "{MISTAKES_TAB}" tab: the labeled tasks whose annotation the current model disagrees '
            'with (boxes possibly missing, spurious, off or with a wrong label), the likeliest mistake first.',
            'type': 'confirm',
        },
    )
    register_action(
        order_diverse_uncertain_first,
        'Order diverse, most uncertain first',
        order=98,
        permission=all_permissions.projects_change,
        dialog={
            'title': 'Order diverse, most uncertain first',
            'text': f'Open a "{DIVERSE_TAB}" tab: the unlabeled tasks, the most uncertain of each group of '
            'near-duplicate images (neighbouring video frames, burst shots) first, so that nobody labels the same '
            'scene twice in a row. Label All Tasks serves them the same way when it serves by uncertainty.',
            'type': 'confirm',
        },
    )
