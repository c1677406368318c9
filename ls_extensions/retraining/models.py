"""A project's retraining policy (with its durable annotation counter) and the history of runs."""

from django.db import models


class RetrainingPolicy(models.Model):
    """When to retrain a project's model; the counter and the trigger state live on the same row.

    ``changes_since_run`` counts annotation saves and deletes since the last run started (F() updates
    in the annotation's own transaction). ``pending`` is a trigger that has not started a run yet: set
    once when the counter crosses ``threshold`` (or by "Retrain now"), cleared when a run claims it.
    ``running`` is the one-run-per-project claim; a trigger that arrives meanwhile stays pending and
    starts exactly one follow-up run when the current one ends.

    ``failed_attempts`` counts failed runs in a row, of any cause; past the budget (``max_retries()``
    retries) the policy stops: ``stopped_reason`` says why, and nothing starts by itself until the user
    acts (saves the policy, or "Retrain now").
    """

    project = models.OneToOneField('projects.Project', on_delete=models.CASCADE, related_name='ls_ext_retraining')
    enabled = models.BooleanField(default=False)
    threshold = models.PositiveIntegerField(default=20, help_text='annotation changes that trigger a run')
    min_interval_seconds = models.PositiveIntegerField(default=0, help_text='least time between two runs')
    ml_backend = models.ForeignKey('ml.MLBackend', null=True, blank=True, on_delete=models.SET_NULL, related_name='+')
    repredict = models.BooleanField(default=True, help_text='re-predict unlabeled tasks with the new version')
    predict_labeled = models.BooleanField(
        default=False,
        help_text='predict labeled tasks too, so that the Data Manager can rank possible annotation mistakes',
    )
    batch_size = models.PositiveIntegerField(default=50)
    training_timeout_seconds = models.PositiveIntegerField(default=3600)

    changes_since_run = models.IntegerField(default=0)
    pending = models.BooleanField(default=False, db_index=True)
    pending_since = models.DateTimeField(null=True, blank=True)
    pending_reason = models.CharField(max_length=200, blank=True, default='', help_text="the pending trigger's cause")
    running = models.BooleanField(default=False)
    last_run_at = models.DateTimeField(null=True, blank=True)
    failed_attempts = models.PositiveIntegerField(
        default=0, help_text='runs failed in a row (any cause); transient ones are retried with back-off'
    )
    stopped_reason = models.TextField(
        blank=True, default='', help_text='set when the failure budget is spent: no run starts by itself until cleared'
    )
    stopped_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self):
        return f'retraining policy of project {self.project_id}'


class TrainingRun(models.Model):
    """One run: queued -> requesting (one delivery of the training step holds it and asks the backend to
    train) -> training -> predicting -> succeeded | failed; or training -> rejected, when the model server's
    gate did not serve the new version (worse on the held-out tasks). A predict-only run skips training."""

    QUEUED, REQUESTING, TRAINING = 'queued', 'requesting', 'training'
    PREDICTING, SUCCEEDED, FAILED, REJECTED = 'predicting', 'succeeded', 'failed', 'rejected'
    STATUSES = [(s, s) for s in (QUEUED, REQUESTING, TRAINING, PREDICTING, SUCCEEDED, FAILED, REJECTED)]
    FINISHED = (SUCCEEDED, FAILED, REJECTED)

    project = models.ForeignKey('projects.Project', on_delete=models.CASCADE, related_name='ls_ext_training_runs')
    ml_backend = models.ForeignKey('ml.MLBackend', null=True, on_delete=models.SET_NULL, related_name='+')
    trigger = models.CharField(max_length=200)
    status = models.CharField(max_length=16, choices=STATUSES, default=QUEUED)
    annotations_used = models.PositiveIntegerField(default=0)
    changes = models.PositiveIntegerField(default=0, help_text='annotation changes counted since the run before')
    job_id = models.CharField(max_length=128, blank=True, default='')
    version_before = models.TextField(blank=True, default='')
    version_after = models.TextField(blank=True, default='')
    tasks_to_predict = models.PositiveIntegerField(default=0)
    tasks_predicted = models.PositiveIntegerField(default=0)
    last_task_id = models.IntegerField(default=0, help_text='re-prediction progress: tasks up to this id are done')
    error = models.TextField(blank=True, default='')
    retries = models.PositiveIntegerField(default=0, help_text='connection errors retried during this run')
    recovered = models.PositiveIntegerField(default=0, help_text='times a lost step was published again')
    metrics = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True, help_text='last step taken; stale -> re-published')
    requested_at = models.DateTimeField(
        null=True, blank=True, help_text='when the training step was claimed (requesting): a lost request finds its job'
    )

    class Meta:
        ordering = ['-id']

    def __str__(self):
        return f'training run {self.id} of project {self.project_id} ({self.status})'
