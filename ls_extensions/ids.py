"""Ids from a request that a database integer column can hold, checked before a query compares them.

SQLite raises ``OverflowError`` for an integer past 64 bits in a query (a 500), and Django's guard for
out-of-range lookups does not cover foreign keys or ``__in``. Two places take such ids from a user:
a URL's ``<int:pk>`` (any number of digits) and the Data Manager's ``selectedItems``, which Label Studio
turns into the action's queryset as sent. (Found by ``tests/test_fuzz_endpoints.py``.)
"""

import json

MIN_ID, MAX_ID = -(2**63), 2**63 - 1


def fits(value) -> bool:
    """True for an int a 64-bit integer column can be compared with."""
    return isinstance(value, int) and not isinstance(value, bool) and MIN_ID <= value <= MAX_ID


def selection_refusal(kwargs):
    """A Data Manager action's 400 answer when ``selectedItems`` lists an id no integer column holds, else None.

    Only the range is checked; everything else about the selection is Label Studio's to parse.
    """
    data = getattr(kwargs.get('request'), 'data', None)
    selected = data.get('selectedItems') if hasattr(data, 'get') else None
    if isinstance(selected, str):  # Label Studio also takes it JSON-encoded
        try:
            selected = json.loads(selected)
        except ValueError:
            return None
    if not isinstance(selected, dict):
        return None
    for key in ('included', 'excluded'):
        ids = selected.get(key)
        if not isinstance(ids, list):
            continue
        wrong = next((i for i in ids if isinstance(i, int) and not fits(i)), None)
        if wrong is not None:
            shown = str(wrong)[:40]
            return {
                'response_code': 400,
                'detail': f'selectedItems.{key}: task ids are 64-bit integers, {shown} is out of range',
            }
    return None
