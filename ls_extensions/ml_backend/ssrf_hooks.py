"""Where the ML backends the operator lists (``ssrf``) meet Label Studio; only those URLs are treated apart.

1. ``/api/ml/`` and ``/api/ml/<id>`` (create, update) are Label Studio's views with one change, the URL
   check of their serializer: while the list names any backend (``LS_EXT_ML_URL_CHECK``), a URL it does
   not name gets Label Studio's check with ``ML_BLOCK_LOCAL_IP`` on, its 403 included. Label Studio
   authorizes the project or backend first and validates fields before its health check and setup, so
   an unlisted URL is refused before any request leaves. Routed ahead of Label Studio's in our URLconf
   (``ml_backend/urls.py``); nothing else of those views changes.
2. The webhook Label Studio creates for a new backend (``ml.models.create_ml_webhook``, post_save) goes
   through the webhook serializer, whose SSRF check raises a 403 out of ``save()`` for a backend on
   loopback, so the backend could not be added at all. ``connect_ml_webhook_receiver`` swaps that
   receiver for one that calls it and, for a listed backend only, lets the refusal stand for the
   webhook alone: no webhook (Label Studio sends none to loopback), the backend is added. The one place
   we re-wire Label Studio; tests/ml_backend/test_ssrf.py fails if Label Studio stops raising there.
"""

import logging

from core.utils.exceptions import LabelStudioAPIException, SsrfBlockedUrlError
from core.utils.io import validate_upload_url
from django.db import transaction
from ml import api as ml_api
from ml.serializers import MLBackendSerializer
from rest_framework import serializers
from rest_framework.exceptions import PermissionDenied

from ls_extensions.ml_backend import conf, ssrf
from ls_extensions.parsers import PARSER_CLASSES
from ls_extensions.permissions import is_project_member

logger = logging.getLogger(__name__)


def checked_by_us():
    return conf.URL_CHECK.get()


def listed(url):
    return checked_by_us() and ssrf.is_listed(url, conf.BACKEND_URLS.get())


class URLCheckedMLBackendSerializer(MLBackendSerializer):
    def validate_url(self, value):
        try:
            if checked_by_us() and not listed(value):
                validate_upload_url(value, block_local_urls=True)  # SsrfBlockedUrlError: a 403, as Label Studio's
            return super().validate_url(value)
        except SsrfBlockedUrlError:
            raise
        except LabelStudioAPIException as exc:  # "Can't resolve hostname ..." (an IPv6 literal too): a 400, not a 500
            raise serializers.ValidationError(str(exc.detail)) from None

    def validate(self, attrs):
        if self.instance is not None:
            # a PATCH without these: Label Studio's health check and setup read them from attrs (a 500 otherwise)
            for field in ('url', 'project', 'auth_method', 'basic_auth_user', 'basic_auth_pass'):
                attrs.setdefault(field, getattr(self.instance, field))
        return super().validate(attrs)


class MembersOnly:
    """Label Studio's open-source object check lets another organization's members through (see
    ``ls_extensions/permissions.py``); since these routes are ours, they also require membership."""

    parser_classes = PARSER_CLASSES  # JSON nested too deeply: a 400, not a 500

    def check_object_permissions(self, request, obj):
        super().check_object_permissions(request, obj)
        if not is_project_member(request.user, getattr(obj, 'project', obj)):
            raise PermissionDenied("Only members of the project's organization can use its ML backends.")


class URLCheckedMLBackendListAPI(MembersOnly, ml_api.MLBackendListAPI):
    serializer_class = URLCheckedMLBackendSerializer
    schema = None  # the API docs keep Label Studio's entry for the same path

    def perform_create(self, serializer):
        """Label Studio's create in one transaction: it inserts the row, then calls the backend and saves the
        project; a failure after the insert (a busy SQLite database in ``project.save``) left the row behind,
        and "Validate and Save" clicked again made a second identical backend. Now it leaves nothing. On SQLite
        (``transaction_mode=IMMEDIATE``) the transaction holds the write lock through the backend's /health and
        /setup calls, at most 2 x ``ML_TIMEOUT_SETUP`` (3 s each by default), well inside the 30 s busy wait of
        other writers. Deleting the row after a failure instead was tried: under the same fault the delete failed
        too and left the row."""
        with transaction.atomic():
            super().perform_create(serializer)


class URLCheckedMLBackendDetailAPI(MembersOnly, ml_api.MLBackendDetailAPI):
    serializer_class = URLCheckedMLBackendSerializer
    schema = None


def create_ml_webhook_unless_refused(sender, instance, created, **kwargs):
    """Label Studio's ``create_ml_webhook``; for a listed backend, its SSRF refusal means "no webhook"."""
    from ml.models import create_ml_webhook

    try:
        create_ml_webhook(sender, instance, created, **kwargs)
    except SsrfBlockedUrlError:
        if not listed(instance.url):
            raise
        logger.info('ML backend %s: no webhook, Label Studio sends none to a reserved address', instance.url)


def connect_ml_webhook_receiver():
    from django.db.models.signals import post_save
    from ml.models import MLBackend, create_ml_webhook

    if post_save.disconnect(create_ml_webhook, sender=MLBackend):
        post_save.connect(create_ml_webhook_unless_refused, sender=MLBackend, dispatch_uid='ls_ext_ml_webhook')
