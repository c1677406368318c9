"""Health checks for every process of the layout: the web (views), the Celery workers (worker.py)."""
