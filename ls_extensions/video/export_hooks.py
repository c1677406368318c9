"""The per-frame video formats inside Label Studio's own export flows: the Export dialog and snapshots.

Label Studio has no registry for export formats (its list is the SDK converter's fixed enum), so
our URLconf routes four of its export URLs to the subclasses below first. Each handles only our
format names (`VIDEO_MOT`, `VIDEO_MOT_IMAGES`, `VIDEO_YOLO`, ... see `export.chosen_formats`) and hands
everything else to Label Studio's own view (`super()`), unchanged:

| URL (under /api/projects/<id>/)        | Label Studio view        | what we add                                   |
|----------------------------------------|--------------------------|-----------------------------------------------|
| `export/formats`                       | `ExportFormatsListAPI`   | our formats, for projects with video tracking |
| `export?exportType=VIDEO_...`          | `ExportAPI`              | the export, streamed (the dialog downloads it)|
| `exports/<pk>/convert` (POST)          | `ExportConvertAPI`       | converting a snapshot into our format         |
| `exports/<pk>/download?exportType=...` | `ExportDownloadAPI`      | downloading that converted file               |

Why routing rather than patching `DataExport.get_export_formats`/`generate_export_file`: nothing of
Label Studio is modified, its formats keep going through its code, ours stream (its flow builds the
whole task JSON and the output in memory and temp dirs), and `tests/video/test_export_dialog.py` fails
if Label Studio moves these URLs, renames the views, or the dialog stops reading the list or the
`filename` header. Snapshots: Label Studio's convert view validates `export_type` against
`DataExport.get_export_formats` and its download view (community edition) converts again through
`Export.convert_file`; both would refuse our names, hence the two snapshot routes (the `EXPORT_MIXIN`
setting is not needed). A conversion is stored as a regular `ConvertedFormat`, so the snapshot list
shows it; it runs in a Celery worker and is restarted if its worker dies (`conversions.py`). The convert route also checks, for every format, that the snapshot is in the URL's project
and the user's organization: Label Studio's view looks snapshots up among all of them.
drf-spectacular documents a path by its first view, so ours carry Label Studio's documentation
(`documented_like`).
"""

from __future__ import annotations

import logging
import os

from data_export.api import ExportAPI, ExportConvertAPI, ExportDownloadAPI, ExportFormatsListAPI
from data_export.models import ConvertedFormat, Export
from django.http import FileResponse
from label_studio_sdk.converter.converter import Format
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.response import Response

from ..ids import fits
from ..parsers import PARSER_CLASSES
from . import conversions
from .api import CONTENT_TYPES, error_response, video_export_response
from .export.catalogue import FORMAT_PREFIX, chosen_formats, require_format
from .export.config import video_tracking_config
from .export.errors import NoVideoTracking, VideoExportError
from .export.options import PREDICTIONS
from .export.predictions import with_model_version
from .serializers import VideoFrameOptionsSerializer, VideoSnapshotConvertSerializer, query_data

logger = logging.getLogger(__name__)

FORMAT_TAG = 'Video frames'


def documented_like(parent_method):
    """Keep Label Studio's API documentation on a method we override.

    drf-spectacular lists only the first view routed at a path (ours), and keeps a method's
    `@extend_schema` in the method's `kwargs['schema']`; this hands the overridden method's on.
    `test_export_dialog.py` checks that Label Studio's operations still appear in the schema.
    """

    def decorate(method):
        schema = getattr(parent_method, 'kwargs', {}).get('schema')
        if schema is not None:
            method.kwargs = {'schema': schema}
        return method

    return decorate


def claims(export_type) -> bool:
    """Whether a requested `exportType` is ours to serve (known or not: an unknown VIDEO_* gets our 400)."""
    return isinstance(export_type, str) and export_type.strip().upper().startswith(FORMAT_PREFIX)


def has_video_tracking(project) -> bool:
    try:
        video_tracking_config(project)
    except NoVideoTracking:
        return False
    return True


def video_formats() -> list[dict]:
    """Our entries for Label Studio's format list, in its shape (`name`, `title`, `description`, `tags`)."""
    return [
        {
            'name': chosen.name,
            'title': f'{chosen.title} — every video frame',
            'description': chosen.description
            + ' Boxes exactly as the labeling UI interpolates them; frame count from the video file.',
            'tags': [FORMAT_TAG],
        }
        for chosen in chosen_formats()
    ]


def with_video_formats(formats: list[dict]) -> list[dict]:
    """Label Studio's list with ours after its enabled formats (the dialog preselects the first entry)."""
    enabled = [f for f in formats if not f.get('disabled')]
    return enabled + video_formats() + [f for f in formats if f.get('disabled')]


def refuse_unknown_label_studio_format(export_type: str | None) -> None:
    """Label Studio's export and download views convert with any format name they are given and fail on an
    unknown one (the SDK converter's ValueError, a 500): a 400 naming its formats instead."""
    if export_type is not None and export_type not in Format.__members__:
        known = ', '.join(Format.__members__)
        raise ValidationError({'exportType': [f'unknown export format {export_type[:100]!r}; formats: {known}']})


