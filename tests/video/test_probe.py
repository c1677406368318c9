"""probe: timing facts of camera-like files and the verdict of what would mis-align in Label Studio."""

import math
from fractions import Fraction

import av
import pytest
from hypothesis import given
from hypothesis import strategies as st

from ls_extensions.video.probe import (
    VideoFacts,
    check_alignment,
    count_misaligned,
    first_ui_frame_at_or_after,
    inspect_video,
    playback_timeline,
    ui_seek_time,
    verdict,
)
from tests.video.camera_files import cfr_times, vfr_times, write_camera_file


def lsf_seek(ui_frame, fps):
    """Label Studio 1.23's goToFrame: round((f - 1) / fps / .002) * .002 + .002 (JS Math.round, halves up)."""
    return math.floor((ui_frame - 1) / fps / 0.002 + 0.5) * 0.002 + 0.002


def shown_by_browser(times, seek):
    """The frame a browser shows at ``seek``: the last one at or before it, the first one before it starts."""
    return max([i for i, t in enumerate(times) if t <= seek], default=0)


def naive_misaligned(times, fps, ui_length):
    return [f for f in range(1, ui_length + 1) if shown_by_browser(times, lsf_seek(f, fps)) != f - 1]


@given(st.integers(1, 100_000), st.sampled_from([1, 10, 23.976, 25, 29.97, 30, 50, 60, 120]))
def test_seek_time_is_label_studios(ui_frame, fps):
    assert ui_seek_time(ui_frame, fps) == pytest.approx(lsf_seek(ui_frame, fps), abs=1e-9)
    assert math.ceil(ui_seek_time(ui_frame, fps) * fps) == ui_frame  # the UI reads back frame f


@given(st.floats(0, 5000, allow_nan=False), st.sampled_from([10, 24, 25, 29.97, 30, 60]))
def test_first_ui_frame_at_or_after(time, fps):
    f = first_ui_frame_at_or_after(time, fps)
    assert ui_seek_time(f, fps) >= time
    assert f == 1 or ui_seek_time(f - 1, fps) < time


@given(
    st.lists(st.integers(1, 200), min_size=1, max_size=60),
    st.integers(0, 2000),
    st.sampled_from([10, 25, 29.97, 30]),
)
def test_misaligned_count_agrees_with_a_frame_by_frame_browser(steps_ms, start_ms, fps):
    times = [(start_ms + sum(steps_ms[:i])) / 1000 for i in range(len(steps_ms))]
    ui_length = max(1, round((times[-1] + steps_ms[-1] / 1000) * fps))
    expected = naive_misaligned(times, fps, ui_length)
    tally = count_misaligned(times, fps, ui_length)
    assert tally.count == len(expected)
    if expected:
        assert tally.example == (expected[0], shown_by_browser(times, lsf_seek(expected[0], fps)))


@pytest.fixture(scope='module')
def files(tmp_path_factory):
    folder = tmp_path_factory.mktemp('camera')
    return {
        'good': write_camera_file(folder / 'good.mp4', cfr_times(20, 25)),
        'vfr': write_camera_file(folder / 'vfr.mp4', vfr_times()),
        'late': write_camera_file(folder / 'late.mp4', cfr_times(20, 25, start=Fraction(6, 5))),
        'fps30': write_camera_file(folder / 'fps30.mp4', cfr_times(30, 30), rate=30),
        'ts': write_camera_file(folder / 'cam.ts', cfr_times(10, 25, start=Fraction(7, 5)), container='mpegts'),
        'vp9': write_camera_file(folder / 'good.webm', cfr_times(10, 25), codec='libvpx-vp9', container='webm'),
        'ms': write_camera_file(folder / 'ms.mp4', [Fraction(round(i * 1000 / 30), 1000) for i in range(45)], rate=30),
    }


def test_good_file_lines_up(files):
    facts, verdict = check_alignment(files['good'], 25)
    assert (facts.container, facts.codec, facts.pixel_format, facts.width, facts.height) == (
        'mov,mp4,m4a,3gp,3g2,mj2',
        'h264',
        'yuv420p',
        64,
        48,
    )
    assert (facts.header_frame_count, facts.counted_frames, facts.counted_by) == (20, 20, 'decode')
    assert facts.first_timestamp == 0 and not facts.variable_frame_rate
    assert facts.frame_duration == pytest.approx(0.04) and facts.measured_fps == pytest.approx(25)
    assert facts.colour == {'primaries': 'unknown', 'transfer': 'unknown', 'matrix': 'unknown', 'range': 'unknown'}
    assert (verdict.ui_length, verdict.misaligned_ui_frames, verdict.reasons) == (20, 0, [])
    assert not verdict.needs_reencode
    assert verdict.notes == ['no colour matrix tag: players have to guess how to convert its colours.']
    _, vp9 = check_alignment(files['vp9'], 25)
    assert vp9.reasons == []


