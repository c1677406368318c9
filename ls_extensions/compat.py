"""Every place we lean on Label Studio's or Django's internals, declared once, each with its guard.

Public extension points (settings hooks such as ``DATA_MANAGER_GET_ALL_COLUMNS``, ``register_action``,
signals, routing in our URLconf) are not listed: Label Studio documents them. What is listed here is
what Label Studio or Django never promised to keep: a private name, a call site we rely on, a class
swap. Each :class:`Seam` names our module, the internal it relies on, and a ``check`` that raises
:class:`SeamChanged` with a message pointing at our module when the installed Label Studio or Django
no longer has that internal as we use it. ``tests/test_compat.py`` runs every check, and fails if a
module of ours starts using one of the marked patterns without a seam here.

The checks import Label Studio lazily: they need Django set up, and importing this module must not.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass


class SeamChanged(AssertionError):
    """Label Studio or Django changed under one of our seams: the message names our module to review."""


@dataclass(frozen=True)
class Seam:
    name: str
    ours: str  # the module of ours that depends on it, relative to the repository root
    internal: str  # what of Label Studio's or Django's it depends on
    check: Callable[[], None]


def _require(condition, seam, what):
    if not condition:
        raise SeamChanged(f'{seam}: {what}; review the seam in ls_extensions/compat.py and the module it names')


def _view_class(path, seam):
    """The view class Django routes ``path`` to; a path nobody routes any more is a changed seam."""
    from django.urls import Resolver404, resolve

    try:
        return getattr(resolve(path).func, 'view_class', None)
    except Resolver404:
        raise SeamChanged(f'{seam}: nothing is routed at {path}') from None


def _parameters(func):
    return tuple(inspect.signature(func).parameters)


def _check_next_task():
    import projects.functions.next_task as next_task

    from ls_extensions.scoring import next_task as ours

    seam = 'next_task patch'
    current = getattr(next_task, ours.PATCHED_NAME, None)
    _require(current is not None, seam, f'projects.functions.next_task.{ours.PATCHED_NAME} is gone')
    target = ours.original if getattr(current, 'ls_ext_patch', False) else current
    _require(
        _parameters(target) == ours.EXPECTED_PARAMETERS,
        seam,
        f'{ours.PATCHED_NAME} takes {_parameters(target)}, not {ours.EXPECTED_PARAMETERS}',
    )
    _require(
        ours.PATCHED_NAME in next_task.get_task_from_qs_with_sampling.__code__.co_names,
        seam,
        f'get_task_from_qs_with_sampling no longer calls the module-level {ours.PATCHED_NAME} by name',
    )
    _require(
        _parameters(next_task._get_first_unlocked) == ('tasks_query', 'user'),
        seam,
        '_get_first_unlocked(tasks_query, user) changed',
    )


def _check_query_internals():
    from django.db.models import F, Value
    from django.db.models.query import ModelIterable, QuerySet
    from django.db.models.sql.query import Query
    from tasks.models import Task

    from ls_extensions.scoring import ranking

    seam = 'ranked pages (Django QuerySet/Query internals)'
    queryset = Task.objects.filter(project_id=7).annotate(**{ranking.FIELD: Value(0.5)}).order_by(f'-{ranking.FIELD}')
    page = queryset[3:8]
    query = page.query
    _require(ranking.single_project(query) == 7, seam, "Query.where no longer shows a top-level 'project = 7'")
    _require(ranking.ordered_by_field(query) is True, seam, 'Query.order_by no longer holds the ordering as given')
    _require((query.low_mark, query.high_mark) == (3, 8), seam, 'Query.low_mark/high_mark no longer hold the slice')
    _require(page._iterable_class is ModelIterable, seam, 'QuerySet._iterable_class changed')
    _require(ranking.FIELD in query.annotation_select, seam, 'Query.annotation_select changed')
    for name in ('_fetch_all', '_chain'):
        _require(callable(getattr(QuerySet, name, None)), seam, f'QuerySet.{name} is gone')
    for name, parameter in (('clear_ordering', 'force'), ('add_annotation', 'select'), ('clear_limits', None)):
        method = getattr(Query, name, None)
        _require(callable(method), seam, f'Query.{name} is gone')
        _require(parameter is None or parameter in _parameters(method), seam, f'Query.{name} lost {parameter}=')
    for name in ('combinator', 'distinct', 'annotations', 'annotation_select_mask'):
        _require(hasattr(query, name), seam, f'Query.{name} is gone')
    chained = page._chain()
    chained.query.clear_limits()
    chained.query.clear_ordering(force=True)
    _require(
        not chained.query.order_by and chained.query.high_mark is None, seam, 'clear_limits/clear_ordering changed'
    )
    _require(F(ranking.VALUE).desc(nulls_last=True).nulls_last, seam, 'OrderBy(nulls_last=) changed')


def _check_list_serializer_swap():
    from django.conf import settings
    from rest_framework.serializers import ListSerializer
    from tasks import serializers as ls_serializers

    from ls_extensions.scoring import task_serializer

    seam = 'task list serializer swap'
    _require(
        settings.TASK_SERIALIZER == 'ls_extensions.scoring.task_serializer.ScoredTaskSerializer',
        seam,
        'TASK_SERIALIZER no longer names ours',
    )
    _require(
        ls_serializers.TaskSerializer is task_serializer.ScoredTaskSerializer,
        seam,
        'tasks.serializers.TaskSerializer is not ours',
    )
    plain = ls_serializers.BaseTaskSerializer(many=True)
    _require(type(plain) is ListSerializer, seam, "DRF's many=True no longer builds a plain ListSerializer")
    from data_manager.serializers import DataManagerTaskSerializer

    _require(
        issubclass(DataManagerTaskSerializer, task_serializer.ScoredTaskSerializer),
        seam,
        "the Data Manager's task serializer no longer builds on TASK_SERIALIZER",
    )
    ours = DataManagerTaskSerializer(many=True)
    _require(
        type(ours) is task_serializer.TaskListSerializer, seam, 'the Data Manager page is not a TaskListSerializer'
    )


def _check_column_cache():
    from core.utils.common import load_func
    from data_manager import functions, managers
    from django.conf import settings

    from ls_extensions.scoring import conf as scoring_conf
    from ls_extensions.scoring import dm

    seam = 'Data Manager column cache (keyed on the request path)'
    _require(
        'core.current_request.ThreadLocalMiddleware' in settings.MIDDLEWARE,
        seam,
        "Label Studio's ThreadLocalMiddleware (get_current_request) is no longer installed",
    )
    _require(
        load_func(scoring_conf.BASE_GET_ALL_COLUMNS.get()) is functions.get_all_columns,
        seam,
        'the base columns are not data_manager.functions.get_all_columns',
    )
    _require(
        'DATA_MANAGER_GET_ALL_COLUMNS' in inspect.getsource(managers.get_fields_for_evaluation),
        seam,
        'a page of tasks no longer reads its columns through DATA_MANAGER_GET_ALL_COLUMNS',
    )
    view = _view_class(dm.TASK_PAGE_PATH + '/', seam)
    _require(
        getattr(view, '__name__', None) == 'TaskListAPI',
        seam,
        f'{dm.TASK_PAGE_PATH}/ is no longer the task page (TaskListAPI)',
    )


def _check_ml_api_request():
    from ml.api_connector import MLApi

    seam = 'MLApi._request (reading GET /training)'
    found = inspect.signature(MLApi._request).parameters
    _require(
        tuple(found)[:5] == ('self', 'url_suffix', 'request', 'verbose', 'method'),
        seam,
        f'MLApi._request takes {tuple(found)}',
    )
    _require(
        any(p.kind is inspect.Parameter.VAR_KEYWORD for p in found.values()),
        seam,
        'MLApi._request no longer passes keyword arguments (timeout=) on',
    )
    _require("'GET'" in inspect.getsource(MLApi._request), seam, 'MLApi._request no longer accepts GET')


EXPORT_ROUTES = {
    # Label Studio's view name -> the URL name it is routed under in data_export/urls.py
    'ExportAPI': 'project-export',
    'ExportFormatsListAPI': 'project-export-formats',
    'ExportConvertAPI': 'project-exports-convert',
    'ExportDownloadAPI': 'project-exports-download',
}


def _check_export_views():
    from data_export import api as export_api
    from django.urls import NoReverseMatch, reverse

    seam = 'export views routed ahead of Label Studio'
    for view_name, url_name in EXPORT_ROUTES.items():
        theirs = getattr(export_api, view_name, None)
        _require(theirs is not None, seam, f'data_export.api.{view_name} is gone')
        kwargs = {'pk': 1, 'export_pk': 2} if 'exports-' in url_name else {'pk': 1}
        try:
            path = reverse(f'data_export:api-projects:{url_name}', kwargs=kwargs)
        except NoReverseMatch:
            raise SeamChanged(f'{seam}: Label Studio no longer names a URL {url_name}') from None
        ours = _view_class(path, seam)
        _require(ours is not theirs and issubclass(ours, theirs), seam, f'{path} is not routed to our {view_name}')


def _check_settings_snapshot():
    from django.conf import LazySettings, settings
    from django.utils.functional import LazyObject, empty

    seam = 'settings snapshot reset (LazySettings._wrapped)'
    _require(issubclass(LazySettings, LazyObject), seam, 'LazySettings is no longer a LazyObject')
    settings.DEBUG  # noqa: B018 (an access makes the wrapper load)
    _require(settings.__dict__.get('_wrapped', empty) is not empty, seam, 'LazySettings no longer keeps _wrapped')


def _check_ml_webhook_receiver():
    from ml import models as ml_models

    seam = 'ML backend webhook receiver swap'
    receiver = getattr(ml_models, 'create_ml_webhook', None)
    _require(receiver is not None, seam, 'ml.models.create_ml_webhook is gone')
    _require(
        _parameters(receiver) == ('sender', 'instance', 'created', 'kwargs'),
        seam,
        f'create_ml_webhook takes {_parameters(receiver)}',
    )


def _check_ml_url_check():
    from core.utils import exceptions, io
    from ml import api as ml_api
    from ml.serializers import MLBackendSerializer

    seam = 'ML backend URL check (our routes for /api/ml)'
    _require(
        'block_local_urls' in _parameters(io.validate_upload_url),
        seam,
        'validate_upload_url(block_local_urls=) changed',
    )
    _require(hasattr(exceptions, 'SsrfBlockedUrlError'), seam, 'SsrfBlockedUrlError is gone')
    _require(
        callable(getattr(MLBackendSerializer, 'validate_url', None)), seam, 'MLBackendSerializer.validate_url is gone'
    )
    for name in ('MLBackendListAPI', 'MLBackendDetailAPI'):
        _require(hasattr(ml_api, name), seam, f'ml.api.{name} is gone')


def _check_retrieve_action():
    from data_manager.actions import basic

    from ls_extensions.ml_backend import actions

    seam = "Retrieve Predictions under Label Studio's action id"
    _require(
        callable(getattr(basic, 'retrieve_tasks_predictions', None)), seam, 'basic.retrieve_tasks_predictions is gone'
    )
    registered = actions.stock_registration()
    _require(
        registered.get('entry_point') is actions.retrieve_tasks_predictions,
        seam,
        f'the action {actions.ACTION_ID!r} is not ours: register_action no longer replaces by id',
    )


def _check_template_seam():
    from django.conf import settings

    from ls_extensions import ui

    seam = "template seam (our base.html ahead of Label Studio's)"
    dirs = settings.TEMPLATES[0]['DIRS']
    _require(bool(dirs) and str(dirs[0]) == ui.TEMPLATE_DIR, seam, 'our template dir is not first in TEMPLATES DIRS')


def _check_in_request_predictions():
    import importlib

    import data_manager.functions as functions

    from ls_extensions.ml_backend import background_predictions as ours

    seam = 'in-request predictions'
    _require(_parameters(functions.evaluate_predictions) == ('tasks',), seam, 'evaluate_predictions(tasks) changed')
    callers = {'tasks.api': ('TaskAPI', 'get'), 'data_manager.api': ('TaskListAPI', 'get')}
    _require(set(callers) == set(ours.MODULES), seam, 'the patched modules and their callers disagree')
    for name, (view, method) in callers.items():
        module = importlib.import_module(name)
        _require(hasattr(module, ours.PATCHED_NAME), seam, f'{name} no longer imports {ours.PATCHED_NAME}')
        code = inspect.unwrap(getattr(getattr(module, view), method)).__code__  # under drf-spectacular's decorator
        _require(ours.PATCHED_NAME in code.co_names, seam, f'{name}.{view}.{method} no longer calls it by name')


SEAMS = (
    Seam(
        'next_task patch',
        'ls_extensions/scoring/next_task.py',
        'projects.functions.next_task._try_uncertainty_sampling (replaced), _get_first_unlocked',
        _check_next_task,
    ),
    Seam(
        'ranked pages',
        'ls_extensions/scoring/ranking.py',
        "Django's QuerySet._fetch_all/_chain/_iterable_class and Query.where/order_by/marks/annotations",
        _check_query_internals,
    ),
    Seam(
        'task list serializer swap',
        'ls_extensions/scoring/task_serializer.py',
        "the class of DRF's ListSerializer built by BaseTaskSerializer.many_init, swapped",
        _check_list_serializer_swap,
    ),
    Seam(
        'Data Manager column cache',
        'ls_extensions/scoring/dm.py',
        "core.current_request.get_current_request and the task page's path /api/tasks",
        _check_column_cache,
    ),
    Seam(
        'MLApi._request',
        'ls_extensions/retraining/backend_calls.py',
        'ml.api_connector.MLApi._request (private), for GET /training',
        _check_ml_api_request,
    ),
    Seam(
        'export views',
        'ls_extensions/video/export_hooks.py',
        "data_export.api's four export views and their URLs, routed to our subclasses first",
        _check_export_views,
    ),
    Seam(
        'settings snapshot reset',
        'settings/bootstrap.py',
        'django.conf.settings._wrapped reset to django.utils.functional.empty',
        _check_settings_snapshot,
    ),
    Seam(
        'ML webhook receiver swap',
        'ls_extensions/ml_backend/ssrf_hooks.py',
        'ml.models.create_ml_webhook disconnected from post_save and called by ours',
        _check_ml_webhook_receiver,
    ),
    Seam(
        'ML backend URL check',
        'ls_extensions/ml_backend/ssrf_hooks.py',
        "core.utils.io.validate_upload_url (Label Studio's SSRF list, used as it ships) and ml.api's views",
        _check_ml_url_check,
    ),
    Seam(
        'Retrieve Predictions',
        'ls_extensions/ml_backend/actions.py',
        'data_manager.actions.basic.retrieve_tasks_predictions, re-registered under its id',
        _check_retrieve_action,
    ),
    Seam(
        'in-request predictions',
        'ls_extensions/ml_backend/background_predictions.py',
        'evaluate_predictions, called by name in tasks.api.TaskAPI.get and data_manager.api.TaskListAPI.get (replaced)',
        _check_in_request_predictions,
    ),
    Seam(
        'template seam',
        'ls_extensions/ui/__init__.py',
        "Label Studio's base.html extended; its bundle's selectors (tests/retraining/test_ui_seam.py)",
        _check_template_seam,
    ),
)
