"""Keeping the stored scores true: which version is current, scoring predictions, writing rows.

The one rule everything here follows: a ``TaskUncertainty`` row is written only while holding a
shared lock on the project's ``ScoringPolicy`` and only for the policy's active version and
measure; switching version or measure takes the exclusive lock, bumps ``generation`` and deletes
the rows. So a score of a stale version or another measure is never visible to a ranking.
"""

from dataclasses import dataclass

from django.db import connection, transaction
from django.db.models import Max, Min, Q
from django.utils import timezone

from ls_extensions.scoring import events, measures, mistakes, runner, upsert
from ls_extensions.scoring.models import KnownVersion, ScoringPolicy, TaskUncertainty

SUCCESSFUL_BACKEND_STATES = ('CO', 'TR', 'PR')  # MLBackendState: connected, training, predicting
PREDICTION_FIELDS = ('id', 'task_id', 'model_version', 'score', 'result', 'created_at')
ROW_COLUMNS = tuple(
    'task_id project_id prediction_id model_version measure value regions clamped ignored updated_at'.split()
)


def version_of(raw):
    """Label Studio stores a missing model version as NULL or ''; both are the version ''."""
    return raw or ''


# --- the policy and its lock ---------------------------------------------------------------------


def get_policy(project_id):
    """The project's policy, created on first use together with the versions its predictions show."""
    policy = ScoringPolicy.objects.filter(project_id=project_id).first()
    if policy is not None:
        return policy
    with transaction.atomic():
        policy, created = ScoringPolicy.objects.get_or_create(project_id=project_id)
        if created:
            _learn_existing_versions(project_id)
            runner.after_commit(lambda: reconcile(project_id, 'first use'))
    return policy


def _learn_existing_versions(project_id):
    from tasks.models import Prediction

    seen = (
        Prediction.objects.filter(project_id=project_id)
        .values('model_version')
        .annotate(first=Min('created_at'))
        .order_by()
    )
    known = {}
    for row in seen:
        version = version_of(row['model_version'])
        if version not in known or row['first'] < known[version]:
            known[version] = row['first']
    KnownVersion.objects.bulk_create(
        [KnownVersion(project_id=project_id, version=v, first_seen_at=t) for v, t in known.items()],
        ignore_conflicts=True,
    )


def lock_policy(project_id, exclusive=False):
    """Lock the policy row until the surrounding transaction ends; writers share, switchers exclude.

    Django has no FOR SHARE, hence the one raw query; SQLite serializes writers by itself.
    """
    table = ScoringPolicy._meta.db_table
    for _ in range(2):
        if exclusive:
            policy = ScoringPolicy.objects.select_for_update().filter(project_id=project_id).first()
        elif connection.vendor == 'postgresql':
            found = ScoringPolicy.objects.raw(f'SELECT * FROM {table} WHERE project_id = %s FOR SHARE', [project_id])
            policy = next(iter(found), None)
        else:
            policy = ScoringPolicy.objects.filter(project_id=project_id).first()
        if policy is not None:
            return policy
        get_policy(project_id)
    raise ScoringPolicy.DoesNotExist(project_id)


# --- the uncertainty stream: an explicit, stored choice ------------------------------------------


def choose_stream(project, on):
    """Store the project's choice: on, "Label All Tasks" serves by our stored uncertainty (sampling becomes
    "Uncertainty sampling"); off, a project on "Uncertainty sampling" goes back to sequential order."""
    with transaction.atomic():
        get_policy(project.id)
        ScoringPolicy.objects.filter(project_id=project.id).update(stream=on, updated_at=timezone.now())
        if on or project.sampling == project.UNCERTAINTY:
            project.sampling = project.UNCERTAINTY if on else project.SEQUENCE
            project.save(update_fields=['sampling'])


def change_policy(project, changes):
    """Apply validated policy changes (``PolicyUpdateSerializer``: the API and the retraining page), then
    queue the recompute they make necessary."""
    policy = get_policy(project.id)
    edited = [name for name in ('measure', 'pinned_version', 'diverse', 'warmup_annotations') if name in changes]
    for name in edited:
        setattr(policy, name, changes[name])
    if changes.get('diverse'):  # tasks labeled meanwhile get their clusters (clusters.backfill_annotated)
        policy.clusters_backfilled = False
        edited.append('clusters_backfilled')
    policy.save(update_fields=[*edited, 'updated_at'])
    if 'stream' in changes:
        choose_stream(project, changes['stream'])
    reconcile(project.id, 'policy changed')
    if changes.get('diverse'):
        events.clusters_needed.send(sender=ScoringPolicy, project_id=project.id)
    return policy


def serves_stream(project, policy=None):
    """Our stream serves this project's next tasks: it chose ours and its sampling is "Uncertainty sampling"."""
    if project.sampling != project.UNCERTAINTY:
        return False
    if policy is not None:
        return policy.stream
    return ScoringPolicy.objects.filter(project_id=project.id, stream=True).exists()


