"""Round trips through ls_extensions.video.frames: every frame carries its index as coloured blocks."""

from fractions import Fraction

import av
import cv2
import numpy as np
import pytest

from ls_extensions.video.frames import CODECS, VideoWriter, encode_frames, encode_jpeg, iter_frames, probe

BLOCK = 16
ON, OFF = (230, 60, 40), (30, 90, 200)
FRAMES = 30


def coded_image(index, width=64, height=48):
    """Frame whose 16x16 blocks spell ``index`` in binary (ON/OFF colours), row by row."""
    image = np.empty((height, width, 3), np.uint8)
    image[:] = OFF
    cols = width // BLOCK
    for bit in range(cols * (height // BLOCK)):
        if index >> bit & 1:
            row, col = divmod(bit, cols)
            image[row * BLOCK : (row + 1) * BLOCK, col * BLOCK : (col + 1) * BLOCK] = ON
    return image


def interior_error(decoded, source):
    """Mean and max error away from block edges, where 4:2:0 chroma cannot follow a hard colour edge."""
    yy, xx = np.indices(source.shape[:2])
    inside = (yy % BLOCK >= 3) & (yy % BLOCK < BLOCK - 3) & (xx % BLOCK >= 3) & (xx % BLOCK < BLOCK - 3)
    error = np.abs(decoded[: source.shape[0], : source.shape[1]].astype(int) - source)[inside]
    return error.mean(), error.max()


def read_code(image):
    cols = image.shape[1] // BLOCK
    value = 0
    for bit in range(cols * (image.shape[0] // BLOCK)):
        row, col = divmod(bit, cols)
        mean = image[row * BLOCK + 4 : row * BLOCK + 12, col * BLOCK + 4 : col * BLOCK + 12].reshape(-1, 3).mean(0)
        if np.abs(mean - ON).sum() < np.abs(mean - OFF).sum():
            value |= 1 << bit
    return value


@pytest.fixture(scope='module', params=sorted(CODECS))
def video(request, tmp_path_factory):
    path = tmp_path_factory.mktemp(request.param) / f'coded{CODECS[request.param].suffix}'
    assert encode_frames((coded_image(i) for i in range(FRAMES)), path, 25, codec=request.param) == FRAMES
    return path, request.param


def test_decoded_frame_i_is_source_image_i(video):
    path, codec = video
    decoded = list(iter_frames(path, range(1, FRAMES + 1)))
    assert [ui for ui, _ in decoded] == list(range(1, FRAMES + 1))
    assert [read_code(image) for _, image in decoded] == list(range(FRAMES))
    for ui, image in decoded:
        assert image.shape == (48, 64, 3) and image.dtype == np.uint8
        mean, worst = interior_error(image, coded_image(ui - 1))
        assert mean < 1.5 and worst <= 12  # near-lossless


def test_probe(video):
    path, codec = video
    info = probe(path)
    assert (info.frame_count, info.width, info.height, info.fps, info.codec) == (FRAMES, 64, 48, 25.0, codec)
    assert info.frame_count_source == ('header' if codec == 'h264' else 'decoded')  # WebM stores no count


def test_constant_frame_rate_with_exact_timestamps(video):
    path, codec = video
    with av.open(str(path)) as container:
        times = [frame.time for frame in container.decode(video=0)]
        duration = container.duration / av.time_base
    assert times == pytest.approx([i / 25 for i in range(FRAMES)], abs=1e-9)
    assert round(duration * 25) == FRAMES  # Label Studio's frame count: round(duration * fps)


def test_ntsc_rate_is_exact_in_mp4(tmp_path):
    path = tmp_path / 'ntsc.mp4'
    encode_frames((coded_image(i) for i in range(10)), path, Fraction(30000, 1001))
    assert probe(path).fps == pytest.approx(30000 / 1001)
    with av.open(str(path)) as container:
        assert [frame.pts * frame.time_base for frame in container.decode(video=0)] == [
            Fraction(1001 * i, 30000) for i in range(10)
        ]


def test_ms_clock_of_webm_stays_inside_label_studio_seek_step(tmp_path):
    """WebM rounds to 1 ms; Label Studio seeks 1-3 ms after a frame's exact time, so frames still land right."""
    path = tmp_path / 'thirty.webm'
    encode_frames((coded_image(i) for i in range(10)), path, 30, codec='vp9')
    with av.open(str(path)) as container:
        times = [float(frame.pts * frame.time_base) for frame in container.decode(video=0)]
    assert max(abs(t - i / 30) for i, t in enumerate(times)) <= 0.0005
    assert [read_code(image) for _, image in iter_frames(path, range(1, 11))] == list(range(10))


def test_sparse_request_maps_ui_frame_f_to_image_f_minus_1(video):
    path, _ = video
    got = [(ui, read_code(image)) for ui, image in iter_frames(path, [1, 2, 17, FRAMES])]
    assert got == [(1, 0), (2, 1), (17, 16), (FRAMES, FRAMES - 1)]


def test_request_is_consumed_lazily_and_decoding_stops_early(video):
    path, _ = video
    frames = iter_frames(path, iter([3]))
    assert read_code(next(frames)[1]) == 2
    assert next(frames, None) is None


def test_frame_past_the_end_raises_after_the_frames_that_exist(video):
    path, _ = video
    got = []
    with pytest.raises(ValueError, match=f'UI frame {FRAMES + 1} is past the end'):
        for ui, image in iter_frames(path, [FRAMES - 1, FRAMES + 1]):
            got.append((ui, read_code(image)))
    assert got == [(FRAMES - 1, FRAMES - 2)]


@pytest.mark.parametrize('request_', [[0], [5, 3], [2, 2]])
def test_requests_must_be_increasing_and_1_based(video, request_):
    with pytest.raises(ValueError, match='increasing and 1-based'):
        list(iter_frames(video[0], request_))


def test_empty_request_yields_nothing(video):
    assert list(iter_frames(video[0], [])) == []


@pytest.mark.parametrize('codec,size', [('h264', (66, 50)), ('vp9', (65, 49))])
def test_odd_sizes(tmp_path, codec, size):
    """H.264 pads odd sizes at the right/bottom by repeating the edge; VP9 keeps them."""
    green, white = (20, 200, 20), (250, 250, 250)
    images = []
    for i in range(6):
        image = coded_image(i, 65, 49)
        image[:45, 61:] = green  # edges wider than a chroma sample, outside the block centres
        image[45:] = white
        images.append(image)
    path = tmp_path / f'odd{CODECS[codec].suffix}'
    encode_frames(images, path, 25, codec=codec)
    info = probe(path)
    assert (info.width, info.height, info.frame_count) == (*size, 6)
    for ui, image in iter_frames(path, range(1, 7)):
        assert image.shape == (size[1], size[0], 3)
        assert read_code(image) == ui - 1
        assert interior_error(image, images[ui - 1][:32, :48])[0] < 1.5  # blocks away from the new edges
        assert np.abs(image[:43, size[0] - 1].astype(int) - green).max() <= 8  # padding repeats the edge
        assert np.abs(image[size[1] - 1].astype(int) - white).max() <= 8


@pytest.mark.parametrize('codec', sorted(CODECS))
def test_colours_survive(tmp_path, codec):
    """Saturated and skin colours come back within a few levels (every reader: test_colours.py)."""
    colours = [(255, 0, 0), (0, 255, 0), (0, 0, 255), (128, 128, 128), (224, 172, 105), (20, 20, 20)]
    image = np.zeros((48, 96, 3), np.uint8)
    for i, colour in enumerate(colours):
        image[:, i * 16 : (i + 1) * 16] = colour
    path = tmp_path / f'colours{CODECS[codec].suffix}'
    encode_frames([image] * 3, path, 25, codec=codec)
    _, decoded = next(iter_frames(path, [2]))
    for i, colour in enumerate(colours):
        mean = decoded[8:40, i * 16 + 4 : i * 16 + 12].reshape(-1, 3).mean(0)
        assert np.abs(mean - colour).max() <= 4, (colour, mean)


def test_failed_write_leaves_nothing_behind(tmp_path):
    path = tmp_path / 'broken.mp4'
    with pytest.raises(ValueError, match='expected'):
        with VideoWriter(path, 25) as writer:
            writer.write(coded_image(0))
            writer.write(coded_image(1, 32, 32))
    assert list(tmp_path.iterdir()) == []


def test_no_frames_is_an_error(tmp_path):
    with pytest.raises(ValueError, match='no frames'):
        encode_frames([], tmp_path / 'empty.mp4', 25)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    'image', [np.zeros((48, 64, 3), np.float32), np.zeros((48, 64), np.uint8), np.zeros((48, 64, 4), np.uint8)]
)
def test_writer_wants_rgb_uint8(tmp_path, image):
    with pytest.raises(ValueError, match='HxWx3 uint8'):
        encode_frames([image], tmp_path / 'x.mp4', 25)


def test_writer_replaces_an_existing_file_only_on_success(tmp_path):
    path = tmp_path / 'v.mp4'
    encode_frames([coded_image(7)] * 2, path, 25)
    with pytest.raises(ValueError):
        encode_frames([coded_image(1), np.zeros((2, 2), np.uint8)], path, 25)
    assert read_code(next(iter_frames(path, [1]))[1]) == 7
    encode_frames([coded_image(9)] * 3, path, 25)
    assert probe(path).frame_count == 3 and sorted(p.name for p in tmp_path.iterdir()) == ['v.mp4']


@pytest.mark.parametrize('kwargs', [{'codec': 'h265'}, {'fps': 0}])
def test_writer_rejects_bad_settings(tmp_path, kwargs):
    with pytest.raises(ValueError):
        VideoWriter(tmp_path / 'x.mp4', **{'fps': 25, **kwargs})


def test_probe_refuses_files_without_video(tmp_path):
    path = tmp_path / 'audio.mp4'
    with av.open(str(path), 'w') as container:
        stream = container.add_stream('aac', rate=8000)
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format='fltp', layout='mono')
        frame.sample_rate, frame.pts = 8000, 0
        container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    with pytest.raises(ValueError, match='no video stream'):
        probe(path)
    text = tmp_path / 'notes.mp4'
    text.write_text('not a video')
    with pytest.raises(av.FFmpegError):
        probe(text)


def test_encode_jpeg_keeps_rgb_order():
    data = encode_jpeg(coded_image(5), quality=95)
    assert data[:2] == b'\xff\xd8'
    decoded = cv2.cvtColor(cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
    assert read_code(decoded) == 5
    assert interior_error(decoded, coded_image(5))[0] < 1.5
