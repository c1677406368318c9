"""Stored uncertainty: one row per scored task, the per-project policy, known model versions, jobs.

Scores are kept, not recomputed per request: the Data Manager orders a project's tasks by
``TaskUncertainty.value`` through the two composite indexes below (one per sort direction, both
with NULLs last as the Data Manager asks), so the first page is an index scan at any size.
"""

from django.db import models
from django.db.models import F
from django.db.models.expressions import OrderBy

from ls_extensions.scoring.measures import DEFAULT_MEASURE

TASK_RELATION = 'ls_ext_uncertainty'
"""Reverse name of the one-to-one from Label Studio's Task to its stored uncertainty."""


class NullsLastIndex(models.Index):
    """An index sorted with NULLs last; SQLite cannot say that in an index, so there it is a plain one."""

    def create_sql(self, model, schema_editor, using='', **kwargs):
        if schema_editor.connection.vendor == 'sqlite':
            keys = [
                e.expression.desc() if isinstance(e, OrderBy) and e.descending else getattr(e, 'expression', e)
                for e in self.expressions
            ]
            return models.Index(*keys, name=self.name).create_sql(model, schema_editor, using, **kwargs)
        return super().create_sql(model, schema_editor, using, **kwargs)


class TaskUncertainty(models.Model):
    """The uncertainty of a task's newest prediction of the project's active model version.

    A row exists only for tasks that had such a prediction; its ``model_version`` and ``measure``
    always equal the policy's active ones (rows are deleted when those change), so a stale
    version's score can never be ranked.
    """

    task = models.OneToOneField('tasks.Task', on_delete=models.CASCADE, related_name=TASK_RELATION)
    project = models.ForeignKey('projects.Project', on_delete=models.CASCADE, related_name='+', db_index=False)
    prediction_id = models.BigIntegerField(help_text='The prediction the value was computed from')
    model_version = models.TextField(default='', blank=True)
    measure = models.CharField(max_length=32)
    value = models.FloatField(null=True, help_text='Uncertainty in [0, 1]; NULL when the measure cannot rank it')
    regions = models.PositiveIntegerField(default=0)
    clamped = models.PositiveIntegerField(default=0, help_text='Scores clamped into [0, 1]')
    ignored = models.PositiveIntegerField(default=0, help_text='Scores left out: missing, NaN, non-numeric')
    updated_at = models.DateTimeField()

    class Meta:
        indexes = [
            NullsLastIndex(F('project'), F('value').asc(nulls_last=True), F('task'), name='ls_ext_unc_project_asc'),
            NullsLastIndex(F('project'), F('value').desc(nulls_last=True), F('task'), name='ls_ext_unc_project_desc'),
        ]


MISTAKE_RELATION = 'ls_ext_mistake'
"""Reverse name of the one-to-one from Label Studio's Task to its stored disagreement with the model."""


class TaskMistake(models.Model):
    """How much a labeled task's annotation disagrees with the newest prediction of the active model version
    (``disagreement.py``), kept under the same rule as ``TaskUncertainty``: written under the policy's shared
    lock for the active version only, deleted when it changes, refreshed when the annotation changes.

    Of several annotations of a task the one that disagrees most is kept (``annotation_id``).
    """

    task = models.OneToOneField('tasks.Task', on_delete=models.CASCADE, related_name=MISTAKE_RELATION)
    project = models.ForeignKey('projects.Project', on_delete=models.CASCADE, related_name='+', db_index=False)
    prediction_id = models.BigIntegerField(help_text='The prediction the annotation was compared with')
    annotation_id = models.BigIntegerField(help_text='The annotation that disagrees most with it')
    model_version = models.TextField(default='', blank=True)
    value = models.FloatField(help_text='Possible mistake in [0, 1]: 0 the model agrees, higher: surer disagreement')
    missing = models.PositiveIntegerField(default=0, help_text='Confident predicted boxes with no annotated box')
    spurious = models.PositiveIntegerField(default=0, help_text='Annotated boxes no predicted box supports')
    off = models.PositiveIntegerField(default=0, help_text='Matched boxes with a low IoU')
    wrong_label = models.PositiveIntegerField(default=0, help_text="Annotated boxes another class's box covers")
    kinds = models.CharField(
        max_length=200, default='', blank=True, help_text='The counts in words: "2 missing, 1 off"'
    )
    worst_frames = models.CharField(
        max_length=200, default='', blank=True, help_text='Videos: the frames that disagree most'
    )
    updated_at = models.DateTimeField()

    class Meta:
        indexes = [
            NullsLastIndex(F('project'), F('value').asc(nulls_last=True), F('task'), name='ls_ext_mistake_project_asc'),
            NullsLastIndex(
                F('project'), F('value').desc(nulls_last=True), F('task'), name='ls_ext_mistake_project_desc'
            ),
        ]


