"""Receivers that keep stored scores in step with Label Studio's predictions and ML backends.

Bulk inserts send no signals; ``tasks.keep_fresh`` catches them up when the Data Manager loads (see README).
"""

from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver
from ml.models import MLBackend
from tasks.models import Prediction

from ls_extensions.scoring import services


@receiver(post_save, sender=Prediction, dispatch_uid='ls_ext_scoring_prediction_saved')
def prediction_saved(sender, instance, **kwargs):
    services.prediction_saved(instance)


@receiver(post_delete, sender=Prediction, dispatch_uid='ls_ext_scoring_prediction_deleted')
def prediction_deleted(sender, instance, **kwargs):
    services.prediction_deleted(instance)


@receiver(post_save, sender=MLBackend, dispatch_uid='ls_ext_scoring_backend_saved')
def backend_saved(sender, instance, **kwargs):
    services.backend_changed(instance)
