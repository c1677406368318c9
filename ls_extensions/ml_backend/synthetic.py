"""Synthetic detection data: filled shapes of a few classes on noise, with COCO-style annotations.

Class k is drawn in a fixed colour and shape, so a tiny detector can learn it in seconds.
``python -m ls_extensions.ml_backend.synthetic OUT_DIR --count 40`` writes PNGs and ``coco.json``.
"""

import argparse
import json
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from ls_extensions.ml_backend.labels import rectangle_region

CLASSES = ('fish', 'crab')
COLOURS = ((220, 40, 40), (40, 80, 230), (40, 200, 60), (230, 200, 30))


def make_image(rng, size=128, classes=CLASSES, max_objects=3, min_side=20, max_side=48):
    """One image (HxWx3 uint8) and its boxes [(x, y, w, h, class_index)] in pixels."""
    w = h = size if isinstance(size, int) else size[0]
    if not isinstance(size, int):
        w, h = size
    noise = rng.integers(60, 160, size=(h, w, 3), dtype=np.uint8)
    img = Image.fromarray(noise)
    draw = ImageDraw.Draw(img)
    boxes = []
    for _ in range(int(rng.integers(1, max_objects + 1))):
        k = int(rng.integers(len(classes)))
        hi = max(2, min(max_side, w // 2, h // 2))
        bw, bh = (int(v) for v in rng.integers(min(min_side, hi - 1), hi + 1, size=2))
        x, y = int(rng.integers(0, w - bw + 1)), int(rng.integers(0, h - bh + 1))
        colour = COLOURS[k % len(COLOURS)]
        if k % 2 == 0:
            draw.rectangle([x, y, x + bw - 1, y + bh - 1], fill=colour)
        else:
            draw.ellipse([x, y, x + bw - 1, y + bh - 1], fill=colour)
        boxes.append((x, y, bw, bh, k))
    return np.asarray(img), boxes


def dataset(count, seed=0, size=128, classes=CLASSES, **kwargs):
    rng = np.random.default_rng(seed)
    return [make_image(rng, size=size, classes=classes, **kwargs) for _ in range(count)]


def to_arrays(boxes):
    """Pixel boxes [(x, y, w, h, class_index)] as (corner boxes (n, 4) float, class indices (n,) int):
    what a ``Sample`` and the mAP metric take."""
    xyxy = np.array([(x, y, x + w, y + h) for x, y, w, h, _ in boxes], float).reshape(-1, 4)
    return xyxy, np.array([k for *_, k in boxes], int)


def to_ls_result(boxes, width, height, classes=CLASSES, from_name='label', to_name='image'):
    """Label Studio ``rectanglelabels`` results (percent coordinates) for pixel boxes."""
    return [rectangle_region(from_name, to_name, x, y, bw, bh, width, height, classes[k]) for x, y, bw, bh, k in boxes]


def write_coco(out_dir, count=40, seed=0, size=128, classes=CLASSES):
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    coco = {'images': [], 'annotations': [], 'categories': [{'id': i + 1, 'name': c} for i, c in enumerate(classes)]}
    for i, (img, boxes) in enumerate(dataset(count, seed=seed, size=size, classes=classes)):
        name = f'synthetic_{i:04d}.png'
        Image.fromarray(img).save(out / name)
        coco['images'].append({'id': i + 1, 'file_name': name, 'width': img.shape[1], 'height': img.shape[0]})
        for x, y, bw, bh, k in boxes:
            coco['annotations'].append(
                {
                    'id': len(coco['annotations']) + 1,
                    'image_id': i + 1,
                    'category_id': k + 1,
                    'bbox': [x, y, bw, bh],
                    'area': bw * bh,
                    'iscrowd': 0,
                }
            )
    (out / 'coco.json').write_text(json.dumps(coco))
    return out / 'coco.json'


if __name__ == '__main__':
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument('out_dir')
    parser.add_argument('--count', type=int, default=40)
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--size', type=int, default=128)
    args = parser.parse_args()
    print(write_coco(args.out_dir, args.count, args.seed, args.size))
