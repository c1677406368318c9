from django.apps import AppConfig


class MlBackendConfig(AppConfig):
    name = 'ls_extensions.ml_backend'
    label = 'ls_ext_ml_backend'
    verbose_name = 'ML backend (model server)'
    default_auto_field = 'django.db.models.BigAutoField'

    def ready(self):
        from data_manager.actions import register_action

        from ls_extensions.ml_backend import actions, background_predictions, ssrf_hooks

        ssrf_hooks.connect_ml_webhook_receiver()  # a listed backend on loopback can be added (see ssrf_hooks)
        # "Retrieve Predictions" that names the tasks left without one (ml_backend/actions.py): Label Studio's
        # registration (title, order, permission, dialog) with our entry point under the same id
        stock = actions.stock_registration()
        kept = {key: value for key, value in stock.items() if key not in ('id', 'title', 'order', 'entry_point')}
        register_action(actions.retrieve_tasks_predictions, stock['title'], stock['order'], **kept)
        background_predictions.install()  # video tasks are predicted by the worker, never inside a request
