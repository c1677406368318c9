"""Start-up of the `ls_extensions` app: every app's settings checked, then the privacy hooks (hosts, backend URLs).

Each app of ours hooks its own parts into Label Studio in its own `apps.py`; the seams on Label Studio's
internals are declared in `compat.py`.
"""

from django.apps import AppConfig


class LsExtensionsConfig(AppConfig):
    name = 'ls_extensions'
    verbose_name = 'Label Studio extensions'
    default_auto_field = 'django.db.models.AutoField'

    def ready(self):
        from ls_extensions import conf
        from ls_extensions.privacy import allow_list, backend_hosts

        conf.validate_all()  # every app's settings, before any is used: a bad value stops start-up with its name
        allow_list.allow_operator_hosts()
        backend_hosts.connect_signals()