def test_variable_frame_rate(files):
    facts, verdict = check_alignment(files['vfr'], 25)
    assert facts.variable_frame_rate and facts.counted_frames == 40
    assert facts.frame_duration == pytest.approx(0.04)
    assert (facts.min_frame_duration, facts.max_frame_duration) == (pytest.approx(0.01), pytest.approx(0.2))
    assert facts.irregular_durations == 18  # 9 of each 20 steps are not 40 ms (the unused last step is 40)
    times = vfr_times()
    ui_length = round((float(times[-1]) + 0.04) * 25)
    expected = naive_misaligned([float(t) for t in times], 25, ui_length)
    assert verdict.ui_length == ui_length and verdict.misaligned_ui_frames == len(expected) > 0
    assert verdict.reasons[0] == 'it plays at 19.23 fps, the project at 25 fps.'
    assert verdict.reasons[1] == 'variable frame rate: 18 frame durations differ from 40.0 ms (from 10.0 to 200.0 ms).'
    first = expected[0]
    assert verdict.reasons[2] == (
        f'{len(expected)} of {ui_length} UI frames show another frame than the export assumes '
        f'(UI frame {first} shows decoded frame {shown_by_browser([float(t) for t in times], lsf_seek(first, 25))}, '
        f'not {first - 1}).'
    )


def test_first_timestamp_not_zero(files):
    facts, verdict = check_alignment(files['late'], 25)
    assert facts.first_timestamp == pytest.approx(1.2) and not facts.variable_frame_rate
    assert (
        verdict.reasons[0]
        == 'the first frame is at 1.200 s, not 0: browsers show it until then, 30 UI frame(s) too late.'
    )
    assert verdict.ui_length == 50 and verdict.misaligned_ui_frames == 49  # only UI frame 1 shows frame 0


def test_other_frame_rate(files):
    _, verdict = check_alignment(files['fps30'], 25)
    assert verdict.reasons[0] == 'it plays at 30 fps, the project at 25 fps.'
    assert verdict.ui_length == 25 and verdict.misaligned_ui_frames == 20
    _, at_30 = check_alignment(files['fps30'], 30)
    assert at_30.reasons == []
    _, good_at_30 = check_alignment(files['good'], 30)
    assert good_at_30.reasons[0] == 'it plays at 25 fps, the project at 30 fps.'


def test_mpeg_ts_camera_file(files):
    facts, verdict = check_alignment(files['ts'], 25)
    assert facts.container == 'mpegts' and facts.header_frame_count == 0
    assert facts.first_timestamp == pytest.approx(1.4)
    assert verdict.reasons[0] == 'h264 in a mpegts file does not play in common browsers.'
    assert verdict.reasons[1].startswith('the first frame is at 1.400 s')


def test_packets_only_probe_agrees_with_decoding(files):
    for path in files.values():
        decoded, packets = inspect_video(path), inspect_video(path, decode=False)
        assert packets.counted_by == 'packets'
        for key in ('counted_frames', 'first_timestamp', 'end_time', 'frame_duration', 'variable_frame_rate'):
            assert getattr(packets, key) == getattr(decoded, key), (path.name, key)
        assert [t for t, _ in playback_timeline(path)] == [t for t, _ in playback_timeline(path, decode=False)]


def test_rotation_is_a_reason(tmp_path):
    path = tmp_path / 'phone.mp4'
    write_camera_file(path, cfr_times(5, 25))
    rotated = tmp_path / 'rotated.mp4'
    with av.open(str(path)) as source, av.open(str(rotated), 'w') as output:
        stream = output.add_stream_from_template(source.streams.video[0])
        stream.set_display_rotation(90)
        for packet in source.demux(source.streams.video[0]):
            if packet.dts is not None:
                packet.stream = stream
                output.mux(packet)
    facts, verdict = check_alignment(rotated, 25)
    assert facts.rotation == 90
    assert verdict.reasons == [
        'rotated 90 degrees by metadata: browsers turn it, our decoder does not (boxes would not match).'
    ]


@pytest.mark.parametrize('content', [b'', b'not a video', b'#EXTM3U\n#EXTINF:1,\nx.mp4\n'])
def test_not_a_video(tmp_path, content):
    path = tmp_path / 'x.mp4'
    path.write_bytes(content)
    with pytest.raises(av.InvalidDataError):  # the playlist too: open_video's whitelist has no hls demuxer
        inspect_video(path)


def test_millisecond_timestamps_of_a_30_fps_file_line_up(files):
    """WebM/MKV and many cameras store milliseconds: 0, 33, 67, 100 ... is constant 30 fps, not variable."""
    facts, judged = check_alignment(files['ms'], 30)
    assert not facts.variable_frame_rate and facts.irregular_durations == 0
    assert (judged.reasons, judged.misaligned_ui_frames, judged.ui_length) == ([], 0, 45)


def test_header_frame_count_that_decoding_contradicts():
    facts = VideoFacts(
        path='x.mp4',
        container='mov,mp4,m4a,3gp,3g2,mj2',
        codec='h264',
        pixel_format='yuv420p',
        header_frame_count=30,
        counted_frames=28,
        first_timestamp=0.0,
        end_time=1.12,
        measured_fps=25.0,
    )
    assert verdict(facts, 25).reasons == ['the header says 30 frames, decoding gives 28.']
    facts.counted_by = 'packets'  # a packet count says nothing about decoding
    assert verdict(facts, 25).reasons == []
    facts.pixel_format = 'yuv422p10le'
    assert verdict(facts, 25).reasons == ['H.264 in yuv422p10le does not play in common browsers (they need yuv420p).']
