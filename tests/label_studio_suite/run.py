"""Label Studio's own tests over the areas we touch, under our settings: the guard ``make test`` runs.

    .venv/bin/python tests/label_studio_suite/run.py              the areas below, under settings.test
    .venv/bin/python tests/label_studio_suite/run.py --stock      the same under Label Studio's own settings
    .venv/bin/python tests/label_studio_suite/run.py tests/ml -x  other paths / pytest options

Label Studio's tests ship in its wheel (``label_studio/tests``) and import each other as ``tests.*``
(our suite's package name too), so they run in their own pytest process: Label Studio's package
directory as rootdir and working directory, as in Label Studio's CI, with this folder's pytest.ini.
"""

import os
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent

# relative to Label Studio's package directory
AREAS = [
    'tests/data_manager',
    'tests/test_next_task.py',
    'tests/next_task.tavern.yml',
    'tests/next_task_skip_queue.tavern.yml',
    'tests/test_predictions.py',
    'tests/test_prediction_validation.py',
    'tests/predictions.tavern.yml',
    'tests/predictions.model.tavern.yml',
    'tests/ml',
    'tests/ml.tavern.yml',
    'tests/test_export.py',
    'tests/test_export_media_downloads.py',
    'tests/export.tavern.yml',
    'tests/data_export.tavern.yml',
    'tests/test_annotations.py',
    'tests/test_annotations_result_count.py',
    'tests/tasks',
    'tests/tasks_api.tavern.yml',
    'tests/webhooks',
    'tests/sdk',
    'tests/test_contextlog.py',
    'tests/test_endpoints.py',
]


def label_studio_dir():
    import label_studio

    return Path(label_studio.__file__).resolve().parent


def pytest_args(ls_dir, argv, stock):
    names_tests = any((ls_dir / a.split('::')[0]).exists() for a in argv if a.startswith('tests'))
    if stock:  # Label Studio's pytest.ini and settings; our compatibility fixes only
        config = ['-c', str(ls_dir / 'pytest.ini'), '-p', 'no:cacheprovider', '-p', 'compat']
    else:
        config = ['-c', str(HERE / 'pytest.ini'), '-p', 'compat', '-p', 'plugin']
    # Hypothesis' plugin imports hypothesis at the terminal summary, after Label Studio's live-server threads
    # ran: CPython 3.11.7 then failed pytest's assertion rewrite of it with "SystemError: AST constructor
    # recursion depth mismatch" (its AST converter's depth counter, cpython gh-106905) after every test had
    # passed, here and in an earlier run. Label Studio's tests use no Hypothesis: the plugin stays off.
    no_hypothesis = ['-p', 'no:hypothesispytest']
    return [*config, *no_hypothesis, '--rootdir', str(ls_dir), *argv, *([] if names_tests else AREAS)]


def main(argv):
    import pytest

    stock = '--stock' in argv
    argv = [a for a in argv if a != '--stock']
    ls_dir = label_studio_dir()
    os.environ.setdefault('DJANGO_DB', 'sqlite')  # Label Studio's settings read it; its tavern files skip by it
    sys.path[:0] = [str(HERE), str(ls_dir)]  # our two plugins; Label Studio's top-level modules (core, tests...)
    with tempfile.TemporaryDirectory(prefix='ls-suite-') as data_dir:
        os.environ.setdefault('LABEL_STUDIO_BASE_DATA_DIR', data_dir)
        os.chdir(ls_dir)  # its tests open files relative to it (tests/shared_stages.yml, tests/test_data/...)
        return pytest.main(pytest_args(ls_dir, argv, stock))


if __name__ == '__main__':
    sys.exit(main(sys.argv[1:]))
