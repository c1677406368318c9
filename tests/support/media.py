"""Synthetic media for tests: images and videos made on the spot, nothing downloaded."""

import av
import cv2
import numpy as np


def write_image(path, width=128, height=96, seed=0):
    rng = np.random.default_rng(seed)
    image = rng.integers(0, 80, (height, width, 3), dtype=np.uint8)
    cv2.rectangle(image, (20, 20), (60, 50), (0, 0, 255), -1)
    cv2.imwrite(str(path), image)
    return path


def write_video(path, frames=25, width=64, height=48, fps=25):
    """An H.264 MP4 whose frame i is a solid grey level 8*i (so frames are told apart after decoding)."""
    with av.open(str(path), 'w') as container:
        stream = container.add_stream('libx264', rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, 'yuv420p'
        for i in range(frames):
            frame = av.VideoFrame.from_ndarray(np.full((height, width, 3), (8 * i) % 256, np.uint8), format='rgb24')
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path
