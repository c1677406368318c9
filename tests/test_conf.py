"""Our settings are declared once per app (``<app>/conf.py``) and a bad value stops start-up with its name."""

import importlib
import re
import subprocess
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured

from ls_extensions import conf
from tests.support.server import BIN, REPO
from tests.test_first_start import offline_env

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize(
    'kind, raw, value',
    [
        (float, '2.5', 2.5),
        (float, 0, 0.0),
        (int, '7', 7),
        (bool, 'Off', False),
        (bool, 'yes', True),
        (bool, True, True),
        (tuple, 'a, b c', ('a', 'b', 'c')),
        (tuple, ['x'], ('x',)),
    ],
)
def test_a_value_is_read_as_its_kind(kind, raw, value):
    assert conf.Setting('LS_EXT_X', kind, None).parse(raw) == value


@pytest.mark.parametrize(
    'setting, raw, expected',
    [
        (conf.Setting('LS_EXT_X', float, 1.0, minimum=0), 'soon', "LS_EXT_X='soon': expected a number of at least 0"),
        (conf.Setting('LS_EXT_X', float, 1.0, minimum=0), '-1', "LS_EXT_X='-1': expected a number of at least 0"),
        (conf.Setting('LS_EXT_X', float, 1.0), 'nan', "LS_EXT_X='nan': expected a number"),
        (conf.Setting('LS_EXT_X', int, 1), '2.5', "LS_EXT_X='2.5': expected a whole number"),
        (conf.Setting('LS_EXT_X', int, 1), True, 'LS_EXT_X=True: expected a whole number'),
        (conf.Setting('LS_EXT_X', bool, True), 'maybe', "LS_EXT_X='maybe': expected true or false"),
        (conf.Setting('LS_EXT_X', str, 'a', choices=('a', 'b')), 'c', "LS_EXT_X='c': expected one of 'a', 'b'"),
    ],
)
def test_a_bad_value_names_the_setting_and_what_it_takes(setting, raw, expected):
    with pytest.raises(conf.InvalidSetting) as refused:
        setting.parse(raw)
    assert str(refused.value) == expected


def test_an_unset_or_empty_variable_is_the_default():
    setting = conf.Setting('LS_EXT_X', int, 4, minimum=0)
    assert setting.from_env({}) == 4 and setting.from_env({'LS_EXT_X': ' '}) == 4
    assert setting.from_env({'LS_EXT_X': ' 9 '}) == 9


def test_every_declared_setting_has_a_valid_default_and_a_unique_name():
    declared = [s for name in conf.APP_CONFS for s in conf.declared_in(importlib.import_module(name))]
    assert len({s.name for s in declared}) == len(declared)
    for setting in declared:
        assert setting.name.startswith('LS_EXT_') and setting.help, setting
        assert setting.parse(setting.default) == setting.default, setting


def test_a_bad_value_in_the_settings_stops_the_check_naming_each(settings):
    settings.LS_EXT_SCORING_RUNNER = 'thread'
    settings.LS_EXT_VIDEO_MAX_FRAMES = 0
    with pytest.raises(ImproperlyConfigured) as refused:
        conf.validate_all()
    message = str(refused.value)
    assert "LS_EXT_SCORING_RUNNER='thread': expected one of 'celery', 'inline'" in message
    assert 'LS_EXT_VIDEO_MAX_FRAMES=0: expected a whole number of at least 1' in message


def test_a_bad_environment_value_stops_start_up_with_its_name(tmp_path):
    started = subprocess.run(
        [str(BIN / 'python'), 'manage.py', 'check'],
        cwd=REPO,
        env=offline_env(tmp_path, LS_EXT_RETRAINING_MAX_RETRIES='four'),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert started.returncode != 0
    assert "InvalidSetting: LS_EXT_RETRAINING_MAX_RETRIES='four': expected a whole number" in started.stderr


READS_A_SETTING = re.compile(r"getattr\(settings, 'LS_EXT_|settings\.LS_EXT_")


def test_no_module_reads_an_ls_ext_setting_around_its_declaration():
    readers = [
        path.relative_to(ROOT).as_posix()
        for path in sorted(ROOT.joinpath('ls_extensions').rglob('*.py'))
        if READS_A_SETTING.search(path.read_text()) and path.name != 'compat.py'
    ]
    assert readers == [], 'read these through the Setting declared in the app conf.py'
