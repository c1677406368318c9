from django.apps import AppConfig


class DeployConfig(AppConfig):
    name = 'ls_extensions.deploy'
    label = 'ls_ext_deploy'
    verbose_name = 'ls_extensions deployment'
