"""What a project's labeling config says about video tracking, and the frame rate its `<Video>` plays at.

The one reader of `<Video frameRate>`: the export (`video_tracking_config`) and the importer
(`project_frame_rate`, `video_tags`) both find the `<Video>` tags here (`_video_elements`). The two
keep the rules they have always had, which differ on purpose:
- the export (`_framerate`) reads `frameRate` (or `framerate`) of the `<Video>` its `<VideoRectangle>`
  names, as a float: anything that is not a positive finite number, `$field` per task and negative
  rates included, is 24;
- the importer (`project_frame_rate`) reads the first `<Video>`, attribute names in any case, as an
  exact `Fraction` (`30000/1001` too): `$field` and negative rates are None (no fixed rate: refused),
  anything else unreadable is 24.
Both: unset or 0 -> 24, below 1 -> inverted.
"""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from fractions import Fraction

from .errors import NoVideoTracking

DEFAULT_FRAMERATE = 24.0  # the UI's default for <Video frameRate>


def _video_elements(label_config) -> list[ET.Element]:
    """The `<Video>` tags of a label config (tag name in any case, as the UI reads it); none if it does not parse."""
    try:
        root = ET.fromstring(label_config or '<View/>')
    except ET.ParseError:
        return []
    return [node for node in root.iter() if node.tag.lower() == 'video']


# ---------------------------------------------------------------- the export's reading


@dataclass(frozen=True)
class VideoTrackingConfig:
    """What the labeling config says about video tracking: the `<VideoRectangle>`s and their `<Video>`."""

    box_names: frozenset[str]  # from_name of the VideoRectangle tags
    label_names: frozenset[str]  # Labels tags on the same video (results of type "labels")
    video_name: str  # to_name of the Video tag
    video_key: str  # task.data key of the video
    labels: tuple[str, ...]  # label values in config order
    framerate: float


def video_tracking_config(project) -> VideoTrackingConfig:
    """The project's video tracking setup; `NoVideoTracking` when it has none."""
    parsed = project.get_parsed_config() or {}
    boxes = {name: tag for name, tag in parsed.items() if tag.get('type') == 'VideoRectangle'}
    if not boxes:
        raise NoVideoTracking(
            f'project {project.id} has no video tracking: its labeling config has no <VideoRectangle> '
            'on a <Video>, so there is nothing to export per frame'
        )
    video_name = sorted(name for tag in boxes.values() for name in tag.get('to_name', []))[0]
    inputs = [i for tag in boxes.values() for i in tag.get('inputs', []) if i.get('type') == 'Video']
    video_key = inputs[0]['value'] if inputs else 'video'
    labels, label_names = [], set()
    for name, tag in parsed.items():
        if video_name in tag.get('to_name', []) and tag.get('type') in ('Labels', 'VideoRectangle'):
            if tag.get('type') == 'Labels':
                label_names.add(name)
            labels += [label for label in tag.get('labels', []) if label not in labels]
    return VideoTrackingConfig(
        frozenset(boxes), frozenset(label_names), video_name, video_key, tuple(labels), _framerate(project, video_name)
    )


def ui_frame_rate(raw) -> float:
    """A `frameRate` value as the UI plays it: unset, 0, negative or not a finite number -> 24, below 1 inverted.

    Also the model server's reading of a video config (`ml_backend/labels.py`), so both place boxes on the
    frames the UI shows.
    """
    try:
        rate = float(raw)
    except (TypeError, ValueError):
        return DEFAULT_FRAMERATE
    if not math.isfinite(rate) or rate <= 0:
        return DEFAULT_FRAMERATE
    return 1 / rate if rate < 1 else rate


def _framerate(project, video_name: str) -> float:
    """`<Video frameRate>` of the named `<Video>` as the UI reads it (`ui_frame_rate`); 24 without one."""
    for tag in _video_elements(project.label_config):
        if tag.get('name') == video_name:
            return ui_frame_rate(tag.get('frameRate', tag.get('framerate')))
    return DEFAULT_FRAMERATE


# ---------------------------------------------------------------- the importer's reading


def video_tags(label_config):
    """(name, value, framerate or None) of each <Video> tag; tag and attribute names as the UI reads them."""
    tags = []
    for node in _video_elements(label_config):
        attrs = {k.lower(): v for k, v in node.attrib.items()}
        tags.append((attrs.get('name'), attrs.get('value', ''), attrs.get('framerate')))
    return tags


def project_frame_rate(project):
    """The frame rate the UI plays the project's first <Video> tag at, or None (no tag, or ``$fps`` per task).

    The UI's rule (docs/video-interpolation.md): unset, 0 or not a number -> 24, below 1 -> inverted.
    """
    tags = video_tags(project.label_config)
    if not tags or (tags[0][2] or '').strip().startswith('$'):
        return None
    try:
        fps = Fraction((tags[0][2] or '24').strip())
    except (ValueError, ZeroDivisionError):
        return Fraction(24)
    if fps < 0:
        return None
    return Fraction(24) if fps == 0 else 1 / fps if fps < 1 else fps
