"""Data Manager integration through Label Studio's hooks: columns, annotations, a filter expression.

- ``DATA_MANAGER_GET_ALL_COLUMNS`` -> :func:`get_all_columns` adds "Uncertainty" and "Model version" in
  the projects we score (``scope.py``: an ``Image`` tag, or a ``VideoRectangle`` on a ``Video``; not in
  text projects or videos without tracks), and lets a page of tasks reuse Label Studio's costly column
  list for a few seconds (:func:`base_columns`).
- ``data_manager.managers.update_annotation_map(ANNOTATIONS)`` (from ``apps.ready``) annotates them
  with the one-to-one row's value as a plain subquery: no aggregate, no join, so Label Studio's count
  and totals queries are exactly the ones it runs with no column at all.
- ``DATA_MANAGER_CUSTOM_FILTER_EXPRESSIONS`` -> :func:`custom_filter_expressions` turns range filters
  on "Uncertainty" into index range scans.
- ``TASK_SERIALIZER`` (``task_serializer.py``) lets the values reach the table.

"Diverse order" (projects whose policy is ``diverse``) is the one column computed per page rather than
stored: a task's place among the near-duplicates of its cluster (``clusters.py``) that the tab shows, so
that it follows the tab's filters; see :func:`annotate_diverse_order`.
"""

import copy
import time

from django.db.models import Case, F, FloatField, OuterRef, Q, Subquery, Value, When, Window
from django.db.models.functions import Coalesce, RowNumber

from ls_extensions.scoring import conf, measures, ranking, scope
from ls_extensions.scoring.models import TASK_RELATION

UNCERTAINTY = ranking.FIELD
MODEL_VERSION = 'uncertainty_model_version'
MISTAKE = 'mistake'
MISTAKE_KINDS = 'mistake_kinds'
DIVERSE_ORDER = 'diverse_order'
TASK_PAGE_PATH = '/api/tasks'
BASE_COLUMNS_TTL = 10.0  # seconds a page of tasks may reuse Label Studio's column list (see base_columns)
_base_columns = {}
CATCH_UP_EVERY = 10.0  # seconds between two freshness checks (jobs.keep_fresh) per project
_checked = {}


def _load(path):
    from core.utils.common import load_func

    return load_func(path)


def columns_for(project_id):
    from ls_extensions.scoring import services

    policy = services.get_policy(project_id)
    measure = policy.active_measure or policy.measure
    version = policy.active_version
    columns = [
        {
            'id': UNCERTAINTY,
            'title': 'Uncertainty',
            'type': 'Number',
            'target': 'tasks',
            'help': f'Model uncertainty, {measures.DESCRIPTIONS.get(measure, measure)}, of model version '
            + (repr(version) if version is not None else '(none yet)')
            + ' (higher: less confident)',
            'visibility_defaults': {'explore': True, 'labeling': False},
            'project_defined': False,
        },
        {
            'id': MODEL_VERSION,
            'title': 'Model version',
            'type': 'String',
            'target': 'tasks',
            'help': 'Model version the uncertainty was computed from',
            'visibility_defaults': {'explore': True, 'labeling': False},
            'project_defined': False,
        },
        {
            'id': MISTAKE,
            'title': 'Possible mistake',
            'type': 'Number',
            'target': 'tasks',
            'help': 'How much the annotation disagrees with the predictions of model version '
            + (repr(version) if version is not None else '(none yet)')
            + ' (0: agrees; higher: a likelier mistake); labeled tasks with a prediction only',
            'visibility_defaults': {'explore': True, 'labeling': False},
            'project_defined': False,
        },
        {
            'id': MISTAKE_KINDS,
            'title': 'Mistake kinds',
            'type': 'String',
            'target': 'tasks',
            'help': 'What disagrees: boxes possibly missing, spurious, off (poorly placed) or with a wrong label',
            'visibility_defaults': {'explore': True, 'labeling': False},
            'project_defined': False,
        },
    ]
    if policy.diverse:
        columns.append(
            {
                'id': DIVERSE_ORDER,
                'title': 'Diverse order',
                'type': 'Number',
                'target': 'tasks',
                'help': 'Sort ascending: the most uncertain unlabeled task of each group of near-duplicate images '
                'first (whole part: the place in its group among the tasks shown, labeled ones counted first; '
                'fraction: 1 - uncertainty)',
                'visibility_defaults': {'explore': False, 'labeling': False},  # a sort of the whole tab: on request
                'project_defined': False,
            }
        )
    return columns


