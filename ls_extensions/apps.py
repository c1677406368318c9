"""The one place where ls_extensions hooks into Label Studio at start-up."""

from django.apps import AppConfig


class LsExtensionsConfig(AppConfig):
    name = 'ls_extensions'
    verbose_name = 'Label Studio extensions'
    default_auto_field = 'django.db.models.AutoField'

    def ready(self):
        from ls_extensions.privacy import allow_list, backend_hosts

        allow_list.allow_operator_hosts()
        backend_hosts.connect_signals()
