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
shows it. The convert route also checks, for every format, that the snapshot is in the URL's project
and the user's organization: Label Studio's view looks snapshots up among all of them.
drf-spectacular documents a path by its first view, so ours carry Label Studio's documentation
(`documented_like`).
"""

from __future__ import annotations

import logging
import os
import tempfile
import traceback

import ijson
from core.redis import start_job_async_or_sync
from data_export.api import ExportAPI, ExportConvertAPI, ExportDownloadAPI, ExportFormatsListAPI
from data_export.models import ConvertedFormat, Export
from django.conf import settings
from django.core.files import File
from django.db import transaction
from django.http import FileResponse
from django.utils import timezone
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.response import Response

from .api import CONTENT_TYPES, error_response, video_export_response
from .export import (
    FORMAT_PREFIX,
    ExportOptions,
    NoVideoTracking,
    VideoExportError,
    build_export,
    chosen_formats,
    export_file_name,
    require_format,
    video_tracking_config,
    write_export_file,
)
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

    For every format, the snapshot must belong to the project in the URL, in the user's organization:
    Label Studio's view looks snapshots up among all (its community edition has one organization).
    """

    def get_queryset(self):
        return Export.objects.filter(
            project_id=self.kwargs.get('pk'), project__organization=self.request.user.active_organization
        )

    @documented_like(ExportConvertAPI.post)
    def post(self, request, *args, **kwargs):
        if not claims(request.data.get('export_type')):
            return super().post(request, *args, **kwargs)
        snapshot = self.get_object()
        try:
            chosen = require_format(request.data.get('export_type'))
            video_tracking_config(snapshot.project)
        except VideoExportError as error:
            return error_response(error)
        serializer = VideoSnapshotConvertSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        if snapshot.status != Export.Status.COMPLETED:
            raise ValidationError(f'Export snapshot {snapshot.id} is {snapshot.status}, not completed')
        export_type = chosen.name
        converted, created = ConvertedFormat.objects.exclude(status=ConvertedFormat.Status.FAILED).get_or_create(
            export=snapshot,
            export_type=export_type,
            defaults={
                'project': snapshot.project,
                'organization': snapshot.project.organization,
                'created_by': request.user,
            },
        )
        if not created:
            raise ValidationError(f'Conversion to {export_type} already started')
        options = {
            key: value
            for key, value in serializer.validated_data.items()
            if key not in ('export_type', 'download_resources')
        }
        try:
            start_job_async_or_sync(convert_snapshot, converted.id, options)
        except VideoExportError as error:  # run inline (no Redis) and refused: the conversion is marked failed
            return error_response(error)
        return Response({'export_type': export_type, 'converted_format': converted.id})


class VideoExportDownloadAPI(ExportDownloadAPI):
    """`GET exports/<pk>/download?exportType=VIDEO_MOT`: the converted file (Label Studio's would convert again)."""

    @documented_like(ExportDownloadAPI.get)
    def get(self, request, *args, **kwargs):
        export_type = request.GET.get('exportType')
        if not claims(export_type):
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


def snapshot_tasks(file, options: ExportOptions):
    """Tasks of a snapshot's JSON file, read incrementally, filtered like the API's."""
    wanted = set(options.task_ids) if options.task_ids is not None else None
    for task in ijson.items(file, 'item', use_float=True):
        if wanted is not None and task.get('id') not in wanted:
            continue
        if options.only_annotated and not task.get('annotations'):
            continue
        yield task


def convert_snapshot(converted_format_id: int, options: dict) -> None:
    """Job: write our format from a snapshot into its `ConvertedFormat` (inline, or on a worker with Redis).

    A refusal (`VideoExportError`) or crash marks the conversion failed with the reason and is raised again.
    """
    with transaction.atomic():
        converted = ConvertedFormat.objects.select_for_update().get(id=converted_format_id)
        if converted.status != ConvertedFormat.Status.CREATED:
            logger.error('video conversion %s already started', converted_format_id)
            return
        converted.status = ConvertedFormat.Status.IN_PROGRESS
        converted.save(update_fields=['status'])
    snapshot = converted.export
    project = snapshot.project
    try:
        chosen = require_format(converted.export_type)
        exporter = chosen.exporter
        serializer = VideoFrameOptionsSerializer(data=options)
        serializer.is_valid(raise_exception=True)
        export_options = serializer.options(chosen)
        with snapshot.file.open('rb') as source:
            export = build_export(project, snapshot_tasks(source, export_options), export_options)
        name = export_file_name(project, exporter)
        with tempfile.NamedTemporaryFile(suffix=f'.{exporter.ext}', dir=settings.FILE_UPLOAD_TEMP_DIR) as out:
            write_export_file(exporter, export, out)
            out.seek(0)
            converted.file.save(f'{project.id}/{name}', File(out, name=name), save=False)
        converted.status = ConvertedFormat.Status.COMPLETED
        converted.traceback = None
    except Exception as error:
        converted.status = ConvertedFormat.Status.FAILED
        converted.traceback = error.message if isinstance(error, VideoExportError) else traceback.format_exc()
        raise
    finally:
        converted.finished_at = timezone.now()
        converted.save(update_fields=['file', 'status', 'traceback', 'finished_at'])