def base_columns(project, *args, **kwargs):
    """Label Studio's own columns; for a page of tasks, a copy at most ``BASE_COLUMNS_TTL`` seconds old.

    Label Studio computes them with a GROUP BY over all the project's predictions (for the model
    version filter), and the task list asks for them on every page only to learn which columns are
    shown (``get_fields_for_evaluation``): at a million tasks that one query costs more than the page.
    Every other caller, the columns endpoint the UI displays included, gets them computed afresh.
    """
    from core.current_request import get_current_request

    compute = _load(conf.BASE_GET_ALL_COLUMNS.get())
    request = get_current_request()
    if request is None or not request.path.startswith(TASK_PAGE_PATH):
        return compute(project, *args, **kwargs)
    now = time.monotonic()
    cached = _base_columns.get(project.id)
    if cached is None or now - cached[0] > BASE_COLUMNS_TTL:
        cached = _base_columns[project.id] = (now, compute(project, *args, **kwargs))
    return copy.deepcopy(cached[1])


def scores_project(project):
    """Whether the project's predictions are scored regions (``scope.scores_config``): images, video tracks.

    Both maps are Label Studio's stored ones (``data_types``: data key -> object tag; the parsed config:
    control -> type and inputs, parsed once if it was never stored), kept up to date when the config is
    saved, so a column request reads no XML. A text project gets no "Uncertainty" column that could never
    fill.
    """
    if scope.scored_by_object(project.data_types):
        return True
    return scope.scored_by_control(project.get_parsed_config())


def get_all_columns(project, *args, **kwargs):
    """Label Studio's columns plus ours (in projects we score), before the ``data`` root column (which
    must stay last)."""
    result = base_columns(project, *args, **kwargs)
    if not scores_project(project):
        return result
    columns = result['columns']
    at = next((i for i, c in enumerate(columns) if c.get('id') == 'data' and 'children' in c), len(columns))
    columns[at:at] = columns_for(project.id)
    _keep_fresh_now_and_then(project.id)
    return result


def _keep_fresh_now_and_then(project_id):
    from ls_extensions.scoring import jobs

    now = time.monotonic()
    if now - _checked.get(project_id, -CATCH_UP_EVERY) >= CATCH_UP_EVERY:
        _checked[project_id] = now
        jobs.keep_fresh(project_id)


def stored(field, model=None):
    """A task's stored ``field`` as a correlated subquery on the one-to-one row of ``model`` (by default
    ``TaskUncertainty``; no join, no aggregate).

    Not a join: Label Studio's count and totals queries drop an unused subquery annotation entirely,
    while an unused left join stays in their SQL; PostgreSQL then removes the join but still reads the
    task rows instead of an index-only count (60 ms more at a million tasks). Pages ordered by it never
    evaluate it per task: see ``ranking``.
    """
    from ls_extensions.scoring.models import TaskUncertainty

    return Subquery((model or TaskUncertainty).objects.filter(task_id=OuterRef('pk')).values(field)[:1])


def annotate_uncertainty(queryset):
    return ranking.ranked(queryset.annotate(**{UNCERTAINTY: stored('value')}))


def annotate_model_version(queryset):
    return queryset.annotate(**{MODEL_VERSION: stored('model_version')})


