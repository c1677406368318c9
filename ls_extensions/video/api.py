"""`GET /api/projects/<id>/export/video-frames`: the per-frame video export, streamed.

The view is thin: options from the query string, then `video_export_response`, which the Export dialog
integration (`export_hooks.py`) shares. Errors that can be known before writing are answered with a
4xx and a message; everything else streams.
"""

from __future__ import annotations

import json
import logging

from core.permissions import all_permissions
from django.http import StreamingHttpResponse
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.response import Response
from rest_framework.views import APIView

from ls_extensions import schema
from ls_extensions.permissions import ProjectMemberAPIMixin

from .export.building import build_export, warnings_of
from .export.catalogue import require_format
from .export.config import video_tracking_config
from .export.errors import VideoExportError
from .export.options import PREDICTIONS, ExportOptions
from .export.predictions import with_model_version
from .export.project_tasks import iter_project_tasks
from .export.streaming import export_file_name, stream_export
from .serializers import VideoFramesQuerySerializer, query_data

logger = logging.getLogger(__name__)

CONTENT_TYPES = {'zip': 'application/zip', 'json': 'application/json', 'csv': 'text/csv'}
WARNINGS_HEADER = 'X-Export-Warnings'  # number of per-task warnings (skipped tracks, frame count notes)
WARNING_MESSAGES_HEADER = 'X-Export-Warning-Messages'  # the first of them, JSON (ASCII)
MAX_HEADER_CHARS = 4000
SOURCE_HEADER = 'X-Export-Source'  # annotations or predictions
MODEL_VERSION_HEADER = 'X-Export-Model-Version'  # predictions: the model version exported, JSON (ASCII)
MAX_VERSION_CHARS = 1000  # of a model version in that header (Label Studio stores versions of any length)


class FormatParamIsTheExportFormat(DefaultContentNegotiation):
    """`?format=` names the export format here, not a DRF renderer (DRF's `URL_FORMAT_OVERRIDE`)."""

    class settings:
        URL_FORMAT_OVERRIDE = None


def error_response(error: VideoExportError) -> Response:
    return Response({'detail': error.message, 'status_code': error.status, **error.extra}, status=error.status)


def video_export_response(project, options: ExportOptions) -> StreamingHttpResponse:
    """Stream the export of `project`'s tasks; raises `VideoExportError` before anything is sent.

    Headers: `Content-Disposition` and `filename` (the Export dialog saves under that name),
    `X-Export-Source` and, for predictions, `X-Export-Model-Version`, `X-Export-Warnings` (count),
    `X-Export-Warning-Messages` (the first ones), `X-Export-Frame-Count-Sources` (how many videos had their
    frame count from the file, from `framesCount`, or from the last keyframe). Zips also carry every warning in
    `summary.json`.
    """
    video_tracking_config(project)  # 400 before reading any task
    options = with_model_version(project, options)  # predictions: 400 when the version has none
    exporter = options.exporter
    export = build_export(project, iter_project_tasks(project, options), options)
    warnings = warnings_of(export)
    response = StreamingHttpResponse(
        stream_export(exporter, export), content_type=CONTENT_TYPES.get(exporter.ext, 'application/octet-stream')
    )
    filename = export_file_name(project, exporter)
    response['Content-Disposition'] = f'attachment; filename="{filename}"'
    response['filename'] = filename
    response['X-Export-Format'] = exporter.name
    response[SOURCE_HEADER] = options.source
    if options.source == PREDICTIONS:
        response[MODEL_VERSION_HEADER] = json.dumps(options.model_version[:MAX_VERSION_CHARS])  # ASCII: header-safe
    response[WARNINGS_HEADER] = str(len(warnings))
    if warnings:
        shown = []
        for message in warnings:
            if len(json.dumps([*shown, message])) > MAX_HEADER_CHARS:
                break
            shown.append(message)
        response[WARNING_MESSAGES_HEADER] = json.dumps(shown)  # ensure_ascii: header-safe
    sources: dict[str, int] = {}
    for track_set in export.track_sets:
        sources[track_set.frame_count_source] = sources.get(track_set.frame_count_source, 0) + 1
    response['X-Export-Frame-Count-Sources'] = ', '.join(f'{key}={value}' for key, value in sorted(sources.items()))
    response['X-Export-Tasks'] = str(len(export.track_sets))
    return response


@extend_schema(
    tags=['Export'],
    summary='Per-frame video export',
    description=(
        'Export video object tracking (`videorectangle`) with a box on every frame where the labeling UI shows '
        'one, interpolated exactly as the UI does. Formats: Label Studio JSON and CSV (percents), MOT Challenge, '
        'YOLO and YOLO-OBB (frame images extracted from the videos + labels + data.yaml), CVAT for video 1.1 XML, '
        "COCO-video. The frame count is the video file's real count where the file can be read, else the "
        "annotation's `framesCount`. Malformed sequences are skipped with a per-task warning, counted in the "
        f'`{WARNINGS_HEADER}` header and listed in `summary.json` (zips). `source=predictions` exports the '
        "predictions of a model version (`model_version`, default the project's current one) instead of the "
        "annotations, through the same frame rule; MOT then writes a tracker's output (`<sequence>.txt`, the track "
        "score as `conf`) to score the model against the annotations' MOT export; tasks without such a prediction "
        f'are skipped and counted in `{WARNINGS_HEADER}`. Errors: 400 for a project without video tracking, an '
        'unknown format (lists the valid ones) or source, or a model version without predictions (lists those '
        "with some); 422 when a format needs pixels or frame images and a task's video cannot be read (names the "
        'tasks). The response is streamed.'
    ),
    operation_id='api_projects_export_video_frames',
    parameters=[schema.PROJECT_PK, VideoFramesQuerySerializer],
    responses={
        (200, 'application/zip'): OpenApiResponse(
            description='Export file (zip for MOT, YOLO, YOLO-OBB, CVAT; JSON or CSV otherwise)',
            response={'type': 'string', 'format': 'binary'},
        ),
        400: OpenApiResponse(
            description='No video tracking in the project, unknown format or source, bad parameters, or no predictions '
            'of the model version (source=predictions)'
        ),
        422: OpenApiResponse(description="A task's video file or pixel size is needed and missing"),
        **schema.errors(),
    },
)
class VideoFramesExportAPI(ProjectMemberAPIMixin, APIView):
    """Per-frame export of a project's video tracks; only members of the project's organization."""

    permission_required = all_permissions.projects_change
    active_organization_only = True  # as Label Studio's export: the project of the organization in use
    content_negotiation_class = FormatParamIsTheExportFormat

    def get(self, request, *args, **kwargs):
        project = self.get_project()
        try:
            data = query_data(request.GET)
            chosen = require_format(data.get('format'))
            query = VideoFramesQuerySerializer(data=data)
            query.is_valid(raise_exception=True)
            return video_export_response(project, query.options(chosen))
        except VideoExportError as error:
            return error_response(error)
