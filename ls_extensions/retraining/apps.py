"""Retraining on annotation count: policy, run history, signal receivers, Celery tasks."""

from django.apps import AppConfig


class RetrainingConfig(AppConfig):
    name = 'ls_extensions.retraining'
    label = 'ls_ext_retraining'
    verbose_name = 'Retraining on annotations'
    default_auto_field = 'django.db.models.AutoField'

    def ready(self):
        from core.permissions import all_permissions
        from data_manager.actions import register_action

        from ls_extensions.retraining import actions, signals  # noqa: F401  (connects the receivers)

        register_action(
            actions.retrain_now,
            'Retrain now',
            order=95,
            permission=all_permissions.projects_change,
            dialog={
                'title': 'Retrain the model',
                'text': "Ask the project's ML backend to train on all annotations of the project now (whichever "
                'tasks are selected), then re-predict the unlabeled tasks. Progress and history: the "Retraining" '
                'button beside "Settings" at the top of the Data Manager.',
                'type': 'confirm',
            },
        )
