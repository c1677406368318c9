"""Video pre-annotation without a model: detections linked by ByteTrack and reduced to Label Studio keyframes.

    .venv/bin/python benchmarks/video_preannotation.py            # 3000 frames x 5 objects
    .venv/bin/python benchmarks/video_preannotation.py --quick    # 600 frames

Detections are synthetic ground truth plus Gaussian noise (a fraction of the box size per coordinate), 3 % of
the boxes dropped, on every `stride`-th frame (tests/video/synthetic_tracks.py). Per row: keyframes per track
(ours, at IoU 0.9 on every tracked box) against one per tracked frame, motmetrics' MOTA and IDF1 of the
tracker's boxes and of what the UI draws from the keyframes (`expand_sequence`), and frames per second of
linking (`tracking.link_tracks`) and reduction (`track_keyframes.track_region`). Needs the `trackers` package.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from ls_extensions.video.tracking import link_tracks  # noqa: E402
from tests.video.synthetic_tracks import (  # noqa: E402
    HEIGHT,
    WIDTH,
    detect,
    linked_boxes,
    mot_scores,
    random_scene,
    shown_boxes,
    track_regions,
)

FPS = 25.0
# (noise, stride, turns per 3000 frames): 6 turns ~ 3 px/frame, 30 turns ~ 5x faster
CASES = [(0.005, 1, 6), (0.01, 1, 6), (0.02, 1, 6), (0.01, 3, 6), (0.01, 5, 6), (0.01, 1, 30), (0.01, 3, 30)]


def speed(scene) -> float:
    """Mean distance (px) a box's centre moves from one frame to the next."""
    steps = [np.hypot(*np.diff(t.xyxy[:, :2] + t.xyxy[:, 2:], axis=0).T / 2) for t in scene]
    return float(np.concatenate(steps).mean())


def run(frames: int, objects: int, noise: float, stride: int, turns: int, seed: int = 0) -> dict:
    scene = random_scene(frames, objects, seed=seed, turns=max(1, round(turns * frames / 3000)))
    detections = detect(scene, seed=seed + 1, noise=noise, stride=stride)
    started = time.perf_counter()
    tracks = link_tracks(detections, frames, WIDTH, HEIGHT, stride=stride, fps=FPS)
    linked_at = time.perf_counter()
    regions = track_regions(tracks, frames, fps=FPS, max_gap=2 * stride)
    reduced_at = time.perf_counter()
    regions = {k: v for k, v in regions.items() if v is not None}
    return {
        'speed': speed(scene),
        'tracks': len(tracks),
        'boxes': sum(len(t) for t in tracks),
        'keyframes': sum(len(r['value']['sequence']) for r in regions.values()),
        'linked': mot_scores(scene, linked_boxes(tracks), frames),
        'shown': mot_scores(scene, shown_boxes(regions, frames), frames),
        'link_s': linked_at - started,
        'reduce_s': reduced_at - linked_at,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--quick', action='store_true', help='600 frames x 5 objects')
    parser.add_argument('--objects', type=int, default=5)
    args = parser.parse_args()
    frames = 600 if args.quick else 3000
    try:
        import trackers  # noqa: F401
    except ImportError:
        print('skipped: linking needs the `trackers` package (ByteTrack), which is not installed')
        return
    print(
        f'workload: {frames} frames x {args.objects} objects, {WIDTH}x{HEIGHT}, detections = truth + noise, 3 % dropped'
    )
    print('fr/s: video frames per second; with stride k the tracker steps on every k-th frame only')
    print(
        f'{"noise":>6} {"stride":>6} {"px/fr":>5} {"tracks":>6} {"boxes/track":>11} {"keys/track":>10} {"x fewer":>8} '
        f'{"MOTA trk":>8} {"IDF1 trk":>8} {"MOTA UI":>8} {"IDF1 UI":>8} {"IDsw":>5} '
        f'{"link fr/s":>10} {"reduce fr/s":>11} {"both fr/s":>10}'
    )
    for noise, stride, turns in CASES:
        r = run(frames, args.objects, noise, stride, turns)
        per_track = r['boxes'] / r['tracks']
        keys = r['keyframes'] / r['tracks']
        print(
            f'{noise:>6.1%} {stride:>6} {r["speed"]:>5.1f} {r["tracks"]:>6} {per_track:>11.0f} {keys:>10.1f} {per_track / keys:>8.1f} '
            f'{r["linked"]["mota"]:>8.3f} {r["linked"]["idf1"]:>8.3f} {r["shown"]["mota"]:>8.3f} '
            f'{r["shown"]["idf1"]:>8.3f} {r["shown"]["num_switches"]:>5.0f} '
            f'{frames / r["link_s"]:>10,.0f} {frames / r["reduce_s"]:>11,.0f} '
            f'{frames / (r["link_s"] + r["reduce_s"]):>10,.0f}'
        )


if __name__ == '__main__':
    main()