def stream_policy(project):
    """The project's policy when our stream serves it (it chose ours, sampling "Uncertainty sampling"), else None."""
    if project.sampling != project.UNCERTAINTY:
        return None
    return ScoringPolicy.objects.filter(project_id=project.id, stream=True).first()


def labeled_tasks(project, at_most=None):
    """The project's labeled tasks (Label Studio's ``is_labeled``), counted up to ``at_most`` when given (the
    stream only asks whether the warm-up is over, and must not count a large project on every request)."""
    labeled = project.tasks.filter(is_labeled=True)
    return (labeled if at_most is None else labeled[:at_most]).count()


def in_warmup(project, policy):
    """True while the project has fewer labeled tasks than the policy's ``warmup_annotations``."""
    wanted = policy.warmup_annotations
    return bool(wanted) and labeled_tasks(project, at_most=wanted) < wanted


def stream_state(project, policy):
    """What the stream serves now, in words (``mode``), and the labeled tasks, for the API and the retraining page."""
    labeled = labeled_tasks(project)
    if not serves_stream(project, policy):
        mode = 'off'
    elif labeled < policy.warmup_annotations:
        mode = 'warm-up (random)'
    else:
        mode = 'uncertainty, diverse' if policy.diverse else 'uncertainty'
    return {'mode': mode, 'labeled': labeled}


def sampling_changed(project):
    """Any sampling but "Uncertainty sampling" chosen in Label Studio's settings ends our stream's choice,
    so choosing "Uncertainty sampling" there later means Label Studio's own."""
    if project.sampling != project.UNCERTAINTY:
        ScoringPolicy.objects.filter(project_id=project.id, stream=True).update(stream=False)


# --- which model version is current ---------------------------------------------------------------


def backend_versions(project_id):
    """ML backend title -> the model version its predictions carry (for titles used as versions)."""
    from ml.models import MLBackend

    rows = MLBackend.objects.filter(project_id=project_id).values_list('title', 'model_version')
    return {title: version for title, version in rows if title and version}


def canonical_version(project_id, version):
    """A version as predictions carry it: an ML backend *title* is mapped to that backend's version."""
    return backend_versions(project_id).get(version, version)


def newest_version(project_id):
    """The version that appeared most recently (first prediction or successful backend set-up)."""
    known = KnownVersion.objects.filter(project_id=project_id).order_by('-first_seen_at', '-id').first()
    return None if known is None else known.version


def desired_state(policy):
    """(model version, measure) the stored rows should hold: the pinned version, else the newest."""
    if policy.pinned_version is not None:
        return canonical_version(policy.project_id, policy.pinned_version), policy.measure
    return newest_version(policy.project_id), policy.measure


def remember_version(project_id, version, seen_at, source=KnownVersion.PREDICTION):
    """Record a version the first time it shows up; True when it is new (may change the active one)."""
    _, created = KnownVersion.objects.get_or_create(
        project_id=project_id, version=version, defaults={'first_seen_at': seen_at, 'source': source}
    )
    return created


def reconcile(project_id, reason):
    """Queue a recompute when the stored rows do not hold the desired version and measure.

    The job is queued by ``jobs`` (``events.recompute_needed``: this module does not import ``jobs``); returns it.
    """
    policy = get_policy(project_id)
    if desired_state(policy) != (policy.active_version, policy.active_measure):
        answers = events.recompute_needed.send(sender=ScoringPolicy, project_id=project_id, reason=reason)
        return next((job for _, job in answers if job is not None), None)
    return None


def backend_changed(backend):
    """An ML backend saved: a version it reports after a successful set-up is a known version."""
    if backend.model_version and backend.state in SUCCESSFUL_BACKEND_STATES and backend.project_id:
        remember_version(backend.project_id, backend.model_version, timezone.now(), KnownVersion.ML_BACKEND)
    runner.after_commit(lambda: reconcile(backend.project_id, 'ML backend changed'))


# --- scoring predictions into rows -----------------------------------------------------------------


@dataclass
class Tally:
    """What a batch of predictions gave: counts reported to the user."""

    scored: int = 0
    unranked: int = 0
    clamped: int = 0
    ignored: int = 0

    def add(self, outcome):
        self.scored += outcome.value is not None
        self.unranked += outcome.value is None
        self.clamped += outcome.clamped
        self.ignored += outcome.ignored


def newest_per_task(predictions):
    """task id -> the newest (highest id) of the given prediction dicts of that task."""
    newest = {}
    for prediction in predictions:
        kept = newest.get(prediction['task_id'])
        if kept is None or prediction['id'] > kept['id']:
            newest[prediction['task_id']] = prediction
    return newest


