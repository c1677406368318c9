"""Model uncertainty per task: stored scores, Data Manager columns, the uncertainty stream."""

from django.apps import AppConfig


class ScoringConfig(AppConfig):
    name = 'ls_extensions.scoring'
    label = 'ls_ext_scoring'
    verbose_name = 'Uncertainty scoring'
    default_auto_field = 'django.db.models.BigAutoField'

    def ready(self):
        """Hook into Label Studio: signals, Data Manager annotations and actions, the stream."""
        import data_manager.managers

        from ls_extensions.scoring import actions, dm, next_task, signals  # noqa: F401

        data_manager.managers.update_annotation_map(dm.ANNOTATIONS)
        actions.register()
        next_task.install()
