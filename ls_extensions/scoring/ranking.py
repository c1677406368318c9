"""Tasks ordered by uncertainty (a Data Manager page above all) fetched through the index instead of a sort.

Label Studio orders by our annotation, a correlated subquery on ``TaskUncertainty`` (so that its
count and totals queries, which drop unused annotations, stay exactly as with no column at all).
Ordering by it directly would evaluate it for every task and sort them all. So when such a queryset
is evaluated (a page, ``first()``, a whole list) this mixin returns the same rows in two steps:
tasks that have a value in index order, then tasks without one, by id. Same order as Label Studio's
``ORDER BY value NULLS LAST`` (ties broken by id, where Label Studio leaves them arbitrary).

For a page of a single project the first step walks the per-project index itself (candidate ids from
``TaskUncertainty`` alone, then Label Studio's filters applied to that literal id list). A join or a
subquery would leave the plan to PostgreSQL, which underestimates the join of a small project in a
big table (it takes the task-side project filter as independent of the join) and then sorts or scans
the whole project instead of walking the index.
"""

from django.db.models import F, Q
from django.db.models.expressions import OrderBy
from django.db.models.query import ModelIterable
from django.db.models.sql.where import AND

from ls_extensions.scoring.models import TASK_RELATION

FIELD = 'uncertainty'
VALUE = f'{TASK_RELATION}__value'
WALK_CHUNK = 40  # fewest index candidates in a first batch (else 1.5x the rows needed); next ones 4x larger
WALK_BATCHES = 4  # then, if Label Studio's filters still rejected too many, one join query decides


def scored_q():
    """Tasks with a stored value; the project equality lets the database use the per-project index."""
    return Q(**{f'{VALUE}__isnull': False, f'{TASK_RELATION}__project_id': F('project_id')})


def unscored_q():
    return Q(**{f'{TASK_RELATION}__isnull': True}) | Q(**{f'{VALUE}__isnull': True})


def by_value(descending, prefix=f'{TASK_RELATION}__'):
    """Most uncertain first when descending; NULLs last either way, as the Data Manager sorts."""
    value = F(f'{prefix}value')
    return value.desc(nulls_last=True) if descending else value.asc(nulls_last=True)


def ordered_by_field(query):
    """True/False (descending or not) if the query is ordered by the uncertainty annotation alone, else None."""
    if len(query.order_by) != 1:
        return None
    key = query.order_by[0]
    if isinstance(key, str):
        name, descending = key.lstrip('-'), key.startswith('-')
    elif isinstance(key, OrderBy) and isinstance(key.expression, F):
        name, descending = key.expression.name, key.descending
    else:
        return None
    return descending if name == FIELD else None


def single_project(query):
    """The project id a query is restricted to by a top-level ``project = id`` condition, else None."""
    if query.where.connector != AND or query.where.negated:
        return None
    for child in query.where.children:
        target = getattr(getattr(child, 'lhs', None), 'target', None)
        if getattr(child, 'lookup_name', None) == 'exact' and getattr(target, 'name', None) == 'project':
            return child.rhs if isinstance(child.rhs, int) else None
    return None


def walk_index(plain, project_id, descending, high):
    """The first ``high`` scored rows passing ``plain``'s filters, in index order; None if they are too sparse.

    Per batch, two short queries: the next candidate ids straight from the index, then Label Studio's
    queryset restricted to that literal id list (primary-key look-ups whatever the planner's estimates),
    put back in index order by (value, id). Fewer than ``high`` rows means the project has no more.
    """
    from ls_extensions.scoring.models import TaskUncertainty

    candidates = (
        TaskUncertainty.objects.filter(project_id=project_id, value__isnull=False)
        .order_by(by_value(descending, prefix=''), 'task_id')
        .values_list('task_id', flat=True)
    )
    sign = -1 if descending else 1
    rows, start, size = [], 0, max(WALK_CHUNK, high + high // 2)
    for _ in range(WALK_BATCHES):
        ids = list(candidates[start : start + size])
        batch = list(plain.filter(id__in=ids)) if ids else []
        rows += sorted(batch, key=lambda row: index_order(row, sign))
        if len(rows) >= high or len(ids) < size:
            return rows[:high]
        start, size = start + size, size * 4
    return None


def index_order(row, sign):
    """(value, id) as the index orders them; a value cleared since the candidates were read goes last."""
    value = getattr(row, FIELD)
    return (value is None, 0.0 if value is None else sign * value, row.pk)


def scored_rows(plain, joined, descending, low, high):
    """Rows ``low:high`` of the scored tasks (high None: all of them), through the index when possible.

    ``plain`` is the queryset as Label Studio built it (the value as a subquery), ``joined`` the same
    with the value read through the join to the stored row.
    """
    walkable = high is not None and plain._iterable_class is ModelIterable and FIELD in plain.query.annotation_select
    project_id = single_project(plain.query) if walkable else None
    rows = walk_index(plain, project_id, descending, high) if project_id is not None else None
    if rows is None:
        return list(joined.filter(scored_q()).order_by(by_value(descending), 'id')[low:high])
    return rows[low:]


def ranked_page(queryset):
    """The rows of a queryset ordered by uncertainty, fetched in index order; None if not such a query.

    A page (sliced) reads only as far as it needs; a whole list (Label Studio's sequential stream
    walks one) reads both parts in index order instead of sorting every task.
    """
    query = queryset.query
    if query.combinator or query.distinct:
        return None
    descending = ordered_by_field(query)
    if descending is None:
        return None
    low, high = query.low_mark, query.high_mark
    plain = queryset._chain()
    plain.query.clear_limits()
    plain.query.clear_ordering(force=True)
    joined = plain._chain()
    if FIELD in joined.query.annotations:  # the same value, read through the join the query uses anyway
        mask = joined.query.annotation_select_mask
        joined.query.add_annotation(F(VALUE), FIELD, select=mask is None or FIELD in mask)
    head = scored_rows(plain, joined, descending, low, high)
    if high is not None and len(head) == high - low:
        return head
    total_scored = low + len(head) if head else joined.filter(scored_q()).count()
    high = None if high is None else high - total_scored
    return head + list(joined.filter(unscored_q()).order_by('id')[max(0, low - total_scored) : high])


class RankedPages:
    """QuerySet mixin: evaluating rows ordered by uncertainty goes through :func:`ranked_page`."""

    def _fetch_all(self):
        if self._result_cache is None:
            page = ranked_page(self)
            if page is not None:
                self._result_cache = page
        super()._fetch_all()


_classes = {}


def ranked(queryset):
    """The same queryset, whose evaluations ordered by uncertainty read the index in order."""
    cls = type(queryset)
    if not issubclass(cls, RankedPages):
        if cls not in _classes:
            _classes[cls] = type(f'Ranked{cls.__name__}', (RankedPages, cls), {})
        queryset.__class__ = _classes[cls]
    return queryset
