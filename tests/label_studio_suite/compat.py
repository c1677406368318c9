"""Fixes that let Label Studio 1.23.2's own tests run on our pytest (9.2); a pytest plugin (``-p``), loaded first.

They touch pytest and tavern's import, never Label Studio, and each is installed only while its cause is
there:

- pytest 9 fails the import of a module that puts a mark on a fixture (pytest 8 warned that such a mark
  has no effect, and ignored it). ``label_studio/tests/utils.py::project_id`` carries ``django_db``; the
  tests that use it get database access from ``business_client`` anyway. Exactly that mark on exactly
  that fixture is ignored again, as pytest 8 did; any other mark on a fixture still fails.
- pytest 9 fails an ``async def`` test when no async plugin runs it; pytest 8 skipped it with a warning.
  ``tests/sdk/test_export.py::test_project_async`` is such a function (a helper of a test Label Studio
  itself skips, collected for its name). Those are skipped again, with that reason.
- tavern 3.7.1 (the newest) was written for pytest < 9.1: it imports ``_pytest.python_api.ApproxBase``
  (9.1 moved approx to ``_pytest.approx``, the base class is ``Approx``) and declares
  ``class ApproxSentinel(yaml.YAMLObject, type(pytest.approx(1.0)))``, which 9.1's ``abc``-based approx
  classes turn into a metaclass conflict. The old module name is provided, and tavern's loader is
  imported once while ``pytest.approx`` returns a subclass of pytest's own ``ApproxScalar`` whose
  metaclass also derives from YAML's; its ``!approx`` tag still builds ``pytest.approx`` values.
"""

import abc
import importlib
import importlib.util
import inspect
import sys
import types

import pytest
from _pytest.mark import structures

# (module, function, mark) that pytest 8 ignored: the function becomes a fixture after the mark is applied
IGNORED_FIXTURE_MARKS = {
    ('tests.utils', 'project_id', 'django_db'),
    ('label_studio.tests.utils', 'project_id', 'django_db'),
}


def _ignore_marks_pytest_8_ignored(store_mark):
    def store_mark_compat(obj, mark):
        key = (getattr(obj, '__module__', None), getattr(obj, '__name__', None), mark.name)
        if key in IGNORED_FIXTURE_MARKS:
            return
        store_mark(obj, mark)

    store_mark_compat.ls_ext_compat = True
    return store_mark_compat


def _make_tavern_importable():
    if importlib.util.find_spec('tavern') is None or importlib.util.find_spec('_pytest.python_api') is not None:
        return  # no tavern, or a pytest it was written for
    import yaml
    from _pytest import approx as approx_module

    sys.modules['_pytest.python_api'] = module = types.ModuleType('_pytest.python_api', 'pytest < 9.1 name')
    module.ApproxBase = approx_module.Approx
    scalar = type(pytest.approx(1.0))
    yaml_meta = type(yaml.YAMLObject)
    if issubclass(type(scalar), yaml_meta):
        return
    meta = type('YamlApproxMeta', (yaml_meta, abc.ABCMeta), {})
    compatible = meta(scalar.__name__, (scalar,), {'__module__': __name__})
    approx = pytest.approx
    pytest.approx = lambda expected, rel=None, abs=None, nan_ok=False: compatible(expected, rel, abs, nan_ok)
    try:
        importlib.import_module('tavern._core.loader')
    finally:
        pytest.approx = approx


def pytest_collection_modifyitems(items):
    for item in items:
        function = getattr(item, 'function', None)
        if inspect.iscoroutinefunction(function) and not any(item.iter_markers('anyio')):
            item.add_marker(
                pytest.mark.skip(reason='async test without an async plugin: pytest 8 skipped it, 9 fails it')
            )


def install():
    if not getattr(structures.store_mark, 'ls_ext_compat', False):
        structures.store_mark = _ignore_marks_pytest_8_ignored(structures.store_mark)
    _make_tavern_importable()


install()
