"""Box geometry in Label Studio's terms: percent boxes rotated about their top-left corner, as pixels.

Pure NumPy, no Django: corners, axis-aligned bounds and CVAT's centre-rotated boxes, which the format
writers share; the keyframe rule itself is in `interpolation.py`.
"""

from __future__ import annotations

import numpy as np


def _pixels(x, y, w, h, img_w, img_h):
    return (
        np.asarray(x, float) * img_w / 100,
        np.asarray(y, float) * img_h / 100,
        np.asarray(w, float) * img_w / 100,
        np.asarray(h, float) * img_h / 100,
    )


def wrap_degrees(rotation_deg):
    """Angle in [0, 360): `mod` alone gives 360.0 for tiny negative angles."""
    angle = np.mod(np.asarray(rotation_deg, float), 360)
    return np.where(angle >= 360, 0.0, angle)


def _turn(rotation_deg):
    radians = np.deg2rad(wrap_degrees(rotation_deg))
    return np.cos(radians), np.sin(radians)


def corners(x, y, w, h, rotation_deg, img_w, img_h, about: str = 'topleft') -> np.ndarray:
    """Pixel corners (..., 4, 2), in the order top-left, top-right, bottom-right, bottom-left before rotation.

    Inputs are Label Studio percents; positive rotation is clockwise on screen (y down), about the
    top-left corner as in Label Studio, or about the centre as in CVAT.
    """
    if about not in ('topleft', 'center'):
        raise ValueError(f'about must be "topleft" or "center", got {about!r}')
    px, py, pw, ph = _pixels(x, y, w, h, img_w, img_h)
    cos, sin = _turn(rotation_deg)
    zero = np.zeros_like(pw)
    dx = np.stack([zero, pw, pw, zero], axis=-1)
    dy = np.stack([zero, zero, ph, ph], axis=-1)
    if about == 'center':
        dx, dy = dx - pw[..., None] / 2, dy - ph[..., None] / 2
        px, py = px + pw / 2, py + ph / 2
    cos, sin = np.asarray(cos)[..., None], np.asarray(sin)[..., None]
    return np.stack([px[..., None] + dx * cos - dy * sin, py[..., None] + dx * sin + dy * cos], axis=-1)


def bounding_box(x, y, w, h, rotation_deg, img_w, img_h):
    """Axis-aligned pixel box (left, top, width, height) around the rotated rectangle; exact when unrotated."""
    pixels = _pixels(x, y, w, h, img_w, img_h)
    straight = (wrap_degrees(rotation_deg) == 0) & (pixels[2] >= 0) & (pixels[3] >= 0)
    if straight.all():
        return pixels
    points = corners(x, y, w, h, rotation_deg, img_w, img_h)
    left, top = points[..., 0].min(axis=-1), points[..., 1].min(axis=-1)
    width, height = points[..., 0].max(axis=-1) - left, points[..., 1].max(axis=-1) - top
    return tuple(np.where(straight, a, b) for a, b in zip(pixels, (left, top, width, height), strict=True))


def to_cvat_box(x, y, w, h, rotation_deg, img_w, img_h):
    """(xtl, ytl, xbr, ybr, rotation) of the CVAT box, rotated about its centre, that draws the same rectangle.

    The rectangle keeps its size and angle; only the pivot differs, so the centre is moved to where
    the top-left rotation put it. CVAT keeps angles in [0, 360).
    """
    px, py, pw, ph = _pixels(x, y, w, h, img_w, img_h)
    cos, sin = _turn(rotation_deg)
    cx = px + pw / 2 * cos - ph / 2 * sin
    cy = py + pw / 2 * sin + ph / 2 * cos
    return cx - pw / 2, cy - ph / 2, cx + pw / 2, cy + ph / 2, wrap_degrees(rotation_deg)


def iou_xyxy(a, b) -> np.ndarray:
    """IoU of matching rows of two (n, 4) pixel `x1, y1, x2, y2` arrays (1 where both are empty)."""
    a, b = np.asarray(a, float).reshape(-1, 4), np.asarray(b, float).reshape(-1, 4)
    width = np.clip(np.minimum(a[:, 2], b[:, 2]) - np.maximum(a[:, 0], b[:, 0]), 0, None)
    height = np.clip(np.minimum(a[:, 3], b[:, 3]) - np.maximum(a[:, 1], b[:, 1]), 0, None)
    inter = width * height
    union = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1]) + (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1]) - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1), 1.0)