# The warm-up that reached 90% of the full-pool mAP with the fewest labels in benchmarks/active_learning.py's
# sweep (--quick --shared-background --warmup 0,16,24,32, 5 seeds; benchmarks/results/); weak evidence, a
# 120-task pool (README "Sort by uncertainty"). tests/scoring/test_benchmark_pool.py checks it against the run.
WARMUP_DEFAULT = 24


class ScoringPolicy(models.Model):
    """Per project: which measure, which model version, and what the stored rows currently hold."""

    project = models.OneToOneField('projects.Project', on_delete=models.CASCADE, related_name='ls_ext_scoring')
    measure = models.CharField(max_length=32, default=DEFAULT_MEASURE, help_text='The measure the user chose')
    pinned_version = models.TextField(
        null=True, blank=True, help_text='A model version (or ML backend title) the user pinned; NULL: follow newest'
    )
    active_version = models.TextField(null=True, blank=True, help_text='The model version the stored rows come from')
    active_measure = models.CharField(max_length=32, null=True, blank=True, help_text='The measure of stored rows')
    generation = models.PositiveIntegerField(default=0, help_text='Bumped whenever the stored rows are invalidated')
    scored_generation = models.PositiveIntegerField(
        default=0, help_text='The generation whose recompute finished; behind ``generation``: rows are incomplete'
    )
    prediction_watermark = models.BigIntegerField(default=0, help_text='Every prediction id up to this is scored')
    stream = models.BooleanField(
        default=False,
        help_text='The project chose our stream: with "Uncertainty sampling", Label All Tasks serves by stored '
        "uncertainty; otherwise Label Studio's own uncertainty sampling",
    )
    diverse = models.BooleanField(
        default=False,
        help_text='The stream serves one task per cluster of near-duplicate images first (the most uncertain of '
        'each cluster no annotated or locked task belongs to)',
    )
    warmup_annotations = models.PositiveIntegerField(
        default=WARMUP_DEFAULT,
        help_text='Until the project has this many labeled tasks the stream serves a random sample, not the '
        "untrained model's uncertainty; 0: no warm-up",
    )
    clusters_backfilled = models.BooleanField(
        default=False,
        help_text='Every annotated task has its cluster (the diverse stream fills them in chunks after diversity '
        'is turned on; new annotations add theirs)',
    )
    updated_at = models.DateTimeField(auto_now=True)

    @property
    def complete(self):
        """The stored rows hold every prediction of the active version (no recompute left unfinished)."""
        return self.scored_generation == self.generation


class TaskCluster(models.Model):
    """The near-duplicate cluster of a task's image (``signatures.py``), computed once: it depends on the
    image, not on a model version. ``cluster`` NULL: the image could not be read here (a cloud URL)."""

    task = models.OneToOneField('tasks.Task', on_delete=models.CASCADE, related_name='ls_ext_cluster')
    project = models.ForeignKey('projects.Project', on_delete=models.CASCADE, related_name='+', db_index=False)
    cluster = models.IntegerField(null=True)

    class Meta:
        indexes = [models.Index(fields=['project', 'cluster'], name='ls_ext_cluster_project')]


class KnownVersion(models.Model):
    """A model version seen in a project, with when it first appeared: the newest one becomes active."""

    PREDICTION, ML_BACKEND = 'prediction', 'ml_backend'

    project = models.ForeignKey('projects.Project', on_delete=models.CASCADE, related_name='+')
    version = models.TextField()
    first_seen_at = models.DateTimeField()
    source = models.CharField(max_length=16, default=PREDICTION)

    class Meta:
        constraints = [models.UniqueConstraint(fields=['project', 'version'], name='ls_ext_known_version_unique')]


class RecomputeJob(models.Model):
    """Background work on a project's scores, with its progress."""

    QUEUED, RUNNING, DONE, FAILED = 'queued', 'running', 'done', 'failed'
    RECOMPUTE, CATCH_UP, CLUSTERS = 'recompute', 'catch_up', 'clusters'  # clusters: ``total`` counts tasks

    project = models.ForeignKey('projects.Project', on_delete=models.CASCADE, related_name='+')
    kind = models.CharField(max_length=16, default=RECOMPUTE)
    reason = models.CharField(max_length=200, default='')
    status = models.CharField(max_length=16, default=QUEUED, db_index=True)
    model_version = models.TextField(null=True, blank=True)
    measure = models.CharField(max_length=32, null=True, blank=True)
    total = models.PositiveIntegerField(default=0, help_text='Predictions to score')
    done = models.PositiveIntegerField(default=0)
    scored = models.PositiveIntegerField(default=0, help_text='Tasks given a value')
    unranked = models.PositiveIntegerField(default=0, help_text='Tasks whose prediction the measure cannot rank')
    clamped = models.PositiveIntegerField(default=0)
    ignored = models.PositiveIntegerField(default=0)
    error = models.TextField(default='', blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True)
    heartbeat_at = models.DateTimeField(null=True, help_text='Last sign of life of a running job (each batch)')
    finished_at = models.DateTimeField(null=True)

    @property
    def progress(self):
        if self.status == self.DONE:
            return 1.0
        return round(self.done / self.total, 4) if self.total else 0.0
