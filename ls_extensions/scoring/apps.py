"""Model uncertainty per task: stored scores, Data Manager columns, the uncertainty stream."""

from django.apps import AppConfig


class ScoringConfig(AppConfig):
    name = 'ls_extensions.scoring'
    label = 'ls_ext_scoring'
    verbose_name = 'Uncertainty scoring'
    default_auto_field = 'django.db.models.BigAutoField'
