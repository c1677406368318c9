"""Request parsers for our API views: DRF's, except that JSON nested too deeply is a 400, not a 500.

DRF's ``JSONParser`` answers a ``ValueError`` with a 400 but lets the ``RecursionError`` of a body such as
``[[[[...]]]]`` (a few kilobytes past Python's recursion limit) through, which is a 500. Our views that
read ``request.data`` set ``parser_classes = PARSER_CLASSES``; Label Studio's own views keep DRF's.
(Found by ``tests/test_fuzz_endpoints.py``.)
"""

from rest_framework.exceptions import ParseError
from rest_framework.parsers import FormParser, JSONParser, MultiPartParser


class BoundedJSONParser(JSONParser):
    def parse(self, stream, media_type=None, parser_context=None):
        try:
            return super().parse(stream, media_type, parser_context)
        except RecursionError:
            raise ParseError('JSON parse error - the body is nested too deeply') from None


PARSER_CLASSES = [BoundedJSONParser, FormParser, MultiPartParser]
