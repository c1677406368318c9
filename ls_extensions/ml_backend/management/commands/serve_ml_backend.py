"""``python manage.py serve_ml_backend --config tiny.py --checkpoint model.pth --device cpu --port 9090``

The model server speaking Label Studio's ML protocol; it does not use Label Studio's database.
"""

import logging

from django.core.management.base import BaseCommand, CommandError

from ls_extensions.ml_backend import server


class Command(BaseCommand):
    help = 'Serve a detector (MMDetection by default) behind Label Studio ML protocol.'
    requires_system_checks = []
    requires_migrations_checks = False

    def add_arguments(self, parser):
        server.add_arguments(parser)

    def handle(self, *args, **options):
        logging.getLogger('ls_extensions.ml_backend').setLevel(logging.INFO)
        try:
            server.check_bind(options['host'], server.credentials_from_env())  # before loading a model
            app = server.build_server(options)
            server.serve(app, options['host'], options['port'])
        except (server.AdapterError, server.RegistryError, server.BindRefused) as exc:
            raise CommandError(str(exc)) from None
