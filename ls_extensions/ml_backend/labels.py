"""Which part of a label config the server predicts for, and how model classes map to its labels.

Images: the first ``RectangleLabels`` bound to an ``Image`` (``parse_label_config``). Videos: a
``VideoRectangle`` on a ``Video``, labelled by the ``Labels`` on the same video, played at the
``Video``'s ``frameRate`` (``parse_controls`` reads both, for configs with either or both).

Mapping rules, per project label: its ``predicted_values`` attribute (comma separated model class
names) if present, else a normalized name match (case, spaces/underscores/hyphens). Model classes
that map to no label are dropped and counted. Labels of a video map to classes exactly as for images.
"""

import re
import uuid
import xml.etree.ElementTree as ET
from collections import Counter
from dataclasses import dataclass, field

from ls_extensions.video.export.config import ui_frame_rate

DEFAULT_SCORE_THRESHOLD = 0.3
"""Detections scoring below this are not predicted (the model server's ``--score-threshold`` default)."""


class LabelConfigError(ValueError):
    """The label config cannot be served by a box detector; the message is shown in Label Studio."""


def normalize(name):
    return re.sub(r'[\s_\-]+', ' ', str(name)).strip().casefold()


@dataclass
class BoxControl:
    from_name: str
    to_name: str
    value_key: str  # the task data key holding the image URL
    labels: list[str]
    predicted_values: dict[str, list[str]] = field(default_factory=dict)


@dataclass
class VideoControl(BoxControl):
    """A ``VideoRectangle`` on a ``Video`` (``value_key``: the task data key of the video URL)."""

    frame_rate: float | None = 24.0  # None: per task, from data[frame_rate_key] (``frameRate="$fps"``)
    frame_rate_key: str | None = None


@dataclass
class LabelControls:
    """What the server can predict in a config: its image boxes, its video tracks, or both.

    ``video_key``/``video_error``: the data key of the first ``Video`` and, when it cannot be
    pre-annotated (no ``VideoRectangle``, no ``Labels``), why; tasks with that key get the reason.
    """

    image: BoxControl | None
    video: VideoControl | None
    video_key: str | None = None
    video_error: str | None = None

    def is_video_task(self, data):
        """A task is a video task when it holds the Video's key (or nothing but a Video can be predicted)."""
        if self.video_key is None:
            return False
        return self.image is None or (isinstance(data, dict) and self.video_key in data)


def _root(xml):
    if not xml or not str(xml).strip():
        raise LabelConfigError('empty label config')
    try:
        return ET.fromstring(xml)
    except ET.ParseError as exc:
        raise LabelConfigError(f'label config is not valid XML: {exc}') from None


def _labels_of(*controls):
    """Label values and ``predicted_values`` of the ``Label`` children of ``controls``."""
    labels, predicted = [], {}
    for control in controls:
        for child in control:
            if child.tag.lower() != 'label':
                continue
            value_attr = child.get('value') or child.get('alias')
            if not value_attr:
                continue
            labels.append(value_attr)
            raw = child.get('predicted_values')
            if raw:
                predicted[value_attr] = [p.strip() for p in raw.split(',') if p.strip()]
    return labels, predicted


def parse_label_config(xml):
    """The first ``RectangleLabels`` bound to an ``Image``; LabelConfigError otherwise."""
    return _image_control(_root(xml))


def _image_control(root):
    images = {el.get('name'): el for el in root.iter() if el.tag.lower() == 'image' and el.get('name')}
    controls = [el for el in root.iter() if el.tag.lower() == 'rectanglelabels']
    if not controls:
        raise LabelConfigError('label config has no RectangleLabels control: this model server only predicts boxes')
    for control in controls:
        image = images.get(control.get('toName'))
        if image is None:
            continue
        value = image.get('value', '')
        if not value.startswith('$'):
            continue
        labels, predicted = _labels_of(control)
        if not labels:
            raise LabelConfigError(f'RectangleLabels "{control.get("name")}" has no labels')
        return BoxControl(control.get('name'), control.get('toName'), value[1:], labels, predicted)
    raise LabelConfigError('no RectangleLabels control is bound to an Image with a $data value')


def _to_names(element):
    return [name.strip() for name in (element.get('toName') or '').split(',') if name.strip()]


