"""Encode and decode speed of ls_extensions.video.frames per codec, on synthetic 640x480 frames.

Run: ``.venv/bin/python benchmarks/frames_to_video.py [--frames 300] [--width 640] [--height 480]``.
Frames are a textured background panning under a moving box with sensor-like noise, so the encoder
sees motion and detail rather than flat colour (colour itself varies slowly, as in camera footage).
Encode time excludes making the frames; decode is ``iter_frames`` over every frame, RGB included.
The machine is shared: the load average printed with the results says how busy it was.
"""

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np

from ls_extensions.video.frames import CODECS, encode_frames, iter_frames


def synthetic_frames(count: int, width: int, height: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0 : height + count, 0 : width + count].astype(np.float32)
    detail = 60 * np.sin(xx / 3) * np.sin(yy / 5) + 40 * ((xx // 16 + yy // 16) % 2)  # fine luma texture
    tint = np.stack([xx / (width + count), yy / (height + count), 0.5 + 0.5 * np.sin(xx / 90)], axis=-1) * 150
    background = np.clip(tint + detail[..., None], 0, 255).astype(np.uint8)
    noise = rng.integers(-4, 5, size=(8, height, width, 1), dtype=np.int16)
    for i in range(count):
        frame = background[i : i + height, i : i + width].astype(np.int16) + noise[i % len(noise)]
        x = (i * 5) % (width - 80)
        frame[100:180, x : x + 80] = (220, 40, 40)
        yield np.clip(frame, 0, 255).astype(np.uint8)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--frames', type=int, default=300)
    parser.add_argument('--width', type=int, default=640)
    parser.add_argument('--height', type=int, default=480)
    parser.add_argument('--fps', type=float, default=25)
    args = parser.parse_args()

    start = time.perf_counter()
    for _ in synthetic_frames(args.frames, args.width, args.height):
        pass
    source_s = time.perf_counter() - start

    print(
        f'{args.frames} frames {args.width}x{args.height} @ {args.fps:g} fps; making the frames alone: {source_s:.2f} s;'
        f' load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs'
    )
    print(f'{"codec":6} {"settings":58} {"encode s":>8} {"enc f/s":>8} {"dec f/s":>8} {"KiB":>8}')
    with tempfile.TemporaryDirectory() as tmp:
        for codec, spec in CODECS.items():
            path = Path(tmp) / f'bench{spec.suffix}'
            start = time.perf_counter()
            written = encode_frames(synthetic_frames(args.frames, args.width, args.height), path, args.fps, codec)
            encode_s = time.perf_counter() - start - source_s
            start = time.perf_counter()
            decoded = sum(1 for _ in iter_frames(path, range(1, written + 1)))
            decode_s = time.perf_counter() - start
            assert decoded == written == args.frames
            settings = ' '.join(f'{key}={value}' for key, value in spec.options.items())
            print(
                f'{codec:6} {settings:58} {encode_s:8.2f} {written / encode_s:8.1f} {decoded / decode_s:8.1f}'
                f' {path.stat().st_size / 1024:8.0f}'
            )


if __name__ == '__main__':
    main()
