"""Everything the model server takes from a request, checked in one place.

A bad request (malformed ``Content-Length``, a body shorter than announced or over the limit,
something that is not a JSON object, a field of the wrong type) is an ``HttpError`` with a 4xx
status and a message naming what was wrong; handlers only see a ``Body`` whose typed getters
raise the same way. So no hostile input reaches a handler's own code as an exception (a 500).
"""

import json
import re

DEFAULT_MAX_BODY = 64 * 1024 * 1024  # a "Retrieve predictions" batch of thousands of tasks is a few MB
_DIGITS = re.compile(r'[0-9]+')  # ASCII only: int() would also accept '+5', '1_0', '٣'


class HttpError(Exception):
    def __init__(self, status, message):
        super().__init__(message)
        self.status = status
        self.message = message


def content_length(environ, limit):
    """The announced body size: 0 when absent; 400 when not a plain decimal, 413 over ``limit``."""
    if environ.get('HTTP_TRANSFER_ENCODING'):
        raise HttpError(411, 'send the body with a Content-Length (chunked transfer encoding is not supported)')
    raw = environ.get('CONTENT_LENGTH')
    if raw is None or raw == '':
        return 0
    raw = str(raw).strip()
    if not _DIGITS.fullmatch(raw):
        raise HttpError(400, f'Content-Length must be a non-negative decimal number of bytes, not {raw[:40]!r}')
    digits = raw.lstrip('0') or '0'
    if len(digits) > 18 or int(digits) > limit:  # no int() of a thousand digits
        raise HttpError(413, f'request body of {digits[:40]} bytes is over the limit of {limit} bytes')
    return int(digits)


def read_body(environ, limit=DEFAULT_MAX_BODY):
    """The request's JSON object (``{}`` for no body) as a ``Body``; HttpError for anything else."""
    length = content_length(environ, limit)
    raw = b''
    if length:
        try:
            raw = environ['wsgi.input'].read(length)
        except (OSError, ValueError):  # the socket timed out or closed mid-body
            raise HttpError(408, f'the request body did not arrive ({length} bytes announced)') from None
        if len(raw) < length:
            raise HttpError(400, f'request body is truncated: {len(raw)} of {length} bytes announced')
    if not raw.strip():
        return Body({})
    try:
        value = json.loads(raw)
    except (ValueError, RecursionError):  # RecursionError: thousands of nested brackets
        raise HttpError(400, 'request body is not valid JSON (UTF-8)') from None
    if not isinstance(value, dict):
        raise HttpError(400, f'request body must be a JSON object, not {_kind(value)}')
    return Body(value)


def _kind(value):
    return {
        dict: 'an object',
        list: 'a list',
        str: 'a string',
        bool: 'a boolean',
        int: 'a number',
        float: 'a number',
        type(None): 'null',
    }.get(type(value), type(value).__name__)


class Body(dict):
    """A request's JSON object with getters that check the type (400 naming the field otherwise)."""

    def _wrong(self, key, expected, value):
        raise HttpError(400, f'"{key}" must be {expected}, not {_kind(value)}')

    def text(self, key, *keys):
        """A string or None (absent/null); the first present of ``key, *keys``."""
        for name in (key, *keys):
            value = self.get(name)
            if value is None:
                continue
            if not isinstance(value, str):
                self._wrong(name, 'a string', value)
            if '\x00' in value:
                raise HttpError(400, f'"{name}" contains a NUL character')
            if value:
                return value
        return None

    def scalar(self, key):
        """A string, a number or None: ids (``"3.1700000000"``, ``3``, ``"train-1-2"``)."""
        value = self.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, (str, int, float))):
            self._wrong(key, 'a string or a number', value)
        return value

    def objects(self, key):
        """A list of JSON objects (``[]`` when absent/null)."""
        value = self.get(key)
        if value is None:
            return []
        if not isinstance(value, list):
            self._wrong(key, 'a list of objects', value)
        for i, item in enumerate(value):
            if not isinstance(item, dict):
                self._wrong(f'{key}[{i}]', 'an object', item)
        return [Body(item) for item in value]

    def object(self, key):
        """A JSON object (``{}`` when absent/null)."""
        value = self.get(key)
        if value is None:
            return Body({})
        if not isinstance(value, dict):
            self._wrong(key, 'an object', value)
        return Body(value)

    def object_or_id(self, key):
        """An object, or an id (Label Studio sends a project as ``{"id": ...}`` or ``"<id>.<ts>"``)."""
        value = self.get(key)
        if isinstance(value, dict):
            return Body(value)
        return self.scalar(key)


def tasks_of(body, key):
    """Tasks as Label Studio sends them: objects whose ``data`` is an object and ``annotations`` a list of them."""
    tasks = body.objects(key)
    for i, task in enumerate(tasks):
        try:
            task.object('data')
            for annotation in task.objects('annotations'):
                annotation.objects('result')
        except HttpError as exc:
            raise HttpError(exc.status, f'{key}[{i}]: {exc.message}') from None
    return tasks