def _video_control(root):
    """(VideoControl or None, data key of the first Video, why its Video cannot be pre-annotated)."""
    videos = [el for el in root.iter() if el.tag.lower() == 'video' and el.get('name')]
    if not videos:
        return None, None, None
    by_name = {el.get('name'): el for el in videos}
    key = videos[0].get('value', '')[1:] if videos[0].get('value', '').startswith('$') else None
    rects = [
        (el, name)
        for el in root.iter()
        if el.tag.lower() == 'videorectangle'
        for name in _to_names(el)[:1]
        if name in by_name
    ]
    if not rects:
        name = videos[0].get('name')
        why = (
            f'the label config has a <Video name="{name}"> but no <VideoRectangle toName="{name}">: '
            'this model server pre-annotates videos as VideoRectangle tracks'
        )
        return None, key, why
    rect, name = rects[0]
    video = by_name[name]
    value = video.get('value', '')
    key = value[1:] if value.startswith('$') else key
    if not value.startswith('$'):
        return None, key, f'<Video name="{name}"> has no $data value'
    tags = [el for el in root.iter() if el.tag.lower() == 'labels' and name in _to_names(el)]
    labels, predicted = _labels_of(*tags, rect)
    labels = list(dict.fromkeys(labels))  # the same label on two Labels tags is one label
    if not labels:
        return None, key, f'no <Labels toName="{name}"> with labels for the VideoRectangle "{rect.get("name")}"'
    raw = {k.lower(): v for k, v in video.attrib.items()}.get('framerate')
    per_task = raw is not None and raw.strip().startswith('$')
    control = VideoControl(
        rect.get('name'),
        name,
        value[1:],
        labels,
        predicted,
        frame_rate=None if per_task else ui_frame_rate(raw),
        frame_rate_key=raw.strip()[1:] if per_task else None,
    )
    return control, key, None


def parse_controls(xml):
    """The image and video controls of a config; LabelConfigError when it has neither (nor a ``Video``)."""
    root = _root(xml)
    video, video_key, video_error = _video_control(root)
    try:
        image = _image_control(root)
    except LabelConfigError:
        if video_key is None and video is None:
            raise
        image = None
    return LabelControls(image, video, video_key, video_error)


class LabelMap:
    """Model class index <-> project label, with a counter of dropped (unmapped) model classes."""

    def __init__(self, model_classes, control):
        self.model_classes = list(model_classes)
        self.control = control
        by_norm = {}
        for i, name in enumerate(self.model_classes):
            by_norm.setdefault(normalize(name), i)
        self.to_label = {}  # model class index -> label
        for label in control.labels:
            candidates = control.predicted_values.get(label) or [label]
            for cand in candidates:
                idx = by_norm.get(normalize(cand))
                if idx is not None and idx not in self.to_label:
                    self.to_label[idx] = label
        self.to_class = {}  # label -> model class index (training)
        for idx, label in sorted(self.to_label.items()):
            self.to_class.setdefault(label, idx)
        self.dropped = Counter()

    def label_for(self, class_index):
        label = self.to_label.get(class_index)
        if label is None:
            name = self.model_classes[class_index] if 0 <= class_index < len(self.model_classes) else str(class_index)
            self.dropped[name] += 1
        return label

    def class_for(self, label):
        return self.to_class.get(label)

    @property
    def unmapped_labels(self):
        return [label for label in self.control.labels if label not in self.to_class]

    def describe(self):
        return {
            'mapped': {self.model_classes[i]: label for i, label in sorted(self.to_label.items())},
            'unmapped_labels': self.unmapped_labels,
        }


def rectangle_region(from_name, to_name, x, y, box_width, box_height, width, height, label):
    """A Label Studio ``rectanglelabels`` result item for a pixel box (Label Studio stores percent coordinates)."""
    return {
        'from_name': from_name,
        'to_name': to_name,
        'type': 'rectanglelabels',
        'original_width': width,
        'original_height': height,
        'image_rotation': 0,
        'value': {
            'x': 100.0 * x / width,
            'y': 100.0 * y / height,
            'width': 100.0 * box_width / width,
            'height': 100.0 * box_height / height,
            'rotation': 0,
            'rectanglelabels': [label],
        },
    }


def task_score(regions):
    """A prediction's task score: the mean of its regions' scores; None when nothing was found, so the
    uncertainty measures rank an empty prediction by their own rule ("nothing found": 0.0, last) rather than
    as a prediction of score 0 (1.0, first)."""
    return round(sum(r['score'] for r in regions) / len(regions), 4) if regions else None


def image_prediction(detections, shape, control, label_map, version, score_threshold):
    """The model server's prediction for one image: each detection at or above ``score_threshold`` whose class
    maps to a label, clipped to the image, as a scored region; one function, so that the benchmarks store
    exactly what the server returns."""
    height, width = shape[:2]
    regions = []
    for det in detections:
        if det.score < score_threshold:
            continue
        label = label_map.label_for(int(det.class_index))
        if label is None:
            continue
        x1, y1 = max(0.0, float(det.x1)), max(0.0, float(det.y1))
        x2, y2 = min(float(width), float(det.x2)), min(float(height), float(det.y2))
        if x2 <= x1 or y2 <= y1:
            continue
        region = rectangle_region(control.from_name, control.to_name, x1, y1, x2 - x1, y2 - y1, width, height, label)
        regions.append({'id': uuid.uuid4().hex[:10], **region, 'score': round(float(det.score), 4)})
    return {'result': regions, 'score': task_score(regions), 'model_version': version}
