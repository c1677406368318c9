"""Synthetic camera-like video files whose frames carry their index (as coloured blocks, see test_prepare).

Real cameras and phones write what these imitate: variable frame rates (frames dropped or bunched
when the sensor or the encoder falls behind), a first timestamp that is not zero (trimmed files,
MPEG-TS at 1.4 s), frame rates other than the project's (30 fps phones, 25 fps cameras).
"""

from fractions import Fraction

import av

from tests.video.test_prepare import coded_image

TIME_BASE = Fraction(1, 90000)


def write_camera_file(path, times, *, rate=25, container=None, codec='libx264', size=(64, 48), options=None):
    """Frame ``i`` (code ``i``) at ``times[i]`` seconds; ``rate`` is only the stream's nominal rate."""
    with av.open(str(path), 'w', format=container) as output:
        stream = output.add_stream(codec, rate=rate, options=options or {})
        stream.width, stream.height, stream.pix_fmt = size[0], size[1], 'yuv420p'
        stream.codec_context.time_base = TIME_BASE
        stream.time_base = TIME_BASE
        for index, time in enumerate(times):
            frame = av.VideoFrame.from_ndarray(coded_image(index, *size), format='rgb24')
            frame.pts, frame.time_base = round(Fraction(time) / TIME_BASE), TIME_BASE
            output.mux(stream.encode(frame))
        output.mux(stream.encode(None))
    return path


def cfr_times(count, fps, start=0.0):
    return [start + Fraction(i) / Fraction(fps) for i in range(count)]


def vfr_times():
    """About 25 fps with what a struggling camera writes: bunched frames, 3- and 5-frame gaps."""
    steps = [40, 40, 20, 60, 40, 120, 40, 40, 10, 30, 200, 40, 40, 40, 33, 47, 40, 80, 40, 40]
    times, now = [], 0
    for step in steps * 2:
        times.append(Fraction(now, 1000))
        now += step
    return times