class VideoExportFormatsListAPI(ExportFormatsListAPI):
    @documented_like(ExportFormatsListAPI.get)
    def get(self, request, *args, **kwargs):
        response = super().get(request, *args, **kwargs)
        if response.status_code == 200 and has_video_tracking(self.get_object()):
            response.data = with_video_formats(list(response.data))
        return response


class VideoExportAPI(ExportAPI):
    """The dialog's download: `GET export?exportType=VIDEO_MOT` (with its `ids[]`, `download_all_tasks`)."""

    @documented_like(ExportAPI.get)
    def get(self, request, *args, **kwargs):
        export_type = request.GET.get('exportType') or request.GET.get('export_type')
        if not claims(export_type):
            if export_type and export_type.strip():  # Label Studio's serializer strips it and refuses a blank one
                self.get_object()  # a stranger's 404 first
                refuse_unknown_label_studio_format(export_type.strip())
            return super().get(request, *args, **kwargs)
        project = self.get_object()
        try:
            chosen = require_format(export_type)
            options = VideoFrameOptionsSerializer(data=query_data(request.GET))
            options.is_valid(raise_exception=True)
            return video_export_response(project, options.options(chosen))
        except VideoExportError as error:
            return error_response(error)


class VideoExportConvertAPI(ExportConvertAPI):
    """`POST exports/<pk>/convert {"export_type": "VIDEO_MOT", ...}`: our formats from the snapshot's JSON.

    The request is checked here (format, video tracking, options, snapshot state: 400s); the conversion
    itself runs in a Celery worker (`conversions.py`), its outcome in the snapshot list like Label Studio's.
    For every format, the snapshot must belong to the project in the URL, in the user's organization:
    Label Studio's view looks snapshots up among all (its community edition has one organization).
    """

    parser_classes = PARSER_CLASSES

    def get_queryset(self):
        project_id = self.kwargs.get('pk')
        if not fits(project_id):  # SQLite cannot even compare it (OverflowError): no such project
            return Export.objects.none()
        return Export.objects.filter(project_id=project_id, project__organization=self.request.user.active_organization)

    @documented_like(ExportConvertAPI.post)
    def post(self, request, *args, **kwargs):
        body = request.data if isinstance(request.data, dict) else {}  # a list or a number: Label Studio's 400
        if not claims(body.get('export_type')):
            return super().post(request, *args, **kwargs)
        snapshot = self.get_object()
        try:
            chosen = require_format(request.data.get('export_type'))
            video_tracking_config(snapshot.project)
        except VideoExportError as error:
            return error_response(error)
        serializer = VideoSnapshotConvertSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        chosen_options = serializer.options(chosen)  # combinations the format refuses: 400 now, not a failed run
        if snapshot.status != Export.Status.COMPLETED:
            raise ValidationError(f'Export snapshot {snapshot.id} is {snapshot.status}, not completed')
        options = {
            key: value
            for key, value in serializer.validated_data.items()
            if key not in ('export_type', 'download_resources')
        }
        try:
            options.update(_resolved_version(snapshot.project, chosen_options))
            converted = conversions.request_conversion(snapshot, chosen.name, options, request.user)
        except VideoExportError as error:
            return error_response(error)
        return Response({'export_type': chosen.name, 'converted_format': converted.id})


def _resolved_version(project, options) -> dict:
    """A predictions conversion's model version, fixed when it is asked for: a version without predictions is a
    400 then, not a failed conversion, and a worker that runs later exports the version the user saw as current."""
    if options.source != PREDICTIONS:
        return {}
    return {'model_version': with_model_version(project, options).model_version}


class VideoExportDownloadAPI(ExportDownloadAPI):
    """`GET exports/<pk>/download?exportType=VIDEO_MOT`: the converted file (Label Studio's would convert again)."""

    @documented_like(ExportDownloadAPI.get)
    def get(self, request, *args, **kwargs):
        export_type = request.GET.get('exportType')
        if not claims(export_type):
            if export_type is not None:
                self.get_object()  # a stranger's 404 first
                refuse_unknown_label_studio_format(export_type)
            return super().get(request, *args, **kwargs)
        snapshot = self.get_object()
        try:
            export_type = require_format(export_type).name
        except VideoExportError as error:
            return error_response(error)
        converted = (
            snapshot.converted_formats.filter(export_type=export_type, status=ConvertedFormat.Status.COMPLETED)
            .order_by('-id')
            .first()
        )
        if converted is None or not converted.file:
            raise NotFound(f'{export_type} is not converted yet: POST exports/{snapshot.id}/convert first')
        name = os.path.basename(converted.file.name)
        ext = name.rsplit('.', 1)[-1]
        response = FileResponse(
            converted.file.open('rb'),
            as_attachment=True,
            filename=name,
            content_type=CONTENT_TYPES.get(ext, 'application/octet-stream'),
        )
        response['filename'] = name
        return response
