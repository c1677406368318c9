"""Hosts the egress guard lets through without the user listing them: the services we are configured to use."""

import logging
from urllib.parse import urlsplit

from django.conf import settings

from ls_extensions.privacy import egress

logger = logging.getLogger(__name__)

BROKER_SETTINGS = ('CELERY_BROKER_URL', 'CELERY_RESULT_BACKEND', 'REDIS_LOCATION', 'RQ_REDIS_URL')


def configured_service_hosts():
    """Database, broker and cache hosts named in settings."""
    hosts = [db.get('HOST') for db in settings.DATABASES.values()]
    for name in BROKER_SETTINGS:
        value = getattr(settings, name, None)
        if isinstance(value, str) and '://' in value:
            hosts.append(urlsplit(value).hostname)
    for cache in getattr(settings, 'CACHES', {}).values():
        locations = cache.get('LOCATION') or []
        for location in [locations] if isinstance(locations, str) else locations:
            if '://' in location:
                hosts.append(urlsplit(location).hostname)
    return [h for h in hosts if h and not h.startswith('/')]


def ml_backend_hosts():
    """Hosts of the ML backends connected to projects (read on a guard miss, a few times a minute at most)."""
    from ml.models import MLBackend

    return [url for url in MLBackend.objects.values_list('url', flat=True) if url]


def allow_configured_services():
    guard = egress.get_guard()
    if guard is None:
        return
    for host in configured_service_hosts():
        guard.allow(host, why='configured service')
    guard.add_provider(ml_backend_hosts)
