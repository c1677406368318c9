"""The model server: Label Studio's ML protocol in front of an adapter (MMDetection by default).

The server itself (``server.py``, split by job into ``wsgi_app``, ``handlers``, ``lifecycle`` and
``cli``) is plain WSGI on the standard library and never touches Label Studio's database; the Django
app exists so that ``manage.py serve_ml_backend`` is found.
"""
