"""WSGI entry point: ``gunicorn ls_extensions.deploy.wsgi:application`` (settings.production unless set).

Label Studio's ``core.wsgi`` works as well but needs Label Studio's package directory on the path
first; here our bootstrap (offline switches, egress guard, that path) runs before anything else.
"""

import os

os.environ.setdefault('DJANGO_SETTINGS_MODULE', 'settings.production')

from django.core.wsgi import get_wsgi_application  # noqa: E402

from settings import bootstrap  # noqa: E402, F401  (before Label Studio is imported)

application = get_wsgi_application()
