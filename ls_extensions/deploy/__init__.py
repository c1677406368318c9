"""Running ls_extensions as several processes: WSGI entry point, gunicorn config, the shared cache, migrate_once."""
