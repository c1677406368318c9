"""Pure parts of the model server: label mapping, boxes, mAP, the version registry, image sources."""

import base64
import io

import numpy as np
import pytest
from PIL import Image

from ls_extensions.ml_backend import synthetic
from ls_extensions.ml_backend.adapters.base import Sample
from ls_extensions.ml_backend.images import ImageError, ImageLoader
from ls_extensions.ml_backend.labels import LabelConfigError, LabelMap, normalize, parse_label_config
from ls_extensions.ml_backend.metrics import mean_average_precision
from ls_extensions.ml_backend.registry import ModelRegistry, RegistryError
from ls_extensions.ml_backend.training import gate_refusal, held_out, percent_box_to_pixels, split
from tests.label_configs import IMAGE_BOXES, VIDEO_TRACKING

CONFIG = """<View><Image name="img" value="$photo"/>
<RectangleLabels name="box" toName="img">
  <Label value="Sea Fish" predicted_values="fish,salmon"/>
  <Label value="traffic light"/>
  <Label value="Nothing"/>
</RectangleLabels></View>"""


def test_parse_label_config_finds_the_box_control():
    control = parse_label_config(CONFIG)
    assert (control.from_name, control.to_name, control.value_key) == ('box', 'img', 'photo')
    assert control.labels == ['Sea Fish', 'traffic light', 'Nothing']
    assert control.predicted_values == {'Sea Fish': ['fish', 'salmon']}
    assert parse_label_config(IMAGE_BOXES).labels == ['fish', 'crab']


@pytest.mark.parametrize('xml', [VIDEO_TRACKING, '<View><Image name="i" value="$i"/></View>', '', '<View'])
def test_configs_without_rectanglelabels_are_refused_with_a_message(xml):
    with pytest.raises(LabelConfigError) as exc:
        parse_label_config(xml)
    assert str(exc.value)


def test_label_map_predicted_values_then_normalized_names_unmapped_dropped_and_counted():
    classes = ['person', 'traffic_light', 'salmon', 'fish', 'car']
    label_map = LabelMap(classes, parse_label_config(CONFIG))
    assert normalize('Traffic_Light ') == normalize('traffic  light') == 'traffic light'
    assert label_map.label_for(1) == 'traffic light'
    assert label_map.label_for(2) == 'Sea Fish' and label_map.label_for(3) == 'Sea Fish'
    assert label_map.label_for(0) is None and label_map.label_for(4) is None and label_map.label_for(0) is None
    assert label_map.dropped == {'person': 2, 'car': 1}
    assert label_map.class_for('Sea Fish') == 2 and label_map.class_for('Nothing') is None
    assert label_map.unmapped_labels == ['Nothing']


def test_percent_boxes_to_pixels_with_rotation():
    assert percent_box_to_pixels({'x': 10, 'y': 20, 'width': 50, 'height': 25}, 200, 100) == (20, 20, 120, 45)
    x1, y1, x2, y2 = percent_box_to_pixels({'x': 50, 'y': 50, 'width': 10, 'height': 10, 'rotation': 90}, 100, 100)
    assert (round(x1), round(y1), round(x2), round(y2)) == (40, 50, 50, 60)


def test_map_perfect_wrong_and_empty():
    gt = [(np.array([[0, 0, 10, 10], [20, 20, 30, 30]]), np.array([0, 1]))]
    perfect = [[(0, 0, 10, 10, 0, 0.9), (20, 20, 30, 30, 1, 0.8)]]
    assert mean_average_precision(perfect, gt, 2)['mAP'] == pytest.approx(1.0)
    wrong_class = [[(0, 0, 10, 10, 1, 0.9), (20, 20, 30, 30, 0, 0.8)]]
    assert mean_average_precision(wrong_class, gt, 2)['mAP'] == 0.0
    assert mean_average_precision([[]], gt, 2)['mAP'] == 0.0
    half = [[(0, 0, 10, 10, 0, 0.9)]]
    assert mean_average_precision(half, gt, 2)['mAP'] == pytest.approx(0.5)


def test_held_out_split_is_deterministic_and_only_with_enough_images():
    def sample(key, group=None):
        return Sample(image=np.zeros((2, 2, 3), np.uint8), key=key, group=group)

    few = [sample(str(i)) for i in range(5)]
    assert split(few, 10, 0.25) == (few, [])
    many = [sample(str(i)) for i in range(12)]
    train, val = split(many, 10, 0.25)
    assert [s.key for s in val] == ['3', '7', '11'] and len(train) == 9
    # a video's frames are one group: all held out or all trained on, never split
    frames = [sample(f'{task}/{frame}', str(task)) for task in range(1, 9) for frame in (1, 6, 11)]
    train, val = split(frames, 10, 0.25)
    assert [s.key for s in val] == ['3/1', '3/6', '3/11', '7/1', '7/6', '7/11'] and len(train) == 18