def rows_for(project_id, newest, policy, tally=None):
    """Rows for the newest prediction dicts of the active version (``newest_per_task``)."""
    now = timezone.now()
    rows = []
    for prediction in newest.values():
        outcome = measures.uncertainty(policy.active_measure, prediction['result'], prediction['score'])
        if tally is not None:
            tally.add(outcome)
        row = {
            'task_id': prediction['task_id'],
            'project_id': project_id,
            'prediction_id': prediction['id'],
            'model_version': policy.active_version,
            'measure': policy.active_measure,
            'value': outcome.value,
            'regions': outcome.regions,
            'clamped': outcome.clamped,
            'ignored': outcome.ignored,
            'updated_at': now,
        }
        rows.append(tuple(row[column] for column in ROW_COLUMNS))
    return rows


ROW_TYPES = ('integer', 'integer', 'bigint', 'text', 'text', 'float8', 'integer', 'integer', 'integer', 'timestamptz')


def upsert_rows(rows):
    """Insert or update uncertainty rows; an existing row is replaced only by an equal or newer prediction."""
    upsert.newer_prediction_wins(TaskUncertainty._meta.db_table, ROW_COLUMNS, ROW_TYPES, rows)


def write_scores(project_id, predictions, generation=None, tally=None):
    """Score prediction dicts into rows under the shared lock; False if ``generation`` is outdated."""
    with transaction.atomic():
        policy = lock_policy(project_id)
        if generation is not None and policy.generation != generation:
            return False
        if policy.active_measure is None:
            return True
        current = newest_per_task(p for p in predictions if version_of(p['model_version']) == policy.active_version)
        upsert_rows(rows_for(project_id, current, policy, tally))
        mistakes.write(project_id, policy.active_version, current)
    return True


def newest_of_version(project_id, task_ids, version):
    """task id -> the newest prediction dict of ``version`` of each of the given tasks that has one."""
    from tasks.models import Prediction

    predictions = Prediction.objects.filter(task_id__in=task_ids, project_id=project_id).filter(version_q(version))
    return newest_per_task(predictions.values(*PREDICTION_FIELDS))


def rescore_tasks(project_id, task_ids, tally=None):
    """Recompute the given tasks from their newest prediction of the active version (or drop the row)."""
    with transaction.atomic():
        policy = lock_policy(project_id)
        if policy.active_measure is None:
            return policy
        newest = newest_of_version(project_id, task_ids, policy.active_version)
        TaskUncertainty.objects.filter(task_id__in=task_ids).delete()
        upsert_rows(rows_for(project_id, newest, policy, tally))
        mistakes.refresh(project_id, policy.active_version, task_ids, newest)
    return policy


def version_q(version):
    """Predictions of ``version``; the version '' also covers NULL."""
    same = Q(model_version=version)
    return same | Q(model_version__isnull=True) if version == '' else same


# --- live maintenance from signals ---------------------------------------------------------------


def prediction_saved(prediction):
    """A prediction was created or updated: score it if it is of the active version, else learn the version."""
    project_id = prediction.project_id
    if project_id is None:
        return
    version = version_of(prediction.model_version)
    with transaction.atomic():
        policy = lock_policy(project_id)
        if version == policy.active_version and policy.active_measure:
            newest = {prediction.task_id: {name: getattr(prediction, name) for name in PREDICTION_FIELDS}}
            upsert_rows(rows_for(project_id, newest, policy))
            mistakes.write(project_id, policy.active_version, newest)
        elif remember_version(project_id, version, prediction.created_at or timezone.now()):
            runner.after_commit(lambda: reconcile(project_id, f'new model version {version!r}'))


def prediction_deleted(prediction):
    """The prediction a row came from is gone: fall back to the task's next newest one (or no row)."""
    if TaskUncertainty.objects.filter(task_id=prediction.task_id, prediction_id=prediction.id).exists():
        rescore_tasks(prediction.project_id, [prediction.task_id])


def annotation_changed(annotation):
    """An annotation was saved or deleted: compare its task again with the active version's newest prediction."""
    project_id = annotation.project_id
    scored = ScoringPolicy.objects.filter(project_id=project_id, active_measure__isnull=False)
    if project_id is None or not scored.exists():
        return  # nothing is scored in this project (yet): its first recompute compares every labeled task
    with transaction.atomic():
        policy = lock_policy(project_id)
        if policy.active_measure is None:
            return
        tasks = [annotation.task_id]
        mistakes.refresh(
            project_id, policy.active_version, tasks, newest_of_version(project_id, tasks, policy.active_version)
        )


# --- reading ------------------------------------------------------------------------------------


def newest_prediction_id(project_id):
    from tasks.models import Prediction

    return Prediction.objects.filter(project_id=project_id).aggregate(top=Max('id'))['top'] or 0
