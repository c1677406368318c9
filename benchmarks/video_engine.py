"""Throughput and peak memory of the per-frame video export engine, against Label Studio's own expansion.

    .venv/bin/python benchmarks/video_engine.py            # 50 videos x 20 tracks x 3000 frames
    .venv/bin/python benchmarks/video_engine.py --quick    # a small run

Each stage runs twice: once timed, once under tracemalloc for its peak (tracemalloc slows it down).
Label Studio's `extract_key_frames` runs on the first `--ls-videos` videos only, as it is slow; the
ratio compares boxes per second, which does not depend on how many videos were used.
"""

from __future__ import annotations

import argparse
import random
import time
import tracemalloc

from label_studio_sdk._extensions.label_studio_tools.postprocessing.video import extract_key_frames

from ls_extensions.video.formats import Track, VideoExport, VideoTrackSet, get_exporter
from ls_extensions.video.interpolation import iter_expanded

FPS = 25.0


def make_sequence(rng: random.Random, frames: int) -> list[dict]:
    """Keyframes every 10-50 frames over a random lifespan, some disabled (hidden spans), some rotated."""
    frame = rng.randint(1, frames // 5)
    end = rng.randint(min(frame + frames // 3, frames), frames)
    rotated = rng.random() < 0.2
    x, y = rng.uniform(0, 80), rng.uniform(0, 80)
    sequence = []
    while frame <= end:
        x, y = x + rng.uniform(-5, 5), y + rng.uniform(-5, 5)
        sequence.append(
            {
                'frame': frame,
                'enabled': rng.random() > 0.1,
                'x': x,
                'y': y,
                'width': rng.uniform(5, 20),
                'height': rng.uniform(5, 20),
                'rotation': rng.uniform(-180, 180) if rotated else 0.0,
                'time': frame / FPS,
            }
        )
        frame += rng.randint(10, 50)
    sequence[-1]['enabled'] = rng.random() < 0.3
    return sequence


def make_workload(videos: int, tracks: int, frames: int, seed: int = 1) -> list[VideoTrackSet]:
    rng = random.Random(seed)
    return [
        VideoTrackSet(
            task_id=video,
            video=f'video_{video}.mp4',
            frame_count=frames,
            frame_count_source='video',
            width=1920,
            height=1080,
            fps=FPS,
            tracks=[
                Track(t, 'car', 0, sequence=make_sequence(rng, frames), result_id=f'r{t}') for t in range(1, tracks + 1)
            ],
        )
        for video in range(1, videos + 1)
    ]


class NullSink:
    """A write-only stream that only counts bytes (zip then writes in streaming mode)."""

    def __init__(self):
        self.size = 0

    def write(self, data) -> int:
        self.size += len(data)
        return len(data)

    def flush(self):
        pass


def run_expand(workload) -> int:
    return sum(len(chunk) for ts in workload for t in ts.tracks for chunk in iter_expanded(t.sequence, ts.frame_count))


def run_mot(workload) -> int:
    return get_exporter('MOT').write(NullSink(), VideoExport(['car'], workload)).boxes


def run_label_studio(workload) -> int:
    boxes = 0
    for ts in workload:
        results = [
            {
                'type': 'videorectangle',
                'value': {'sequence': t.sequence, 'framesCount': ts.frame_count, 'duration': ts.frame_count / FPS},
            }
            for t in ts.tracks
        ]
        boxes += sum(len(result['value']['sequence']) for result in extract_key_frames(results))
    return boxes


def measure(stage, workload) -> tuple[int, float, float]:
    """(boxes, seconds, peak MiB)."""
    started = time.perf_counter()
    boxes = stage(workload)
    seconds = time.perf_counter() - started
    tracemalloc.start()
    stage(workload)
    peak = tracemalloc.get_traced_memory()[1] / 2**20
    tracemalloc.stop()
    return boxes, seconds, peak


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--quick', action='store_true', help='5 videos x 5 tracks x 600 frames')
    parser.add_argument('--ls-videos', type=int, default=5, help='videos given to Label Studio (slow)')
    args = parser.parse_args()
    videos, tracks, frames = (5, 5, 600) if args.quick else (50, 20, 3000)
    workload = make_workload(videos, tracks, frames)
    ls_workload = workload[: min(args.ls_videos, videos)]
    print(f'workload: {videos} videos x {tracks} tracks x {frames} frames; Label Studio on {len(ls_workload)} videos')
    rows = [
        ('ours: iter_expanded', *measure(run_expand, workload)),
        ('ours: MOT writer -> sink', *measure(run_mot, workload)),
        ('LS SDK: extract_key_frames', *measure(run_label_studio, ls_workload)),
    ]
    ls_rate = rows[2][1] / rows[2][2]
    print(f'{"stage":<28} {"boxes":>10} {"seconds":>9} {"boxes/s":>12} {"peak MiB":>9} {"x LS":>7}')
    for name, boxes, seconds, peak in rows:
        rate = boxes / seconds
        print(f'{name:<28} {boxes:>10,} {seconds:>9.3f} {rate:>12,.0f} {peak:>9.1f} {rate / ls_rate:>7.1f}')


if __name__ == '__main__':
    main()
