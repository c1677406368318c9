"""An ML backend may only be saved with a host the egress guard allows: loopback or the operator's rules.

Label Studio sends a backend the label configuration, task data and an API token (``/setup``), so a
backend URL is an outbound channel. The guard already refuses the connection; this refuses the row,
with a message naming the setting, so nobody is left with a backend that can never connect.

Two hooks, both Django extension points Label Studio leaves open (no Label Studio code is replaced):

- ``refuse_unlisted_backend_host``: a ``pre_save`` receiver on ``ml.MLBackend``, so every way of saving
  (the API, ``MLBackend.objects.create`` in a shell, ``label-studio start --init --ml-backends``, an old
  project's migration, ``loaddata``) is refused before anything is written. Only a new row or a changed
  URL is checked: Label Studio re-saves every backend when it refreshes its state, and a row that is
  already there (written around the ORM, or allowed before a restart) stays visible as disconnected
  while the guard refuses its connections.
- ``MLBackendHostMiddleware`` (in ``MIDDLEWARE``): Label Studio's serializer resolves the URL
  (``validate_url``: a 500 when the guard refuses the look-up) and calls the backend's health check
  before anything is saved, so for ``POST /api/ml`` and ``PATCH``/``PUT /api/ml/<id>`` the same check
  runs first: a 400 on ``url`` in Label Studio's error shape, no look-up, no call.

Bulk inserts (``bulk_create``, raw SQL) send no signal; for those the guard is the boundary.
With ``LS_EXT_EGRESS=off`` there is no guard and nothing is checked here either.
"""

from django.db.models.signals import pre_save
from rest_framework.exceptions import ValidationError

from ls_extensions.privacy import egress

WRITE_METHODS = ('POST', 'PUT', 'PATCH')


class BackendHostNotAllowed(ValidationError):
    """A DRF validation error, so that an API view that meets it answers 400; a shell shows the message."""


def refusal(url, guard=None):
    """Why ``url`` may not be an ML backend, or None when it may (loopback, allowed, no guard, no URL)."""
    guard = guard or egress.get_guard()
    if guard is None or url is None:
        return None
    try:
        host, port = egress.url_destination(url)
    except egress.AllowListError as exc:
        return f'ML backend URL {exc}.'
    if guard.allows_by_rule(host, port):
        return None
    target = f'[{host}]:{port}' if ':' in host else f'{host}:{port}'
    return (
        f'ML backend host {target} is not allowed: this installation connects only to loopback and the hosts '
        f'its operator lists. To use this backend, add {target} to {egress.ALLOWED_HOSTS_ENV} '
        '(or name the URL on label-studio start --ml-backends) and restart Label Studio.'
    )


def check_backend_url(url):
    reason = refusal(url)
    if reason:
        raise BackendHostNotAllowed({'url': [reason]})


def connect_signals():
    """Called from ``AppConfig.ready``: the sender is named lazily, this module imports no model."""
    pre_save.connect(refuse_unlisted_backend_host, sender='ml.MLBackend', dispatch_uid='ls_ext_backend_host')


def refuse_unlisted_backend_host(sender, instance, update_fields=None, **kwargs):
    if update_fields is not None and 'url' not in update_fields:
        return
    if not instance._state.adding and instance.pk is not None:
        stored = sender.objects.filter(pk=instance.pk).values_list('url', flat=True).first()
        if stored == instance.url:
            return  # a state refresh of an existing row: its connections are the guard's business
    check_backend_url(instance.url)


class MLBackendHostMiddleware:
    """Answers 400 to a write of Label Studio's ML backend API whose ``url`` is not allowed, before its view runs.

    A middleware rather than a DRF permission: Label Studio imports DRF's views while its settings are
    being imported, so ``REST_FRAMEWORK`` in our overlay never reaches ``APIView.permission_classes``;
    ``MIDDLEWARE`` is read when the handler loads. Anonymous requests go on to DRF, which answers 401.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)

    def process_view(self, request, view_func, view_args, view_kwargs):
        view_class = getattr(view_func, 'view_class', None) or getattr(view_func, 'cls', None)
        if request.method not in WRITE_METHODS or not _is_ml_backend_view(view_class) or not _credentials(request):
            return None
        reason = refusal(_submitted_url(request, view_class))
        return None if reason is None else validation_error_response({'url': [reason]})


def _is_ml_backend_view(view_class):
    from ml.api import MLBackendDetailAPI, MLBackendListAPI  # at call time: this module imports no Label Studio code

    return isinstance(view_class, type) and issubclass(view_class, (MLBackendListAPI, MLBackendDetailAPI))


def _credentials(request):
    user = getattr(request, 'user', None)
    return bool(getattr(user, 'is_authenticated', False) or request.META.get('HTTP_AUTHORIZATION'))


def _submitted_url(request, view_class):
    """The ``url`` of the body, parsed by the view's own DRF parsers; None when there is none to check.

    ``request.body`` is read first so that the view parses the same bytes again (DRF reads a consumed
    request from ``body``). A body DRF cannot parse is left to the view, which answers it with a 4xx.
    """
    from rest_framework.exceptions import APIException
    from rest_framework.request import Request

    request.body  # noqa: B018 (cache the bytes for the view's own parse)
    try:
        data = Request(request, parsers=[parser() for parser in view_class.parser_classes]).data
    except APIException:
        return None
    url = data.get('url') if hasattr(data, 'get') else None
    # the types DRF's CharField accepts; anything else its own validation refuses with a 400
    if isinstance(url, (str, int, float)) and not isinstance(url, bool):
        return str(url)
    return None


def validation_error_response(errors):
    """A 400 in the shape Label Studio's exception handler gives its validation errors."""
    import uuid

    import label_studio
    from django.http import JsonResponse

    body = {
        'id': str(uuid.uuid4()),
        'status_code': 400,
        'version': label_studio.__version__,
        'detail': 'Validation error',
        'validation_errors': errors,
    }
    return JsonResponse(body, status=400)
