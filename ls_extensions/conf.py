"""Our settings, each declared once (name, type, default, bounds) and checked before anything uses it.

Every app of ours declares its ``LS_EXT_*`` settings in its own ``conf.py`` as :class:`Setting` and
reads them with ``Setting.get()``: the value in ``django.conf.settings`` (so tests may override it),
else the default. The overlay takes the operator's values from the environment with
:meth:`Setting.from_env`, and each app's ``ready()`` calls :func:`validate` on its declarations: a
value that is not a number, is out of bounds, or is not one of the choices stops start-up with its
name (:class:`InvalidSetting` from the environment, ``ImproperlyConfigured`` from ``ready()``),
instead of failing later inside a request or a worker.

Settings of the ``ls_extensions`` app itself (shared by every app) are declared at the end.
"""

from __future__ import annotations

import importlib
import math
import os
from dataclasses import dataclass

from django.core.exceptions import ImproperlyConfigured


class InvalidSetting(ValueError):
    """A setting's value it cannot take; the message names the setting and what it takes.

    Not ``ImproperlyConfigured``: ``manage.py`` swallows that one while it imports the settings module
    (and then fails on something else), so an operator's bad environment value would go unnamed.
    """


TRUE_WORDS = {'1', 'true', 'yes', 'on'}
FALSE_WORDS = {'0', 'false', 'no', 'off'}


@dataclass(frozen=True)
class Setting:
    name: str
    kind: type  # float, int, bool, str, or tuple (of words)
    default: object
    minimum: float | None = None
    choices: tuple = ()
    help: str = ''

    def parse(self, raw):
        """``raw`` (a settings value, or the environment's text) as ``kind``; InvalidSetting names the setting."""
        try:
            value = self._convert(raw)
        except (TypeError, ValueError):
            raise InvalidSetting(f'{self.name}={raw!r}: {self._expected()}') from None
        if self.minimum is not None and value < self.minimum:
            raise InvalidSetting(f'{self.name}={raw!r}: {self._expected()}')
        if self.choices and value not in self.choices:
            raise InvalidSetting(f'{self.name}={raw!r}: {self._expected()}')
        return value

    def from_env(self, environ=None):
        """The operator's value from the environment (unset or empty: the default), checked."""
        raw = (os.environ if environ is None else environ).get(self.name, '')
        return self.default if raw.strip() == '' else self.parse(raw.strip())

    def get(self):
        from django.conf import settings

        return self.parse(getattr(settings, self.name, self.default))

    def _convert(self, raw):
        if self.kind is bool:
            if isinstance(raw, bool):
                return raw
            word = str(raw).strip().lower()
            if word in TRUE_WORDS | FALSE_WORDS:
                return word in TRUE_WORDS
            raise ValueError(raw)
        if self.kind is tuple:  # a list of words: comma- or space-separated text, or a sequence of strings
            words = str(raw).replace(',', ' ').split() if isinstance(raw, str) else list(raw)
            if not all(isinstance(word, str) for word in words):
                raise TypeError(raw)
            return tuple(words)
        if self.kind in (int, float):
            if isinstance(raw, bool):
                raise TypeError(raw)
            value = self.kind(raw)
            if not math.isfinite(value):
                raise ValueError(raw)
            return value
        return self.kind(raw)

    def _expected(self):
        if self.choices:
            return 'expected one of ' + ', '.join(map(repr, self.choices))
        what = {bool: 'true or false', int: 'a whole number', float: 'a number', tuple: 'a list of words'}.get(
            self.kind, self.kind.__name__
        )
        return f'expected {what}' + ('' if self.minimum is None else f' of at least {self.minimum:g}')


def validate(*declared):
    """Every declared setting readable and in bounds, or one ImproperlyConfigured listing each that is not."""
    problems = []
    for setting in declared:
        try:
            setting.get()
        except InvalidSetting as exc:
            problems.append(str(exc))
    if problems:
        raise ImproperlyConfigured('invalid ls_extensions settings: ' + '; '.join(problems))


def declared_in(module):
    """The :class:`Setting` declarations of a ``conf`` module, in the order written."""
    return tuple(value for value in vars(module).values() if isinstance(value, Setting))


APP_CONFS = (
    'ls_extensions.conf',
    'ls_extensions.ml_backend.conf',
    'ls_extensions.retraining.conf',
    'ls_extensions.scoring.conf',
    'ls_extensions.video.conf',
)


def validate_all():
    """Every app's declared settings (``APP_CONFS``), checked at start-up by ``LsExtensionsConfig.ready``."""
    validate(*(setting for name in APP_CONFS for setting in declared_in(importlib.import_module(name))))


PUBLISH_IN_BACKGROUND = Setting(
    'LS_EXT_PUBLISH_IN_BACKGROUND',
    bool,
    True,
    help='publish Celery messages from a background thread (False: in the caller, as in-process tests need)',
)
