from django.apps import AppConfig


class MlBackendConfig(AppConfig):
    name = 'ls_extensions.ml_backend'
    label = 'ls_ext_ml_backend'
    verbose_name = 'ML backend (model server)'
    default_auto_field = 'django.db.models.BigAutoField'

    def ready(self):
        from ls_extensions.ml_backend import ssrf_hooks

        ssrf_hooks.connect_ml_webhook_receiver()  # a listed backend on loopback can be added (see ssrf_hooks)
