"""The format catalogue the Export dialog reads: which formats we offer, under which names, in which order.

Maps Label Studio's export list names (`VIDEO_MOT`, `VIDEO_MOT_IMAGES`, ...) and the engine's names
(`MOT`, `yolo-obb`) to the engine's writers (`formats.list_exporters`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..formats import Exporter, list_exporters
from .errors import UnknownFormat

FORMAT_PREFIX = 'VIDEO_'  # our names in Label Studio's export format list: VIDEO_MOT, VIDEO_YOLO_OBB, ...
OPTIONAL_IMAGES = {'MOT'}  # formats that write frame images when given them; YOLO/YOLO-OBB always need them
PREDICTION_FORMATS = {'MOT'}  # also listed for the predictions of the current model version (`_PREDICTIONS`)


@dataclass(frozen=True)
class ChosenFormat:
    """A format as asked for: the engine's writer, the name it goes by in Label Studio's export list, and
    option defaults that name implies (`VIDEO_MOT_IMAGES` = MOT with frame images, `VIDEO_MOT_PREDICTIONS`
    = MOT of the predictions of the current model version)."""

    exporter: Exporter
    name: str  # Label Studio list name (`exportType`): VIDEO_MOT, VIDEO_YOLO_OBB, ...
    title: str
    description: str
    defaults: dict = field(default_factory=dict)


DIALOG_ORDER = ['JSON', 'CSV', 'MOT', 'YOLO', 'YOLO-OBB', 'CVAT', 'COCO-video']  # others after these


def label_studio_name(exporter: Exporter) -> str:
    """Our format's name in Label Studio's export list (`exportType`), e.g. `VIDEO_YOLO_OBB`."""
    return FORMAT_PREFIX + exporter.name.upper().replace('-', '_')


def chosen_formats() -> list[ChosenFormat]:
    """Every format we offer, in the Export dialog's order; MOT also with frame images, and of the predictions."""
    exporters = sorted(
        list_exporters(), key=lambda e: DIALOG_ORDER.index(e.name) if e.name in DIALOG_ORDER else len(DIALOG_ORDER)
    )
    formats = []
    for exporter in exporters:
        formats.append(ChosenFormat(exporter, label_studio_name(exporter), exporter.title, exporter.description))
        if exporter.name in OPTIONAL_IMAGES:
            formats.append(
                ChosenFormat(
                    exporter,
                    label_studio_name(exporter) + '_IMAGES',
                    f'{exporter.title} + frame images',
                    f'{exporter.description} With every exported frame as img1/<frame>.jpg from the video.',
                    {'images': True},
                )
            )
        if exporter.name in PREDICTION_FORMATS:
            formats.append(
                ChosenFormat(
                    exporter,
                    label_studio_name(exporter) + '_PREDICTIONS',
                    f"{exporter.title} of the current model version's predictions",
                    f"{exporter.description} The predictions of the project's current model version instead of the "
                    "annotations, as a tracker's output (<sequence>.txt, conf = the track's score), to score the "
                    'model against the annotations with MOT tools (e.g. eval_motchallenge of motmetrics).',
                    {'source': 'predictions'},
                )
            )
    return formats


def format_names() -> list[str]:
    return [exporter.name for exporter in list_exporters()]


def find_format(name: str | None) -> ChosenFormat | None:
    """An engine name (`MOT`, `yolo-obb`, case-insensitive) or a Label Studio list name (`VIDEO_MOT_IMAGES`)."""
    if not name:
        return None
    key = name.strip().upper()
    for chosen in chosen_formats():
        if key == chosen.name or (not chosen.defaults and key == chosen.exporter.name.upper()):
            return chosen
    return None


def require_format(name: str | None) -> ChosenFormat:
    chosen = find_format(name)
    if chosen is None:
        valid = format_names()
        problem = f'unknown video export format {name!r}' if name else 'no export format given (?format=...)'
        raise UnknownFormat(
            f'{problem}; valid formats: {", ".join(valid)} '
            f'(or, as in the Export dialog: {", ".join(f.name for f in chosen_formats())})',
            valid_formats=valid,
        )
    return chosen


def require_exporter(name: str | None) -> Exporter:
    return require_format(name).exporter
