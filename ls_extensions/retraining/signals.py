"""Receivers on Label Studio's models: count annotation changes, keep LS's in-request training off."""

from django.db import transaction
from django.db.models.signals import post_delete, post_save, pre_save
from django.dispatch import receiver
from projects.models import Project
from tasks.models import Annotation, Task

from ls_extensions.retraining import queueing, steps, triggers
from ls_extensions.retraining.models import RetrainingPolicy


@receiver(post_save, sender=Annotation, dispatch_uid='ls_ext_retraining.annotation_saved')
@receiver(post_delete, sender=Annotation, dispatch_uid='ls_ext_retraining.annotation_deleted')
def annotation_changed(sender, instance, **kwargs):
    project_id = instance.project_id
    if project_id is None and instance.task_id:
        project_id = Task.objects.filter(pk=instance.task_id).values_list('project_id', flat=True).first()
    triggers.count_change(project_id)


@receiver(pre_save, sender=Project, dispatch_uid='ls_ext_retraining.project_saving')
def keep_builtin_training_off(sender, instance, **kwargs):
    """Where our retraining is on, Label Studio's synchronous ``train()`` on submit stays off."""
    if instance.pk and instance.min_annotations_to_start_training:
        if RetrainingPolicy.objects.filter(project_id=instance.pk, enabled=True).exists():
            instance.min_annotations_to_start_training = 0


@receiver(post_save, sender=RetrainingPolicy, dispatch_uid='ls_ext_retraining.policy_saved')
def policy_saved(sender, instance, **kwargs):
    if instance.enabled:
        triggers.disable_builtin_training(instance.project_id)
        project = Project.objects.filter(pk=instance.project_id).first()
        if project is not None and steps.follows_backend_live(project):
            # stored predictions of the served version instead of Label Studio's in-request predictions
            project_id = instance.project_id
            transaction.on_commit(lambda: queueing.enqueue_in_background('predict_served_version', project_id))
