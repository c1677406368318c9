"""Request parameters of the per-frame video export (query string of the API, body of a snapshot conversion)."""

from __future__ import annotations

from django.http import QueryDict
from rest_framework import serializers

from . import limits
from .export.catalogue import OPTIONAL_IMAGES, ChosenFormat, chosen_formats, format_names, require_format
from .export.options import ANNOTATIONS, PREDICTIONS, SOURCES, ExportOptions
from .formats import list_exporters

LIST_FIELDS = ('ids', 'labels')


def _format_help() -> str:
    names = ', '.join(f'`{e.name}` ({e.title})' for e in list_exporters())
    dialog = ', '.join(f'`{f.name}`' for f in chosen_formats())
    return f"Export format: {names}. The Export dialog's names work too: {dialog}."


class VideoFrameOptionsSerializer(serializers.Serializer):
    """Filters and fallbacks shared by the API endpoint and snapshot conversions."""

    ids = serializers.ListField(
        child=serializers.IntegerField(min_value=1, max_value=limits.MAX_TASK_ID),
        required=False,
        max_length=limits.MAX_IDS,
        help_text=f'Only these task ids (repeat the parameter or separate ids with commas); at most {limits.MAX_IDS}.',
    )
    labels = serializers.ListField(
        child=serializers.CharField(max_length=1000),
        required=False,
        max_length=10_000,
        help_text='Only tracks with these labels (repeat or separate with commas); class ids follow the labeling '
        'config order of the chosen labels.',
    )
    frame_stride = serializers.IntegerField(
        min_value=1,
        default=1,
        help_text='Export every n-th frame: frames 1, 1 + n, 1 + 2n, ... (frame numbers are kept); at most '
        f'{limits.MAX_FRAMES_SETTING}.',
    )
    width = serializers.IntegerField(
        min_value=1,
        max_value=limits.MAX_SIDE,
        required=False,
        help_text='Video width in pixels for videos whose file cannot be read (pixel formats need it).',
    )
    height = serializers.IntegerField(
        min_value=1, max_value=limits.MAX_SIDE, required=False, help_text='Video height in pixels, with width.'
    )
    download_all_tasks = serializers.BooleanField(
        default=False,
        help_text='Include tasks without annotations (YOLO then writes their frames as background images); with '
        'source=predictions, tasks without a prediction of the version are exported without tracks, not skipped.',
    )
    images = serializers.BooleanField(
        default=False,
        help_text='MOT: also write the frame images, img1/<frame>.jpg, extracted from the video (UI frame f is '
        'decoded frame f - 1). YOLO and YOLO-OBB always include them.',
    )

    source = serializers.ChoiceField(
        choices=list(SOURCES),
        default=ANNOTATIONS,
        error_messages={'invalid_choice': 'unknown source "{input}": give annotations (the default) or predictions'},
        help_text="Whose tracks to export: `annotations` (the ground truth, default) or `predictions` (a model's, "
        "of `model_version`; with MOT as a tracker's output, the track score as `conf`). A task without a "
        'prediction of that version is skipped and listed as skipped (unless download_all_tasks).',
    )
    model_version = serializers.CharField(
        required=False,
        allow_blank=True,
        trim_whitespace=False,
        max_length=4096,
        help_text="With source=predictions: the model version whose predictions to export; default the project's "
        "model version when predictions carry it, else the newest prediction's. A version without predictions is "
        'a 400 listing the versions that have some.',
    )
    mot_origin = serializers.ChoiceField(
        choices=[0, 1],
        default=1,
        help_text="MOT: the first pixel's position, 1 as MOT Challenge and motmetrics read it (default), or 0 as "
        "datumaro and CVAT's MOT import read it (they take the numbers as written).",
    )

    def validate_frame_stride(self, value):
        most = limits.max_frames()
        if value > most:
            raise serializers.ValidationError(
                f'frame_stride {value} is more than {limits.MAX_FRAMES_SETTING} = {most} (the most frames a video '
                'may export): it would export only frame 1'
            )
        return value

    def validate(self, attrs):
        if ('width' in attrs) != ('height' in attrs):
            raise serializers.ValidationError('give both width and height, or neither')
        return attrs

    def options(self, chosen: ChosenFormat) -> ExportOptions:
        """The options for a format as asked for; its name's defaults apply (`VIDEO_MOT_IMAGES`: images)."""
        data = {**self.validated_data, **chosen.defaults}
        exporter = chosen.exporter
        if data['images'] and not (exporter.needs_images or exporter.name in OPTIONAL_IMAGES):
            raise serializers.ValidationError({'images': f'{exporter.name} has no frame images'})
        predicted = data['source'] == PREDICTIONS
        if predicted and data['images'] and not exporter.needs_images:
            tracker = f"{exporter.name} of predictions is a tracker's output"
            raise serializers.ValidationError(
                {'images': [f'{tracker}: frame images come with the annotations export (VIDEO_MOT_IMAGES)']}
            )
        if not predicted and 'model_version' in data:
            raise serializers.ValidationError({'model_version': ['a model version is for source=predictions']})
        return ExportOptions(
            exporter=exporter,
            images=data['images'],
            task_ids=data.get('ids'),
            labels=data.get('labels'),
            frame_stride=data['frame_stride'],
            width=data.get('width'),
            height=data.get('height'),
            only_annotated=not data['download_all_tasks'] and not predicted,
            mot_origin=int(data['mot_origin']),
            source=data['source'],
            model_version=data.get('model_version'),
            only_predicted=predicted and not data['download_all_tasks'],
        )


class VideoFramesQuerySerializer(VideoFrameOptionsSerializer):
    """`GET /api/projects/<id>/export/video-frames` query parameters."""

    format = serializers.CharField(help_text=_format_help())

    def validate_format(self, value):
        return require_format(value).name  # UnknownFormat (400, lists the formats) is answered by the view


def query_data(query: QueryDict) -> dict:
    """A query string as serializer data: lists from repeated or comma-separated values (`ids[]` too)."""
    data = {key: value for key, value in query.items() if not key.endswith('[]')}
    if 'stride' in query and 'frame_stride' not in query:
        data['frame_stride'] = query['stride']
    if 'exportType' in query and 'format' not in query:
        data['format'] = query['exportType']
    for key in LIST_FIELDS:
        values = query.getlist(key) + query.getlist(f'{key}[]')
        items = [item.strip() for value in values for item in value.split(',') if item.strip()]
        if items:
            data[key] = items
        else:
            data.pop(key, None)
    return data


class VideoSnapshotConvertSerializer(VideoFrameOptionsSerializer):
    """`POST /api/projects/<id>/exports/<pk>/convert` body for our formats (Label Studio's fields plus ours)."""

    export_type = serializers.CharField(help_text='A video format name from the export format list, e.g. VIDEO_MOT.')
    download_resources = serializers.BooleanField(required=False, help_text='Ignored by the video formats.')


__all__ = [
    'VideoFrameOptionsSerializer',
    'VideoFramesQuerySerializer',
    'VideoSnapshotConvertSerializer',
    'format_names',
    'query_data',
]
