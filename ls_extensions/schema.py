"""Pieces of our endpoints' API docs (drf-spectacular ``extend_schema``), shared by the apps' ``api.py``.

Label Studio serves the schema at ``/docs/api/schema/`` (``/docs/api/`` shows it); its
``tests/test_docs.py`` fails on an operation left with drf-spectacular's default tag (``api``), and
``tests/test_api_schema.py`` checks that every method of every route of ours is there.
"""

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema

PROJECT_PK = OpenApiParameter(
    name='id',  # the URL's ``pk``: drf-spectacular names it ``id`` (SCHEMA_COERCE_PATH_PK), as Label Studio's paths
    type=OpenApiTypes.INT,
    location=OpenApiParameter.PATH,
    description='A unique integer value identifying this project.',
)

NOT_SIGNED_IN = OpenApiResponse(description='Not signed in (no session or token)')
NOT_A_MEMBER = OpenApiResponse(description="No such project, or the user is not a member of the project's organization")
INVALID = OpenApiResponse(description='Invalid fields: the answer names each field and what is wrong')


def errors(*codes):
    """``responses`` entries for the usual refusals of a project endpoint: 401, 404 and the ``codes`` given."""
    known = {400: INVALID}
    return {401: NOT_SIGNED_IN, 404: NOT_A_MEMBER, **{code: known[code] for code in codes}}


def project_operation(tags, summary, description, response, *, status=200, request=None, invalid=False, query=None):
    """``extend_schema`` of an operation on one project (``<int:pk>``): its answer, then the refusals
    (401, 404; 400 too when the body or the query, a serializer given as ``query``, is validated: ``invalid``)."""
    return extend_schema(
        tags=tags,
        summary=summary,
        description=description,
        parameters=[PROJECT_PK, *([query] if query else [])],
        request=request,
        responses={status: response, **errors(*([400] if invalid else []))},
    )