def annotate_mistake(queryset):
    from ls_extensions.scoring.models import TaskMistake

    return queryset.annotate(**{MISTAKE: stored('value', TaskMistake)})


def annotate_mistake_kinds(queryset):
    from ls_extensions.scoring.models import TaskMistake

    return queryset.annotate(**{MISTAKE_KINDS: stored('kinds', TaskMistake)})


class WindowCase(Case):
    """A ``Case`` holding a window, grouped by the columns the window reads, never by the window itself.

    Django groups by a whole non-aggregate expression (``BaseExpression.get_group_by_cols``), so the first
    count Label Studio annotates (a single-task read, ``fields=all``) would put ``ROW_NUMBER()`` in the
    GROUP BY, which SQLite and PostgreSQL refuse; a bare ``Window`` knows better, a ``Case`` around it not.
    """

    def get_group_by_cols(self):
        return _columns_under(self)


def _columns_under(expression):
    if isinstance(expression, Window) or not getattr(expression, 'contains_over_clause', False):
        return expression.get_group_by_cols()
    return [column for source in expression.get_source_expressions() for column in _columns_under(source)]


def annotate_diverse_order(queryset):
    """Each unlabeled scored task's place in its cluster plus 1 - its uncertainty; labeled or unscored: NULL.

    The place is a window over the rows the tab's filters leave (labeled tasks first, then most uncertain
    first), so ascending order gives the most uncertain task of every uncovered cluster, then of every
    covered one, then the second of each, and so on. A task without a cluster (an image not read yet, a
    cloud URL) is a cluster of its own: signatures are >= 0, so ``-id`` never meets one.

    Joins, not the other columns' subqueries: the window reads every row of the tab, and joins make that
    3x faster (100k tasks: 176 vs 511 ms). The joins stay in Label Studio's count query, so the column is
    hidden by default and costs only in a tab that shows it or sorts by it (scoring README, benchmark).
    """
    value = F(f'{TASK_RELATION}__value')
    group = Coalesce(F('ls_ext_cluster__cluster'), -F('id'))
    place = Window(
        RowNumber(), partition_by=[group], order_by=[F('is_labeled').desc(), value.desc(nulls_last=True), 'id']
    )
    return queryset.annotate(
        **{
            DIVERSE_ORDER: WindowCase(
                When(is_labeled=True, then=Value(None)),
                default=place + 1.0 - value,  # NULL without a value
                output_field=FloatField(),
            )
        }
    )


ANNOTATIONS = {
    UNCERTAINTY: annotate_uncertainty,
    MODEL_VERSION: annotate_model_version,
    MISTAKE: annotate_mistake,
    MISTAKE_KINDS: annotate_mistake_kinds,
    DIVERSE_ORDER: annotate_diverse_order,
}

RANGE_LOOKUPS = {
    'greater': 'gt',
    'greater_or_equal': 'gte',
    'less': 'lt',
    'less_or_equal': 'lte',
    'equal': 'exact',
}


def uncertainty_filter(operator, value):
    """A Data Manager number filter on "Uncertainty" as an index range condition, or None to let LS do it."""
    try:
        if operator == 'in':
            bounds = {'gte': float(value.min), 'lte': float(value.max)}
        elif operator in RANGE_LOOKUPS:
            bounds = {RANGE_LOOKUPS[operator]: float(value)}
        else:
            return None
    except (TypeError, ValueError, AttributeError):
        return None
    conditions = {f'{ranking.VALUE}__{lookup}': bound for lookup, bound in bounds.items()}
    return Q(**conditions, **{f'{TASK_RELATION}__project_id': F('project_id')})


def custom_filter_expressions(_filter, field_name, project, **kwargs):
    if field_name == UNCERTAINTY:
        expression = uncertainty_filter(_filter.operator, _filter.value)
        if expression is not None:
            return expression
    return _load(conf.BASE_FILTER_EXPRESSIONS.get())(_filter, field_name, project, **kwargs)
