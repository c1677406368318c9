from django.apps import AppConfig


class MlBackendConfig(AppConfig):
    name = 'ls_extensions.ml_backend'
    label = 'ls_ext_ml_backend'
    verbose_name = 'ML backend (model server)'
    default_auto_field = 'django.db.models.BigAutoField'
