"""Receivers that keep stored scores in step with Label Studio's predictions and ML backends, and the
stream's choice in step with the project's sampling and with the version a retraining run switched to, a new
annotation's near-duplicate cluster known to the diverse stream, and each labeled task's possible mistake in step
with its annotations.

Bulk inserts send no signals; ``jobs.keep_fresh`` catches them up (Data Manager loads, the sweep; see README).
"""

from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver
from ml.models import MLBackend
from projects.models import Project
from tasks.models import Annotation, Prediction

from ls_extensions.retraining.events import model_version_changed
from ls_extensions.scoring import clusters, jobs, services  # noqa: F401  (jobs: connects recompute_needed)


@receiver(post_save, sender=Prediction, dispatch_uid='ls_ext_scoring_prediction_saved')
def prediction_saved(sender, instance, **kwargs):
    services.prediction_saved(instance)


@receiver(post_delete, sender=Prediction, dispatch_uid='ls_ext_scoring_prediction_deleted')
def prediction_deleted(sender, instance, **kwargs):
    services.prediction_deleted(instance)


@receiver(post_save, sender=Annotation, dispatch_uid='ls_ext_scoring_annotation_saved')
def annotation_saved(sender, instance, created=False, **kwargs):
    if created:
        clusters.annotation_saved(instance)
    services.annotation_changed(instance)


@receiver(post_delete, sender=Annotation, dispatch_uid='ls_ext_scoring_annotation_deleted')
def annotation_deleted(sender, instance, **kwargs):
    services.annotation_changed(instance)


@receiver(post_save, sender=MLBackend, dispatch_uid='ls_ext_scoring_backend_saved')
def backend_saved(sender, instance, **kwargs):
    services.backend_changed(instance)


@receiver(post_save, sender=Project, dispatch_uid='ls_ext_scoring_project_saved')
def project_saved(sender, instance, update_fields=None, **kwargs):
    if update_fields is None or 'sampling' in update_fields:
        services.sampling_changed(instance)


@receiver(model_version_changed, dispatch_uid='ls_ext_scoring_model_version_changed')
def model_version_changed_by_retraining(sender, project_id, **kwargs):
    """A retraining run switched the project's version: bring the stored uncertainty up to it."""
    services.reconcile(project_id, 'retrained')
