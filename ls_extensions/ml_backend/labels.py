"""Which part of a label config the server predicts for, and how model classes map to its labels.

Mapping rules, per project label: its ``predicted_values`` attribute (comma separated model class
names) if present, else a normalized name match (case, spaces/underscores/hyphens). Model classes
that map to no label are dropped and counted.
"""

import re
import xml.etree.ElementTree as ET
from collections import Counter
from dataclasses import dataclass, field


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


def parse_label_config(xml):
    """The first ``RectangleLabels`` bound to an ``Image``; LabelConfigError otherwise."""
    if not xml or not str(xml).strip():
        raise LabelConfigError('empty label config')
    try:
        root = ET.fromstring(xml)
    except ET.ParseError as exc:
        raise LabelConfigError(f'label config is not valid XML: {exc}') from None
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
        labels, predicted = [], {}
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
        if not labels:
            raise LabelConfigError(f'RectangleLabels "{control.get("name")}" has no labels')
        return BoxControl(control.get('name'), control.get('toName'), value[1:], labels, predicted)
    raise LabelConfigError('no RectangleLabels control is bound to an Image with a $data value')


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
