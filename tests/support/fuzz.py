"""Hypothesis strategies for hostile request input, shared by the endpoint and the model-server fuzz tests.

Pure (no Django): strings, numbers, id lists, JSON values and raw bodies that broke or could break a
request handler -- NUL characters (``%00`` once decoded), numbers past every integer column, NaN/inf
spelled out, unicode digits, id lists past SQLite's variable limit, deep nesting, bytes that are not JSON.
"""

from __future__ import annotations

import json

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

SPECIAL_STRINGS = [
    '',
    ' ',
    '0',
    '-1',
    '-0',
    '1.5',
    '1e309',
    'NaN',
    'nan',
    'inf',
    '-Infinity',
    '0x1f',
    '+5',
    ' 7 ',
    '\u0663',  # ARABIC-INDIC DIGIT THREE: int() accepts it
    '\u00bd',
    str(2**31),
    str(2**63 - 1),
    str(2**63),
    str(-(2**63) - 1),
    '9' * 40,
    '\x00',
    '%00',
    'VIDEO_JSON\x00',
    'a\x00b',
    'null',
    'true',
    '[]',
    '{}',
    "'; DROP TABLE tasks; --",
    '../../../../etc/passwd',
    '<script>alert(1)</script>',
    '\ud7ff\ufeff\u202e',
    '😀' * 3,
]

BIG_NUMBERS = [0, -1, 1, 2**31 - 1, 2**31, 2**53 + 1, 2**63 - 1, 2**63, -(2**63) - 1, 10**30, -(10**30)]
ID_LIST_LENGTHS = [1, 3, 999, 1000, 40_000]  # 40 000: past SQLite's 32 766 variables per statement
ID_LIST_STARTS = [-3, 0, 1, 2**40, 10**25]

numbers = st.one_of(
    st.integers(),
    st.sampled_from(BIG_NUMBERS),
    st.floats(),  # NaN and infinities included
)


def id_list(length: int, start: int) -> list[int]:
    return list(range(start, start + length))


id_lists = st.builds(id_list, st.sampled_from(ID_LIST_LENGTHS), st.sampled_from(ID_LIST_STARTS))
long_strings = st.builds(lambda n, char: char * n, st.sampled_from([1000, 20_000, 200_000]), st.sampled_from('aä\x00,'))

# one query-string value
query_values = st.one_of(
    st.sampled_from(SPECIAL_STRINGS),
    numbers.map(str),
    st.text(max_size=30),
    id_lists.map(lambda ids: ','.join(map(str, ids))),
    long_strings,
)
# a query value or a repeated parameter (``ids=1&ids=2``)
query_params = st.one_of(query_values, st.lists(query_values, min_size=2, max_size=4), id_lists.map(lambda ids: ids))

json_leaves = st.one_of(
    st.none(),
    st.booleans(),
    numbers,
    st.text(max_size=20),
    st.sampled_from(SPECIAL_STRINGS),
)
json_values = st.recursive(
    json_leaves,
    lambda children: st.one_of(
        st.lists(children, max_size=4), st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)
# what a known field of a body gets: any JSON, an id list, a long string
field_values = st.one_of(json_values, id_lists, long_strings)

RAW_BODIES = [
    b'{',
    b'{"a": ',
    b'nul',
    b'\x00',
    b'\xff\xfe{\x00}\x00',
    b'{"a": 1}{"b": 2}',
    b'[' * 100_000 + b']' * 100_000,  # deeper than Python's recursion limit
    b'{"a":' * 50_000 + b'1' + b'}' * 50_000,
    b'{"a": NaN, "b": Infinity}',
    b'{"a": 1e999999}',
    b'"' + b'x' * 1_000_000 + b'"',
]
raw_bodies = st.sampled_from(RAW_BODIES)


def dump(value) -> bytes:
    """JSON as a lenient client writes it: NaN and Infinity as bare words, non-ASCII as UTF-8."""
    return json.dumps(value, allow_nan=True, ensure_ascii=False).encode('utf-8', 'surrogatepass')


def objects_with(keys: list[str]):
    """JSON objects whose keys are mostly the fields the handlers read, with hostile values."""
    key = st.one_of(st.sampled_from(sorted(keys)), st.text(max_size=12))
    return st.dictionaries(key, field_values, max_size=5)


def bodies(keys: list[str], base: dict | None = None):
    """Raw request bodies: the base object with hostile fields, any JSON value, or bytes that are not JSON."""
    base = base or {}
    merged = st.tuples(st.booleans(), objects_with(keys)).map(lambda t: {**base, **t[1]} if t[0] else t[1])
    return st.one_of(merged.map(dump), json_values.map(dump), raw_bodies)


def queries(keys: list[str], base: dict | None = None):
    """Query dicts ({name: value or list of values}): the base query with hostile parameters, or those alone."""
    base = base or {}
    key = st.one_of(st.sampled_from(sorted(keys)), st.text(min_size=1, max_size=12))
    fuzzed = st.dictionaries(key, query_params, max_size=4)
    return st.tuples(st.booleans(), fuzzed).map(lambda t: {**base, **t[1]} if t[0] else t[1])


def fuzz_settings(max_examples):
    """Hypothesis settings for the fuzz tests: deterministic for CI (derandomized, no example database)."""
    return settings(
        max_examples=max_examples,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
    )