def test_held_out_tasks_stay_held_out_as_the_project_grows():
    def sample(key):
        return Sample(image=np.zeros((2, 2, 3), np.uint8), key=key)

    small = [sample(str(i)) for i in range(1, 13)]
    grown = [sample(str(i)) for i in range(1, 41)]
    held_small = {s.key for s in split(small, 10, 0.25)[1]}
    held_grown = {s.key for s in split(grown, 10, 0.25)[1]}
    assert held_small == {'3', '7', '11'} and held_small < held_grown and len(held_grown) == 10
    assert all(held_out(k, 0.25) for k in held_grown) and not any(held_out(k, 0.25) for k in ('1', '2', '4'))
    # nothing held out where it would leave nothing to train on
    only_held = [sample(str(i)) for i in (3, 7, 11, 15, 19, 23, 27, 31, 35, 39)]
    assert split(only_held, 10, 0.25) == (only_held, [])


def test_the_gate_refuses_a_version_worse_than_the_served_one_beyond_the_tolerance():
    assert gate_refusal({'map_before': 0.5, 'map_after': 0.45}, 0.0).startswith('not served: held-out mAP@0.5 0.4500')
    assert gate_refusal({'map_before': 0.5, 'map_after': 0.45}, 0.05) == ''  # within the tolerance
    assert gate_refusal({'map_before': 0.5, 'map_after': 0.6}, 0.0) == ''
    assert gate_refusal({'map_before': 0.5, 'map_after': 0.1}, None) == ''  # gate off
    assert gate_refusal({'loss': 0.3}, 0.0) == ''  # no held-out mAP: nothing to compare


def test_registry_versions_keep_last_k_and_rollback(tmp_path):
    base = tmp_path / 'base.pth'
    base.write_bytes(b'base')
    reg = ModelRegistry(tmp_path / 'models', name='m', keep=2)
    v0 = reg.register(base, copy=False)
    assert v0['version'] == 'm.v0' and reg.checkpoint('m.v0') == base.resolve()
    for i in range(1, 5):
        ckpt = tmp_path / f'{i}.pth'
        ckpt.write_bytes(str(i).encode())
        meta = reg.register(ckpt, meta={'metrics': {'loss': i}})
        assert reg.current_version() == meta['version'] == f'm.v{i}'
    assert [m['version'] for m in reg.versions()] == ['m.v0', 'm.v3', 'm.v4']
    assert reg.checkpoint('m.v4').read_bytes() == b'4'
    assert reg.rollback()['version'] == 'm.v3' and reg.current_version() == 'm.v3'
    assert reg.rollback('m.v0')['version'] == 'm.v0'
    with pytest.raises(RegistryError):
        reg.rollback()
    with pytest.raises(RegistryError):
        reg.rollback('m.v1')
    # numbers are never reused, even after pruning
    ckpt = tmp_path / '5.pth'
    ckpt.write_bytes(b'5')
    assert reg.register(ckpt)['version'] == 'm.v5'


def _png(array):
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format='PNG')
    return buffer.getvalue()


def test_image_loader_sources_and_refusals():
    img, _ = synthetic.make_image(np.random.default_rng(0), size=32)
    loader = ImageLoader(None, allowed_hosts='images.example.org')
    uri = 'data:image/png;base64,' + base64.b64encode(_png(img)).decode()
    assert (loader.load(uri) == img).all()
    for url, message in [
        ('/data/upload/1/a.png', '--ls-url'),
        ('s3://bucket/a.png', 'unsupported'),
        ('http://169.254.169.254/latest', 'not allowed'),
        ('http://evil.example.org/a.png', 'not allowed'),
        (None, 'no image URL'),
        ('data:image/png;base64,AAAA', 'not a readable image'),
    ]:
        with pytest.raises(ImageError, match=message):
            loader.load(url)


def test_synthetic_coco(tmp_path):
    import json

    path = synthetic.write_coco(tmp_path, count=3, seed=1, size=64)
    coco = json.loads(path.read_text())
    assert len(coco['images']) == 3 and coco['annotations']
    assert {c['name'] for c in coco['categories']} == set(synthetic.CLASSES)
    for ann in coco['annotations']:
        x, y, w, h = ann['bbox']
        assert 0 <= x and x + w <= 64 and 0 <= y and y + h <= 64
