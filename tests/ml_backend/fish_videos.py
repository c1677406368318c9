"""Synthetic annotated fish videos: what the training benchmark and the live video-loop test learn from.

Red rectangles ("fish") and blue ellipses ("crab"), in `synthetic.COLOURS` as on the synthetic images, on a
still textured background, each moving through a random waypoint every second; written by
`frames.VideoWriter` as `frames_to_video` writes them. Each object is annotated the way Label Studio stores
a drawn track: a `videorectangle` with a keyframe per waypoint, so the UI's interpolation of the
keyframes is the drawn path (within the half pixel the drawing rounds to).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ls_extensions.ml_backend.synthetic import COLOURS

WIDTH, HEIGHT, FPS, STEP = 256, 144, 25, 25  # a waypoint every STEP frames
CONFIG = """<View>
  <Labels name="videoLabels" toName="video"><Label value="fish"/><Label value="crab"/></Labels>
  <Video name="video" value="$video" frameRate="25"/>
  <VideoRectangle name="box" toName="video"/>
</View>"""


def scene(frames: int, seed: int, objects: int = 3):
    """Objects [(label, w, h, waypoints [(frame, x, y)])] of one video; the last one is a crab."""
    rng = np.random.default_rng(seed)
    found = []
    for index in range(objects):
        label = 'crab' if index == objects - 1 else 'fish'
        w, h = int(rng.integers(24, 44)), int(rng.integers(16, 30))
        x, y = rng.uniform(0, WIDTH - w), rng.uniform(0, HEIGHT - h)
        points = []
        for frame in [*range(1, frames, STEP), frames]:
            points.append((frame, float(x), float(y)))
            x = float(np.clip(x + rng.normal(0, 30), 0, WIDTH - w))
            y = float(np.clip(y + rng.normal(0, 18), 0, HEIGHT - h))
        found.append((label, w, h, points))
    return found


def position(points, frame):
    """Top-left corner of an object on `frame`: linear between its waypoints, as the UI interpolates."""
    frames = [p[0] for p in points]
    return float(np.interp(frame, frames, [p[1] for p in points])), float(
        np.interp(frame, frames, [p[2] for p in points])
    )


def write_video(path: Path, frames: int, seed: int, objects: int = 3):
    """Write the video of `scene(frames, seed)` to `path`; returns the scene."""
    from ls_extensions.video.frames import VideoWriter

    rng = np.random.default_rng(seed + 1000)
    background = rng.integers(50, 120, size=(HEIGHT, WIDTH, 3), dtype=np.uint8)
    found = scene(frames, seed, objects)
    writer = VideoWriter(path, FPS)
    for frame in range(1, frames + 1):
        image = background.copy()
        for label, w, h, points in found:
            x, y = (round(v) for v in position(points, frame))
            if label == 'fish':
                image[y : y + h, x : x + w] = COLOURS[0]
            else:
                yy, xx = np.ogrid[:h, :w]
                inside = ((xx - (w - 1) / 2) / (w / 2)) ** 2 + ((yy - (h - 1) / 2) / (h / 2)) ** 2 <= 1
                image[y : y + h, x : x + w][inside] = COLOURS[1]
        writer.write(image)
    writer.close()
    return found


def track_results(objects, frames: int) -> list[dict]:
    """The scene as Label Studio stores a drawn annotation: one `videorectangle` per object."""
    results = []
    for index, (label, w, h, points) in enumerate(objects):
        sequence = [
            {
                'frame': frame,
                'enabled': True,
                'rotation': 0,
                'time': (frame - 1) / FPS,
                'x': 100 * x / WIDTH,
                'y': 100 * y / HEIGHT,
                'width': 100 * w / WIDTH,
                'height': 100 * h / HEIGHT,
            }
            for frame, x, y in points
        ]
        value = {'framesCount': frames, 'duration': frames / FPS, 'sequence': sequence, 'labels': [label]}
        results.append(
            {'id': f't{index}', 'type': 'videorectangle', 'from_name': 'box', 'to_name': 'video', 'value': value}
        )
    return results


def true_boxes(objects, frames: int):
    """[(label, xyxy per frame 1..frames (frames x 4))] of the objects as drawn (corners rounded)."""
    found = []
    for label, w, h, points in objects:
        corners = np.array([[round(v) for v in position(points, frame)] for frame in range(1, frames + 1)], float)
        found.append((label, np.column_stack([corners, corners[:, 0] + w, corners[:, 1] + h])))
    return found
