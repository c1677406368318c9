"""``python manage.py serve_ml_backend --config tiny.py --checkpoint model.pth --device cpu --port 9090``

The model server speaking Label Studio's ML protocol; it does not use Label Studio's database.
Started beside ``make run`` on the same machine, it reads images and annotations from that Label Studio
without options: ``--ls-url`` defaults (after ``LABEL_STUDIO_URL``/``LABEL_STUDIO_HOST``) to the address
Label Studio itself gives ML backends in ``/setup`` (``HOSTNAME``, else ``http://localhost:<PORT or 8080>``);
with ``--trust-setup-hostname`` there is no default, and the hostname each ``/setup`` names is used.
"""

import logging
import os

from django.core.management.base import BaseCommand, CommandError

from ls_extensions.ml_backend import server


def local_label_studio():
    """The Label Studio of these settings on this machine: where ``make run`` serves it."""
    from django.conf import settings

    return settings.HOSTNAME or f'http://localhost:{os.environ.get("PORT") or "8080"}'


class Command(BaseCommand):
    help = 'Serve a detector (MMDetection by default) behind Label Studio ML protocol.'
    requires_system_checks = []
    requires_migrations_checks = False

    def add_arguments(self, parser):
        server.add_arguments(parser)

    def handle(self, *args, **options):
        logging.getLogger('ls_extensions.ml_backend').setLevel(logging.INFO)
        if not options.get('ls_url') and not options.get('trust_setup_hostname'):
            options['ls_url'] = local_label_studio()  # the Label Studio of this machine, as make run starts it
        try:
            server.check_bind(options['host'], server.credentials_from_env())  # before loading a model
            app = server.build_server(options)
            server.serve(app, options['host'], options['port'])
        except (server.AdapterError, server.RegistryError, server.BindRefused) as exc:
            raise CommandError(str(exc)) from None
