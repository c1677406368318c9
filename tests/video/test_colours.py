"""Videos written by frames.VideoWriter decode to the source colours in every common reader.

Readers: ours (`frames.iter_frames`, which the exporter's frame images use), PyAV's plain
``to_ndarray(format='rgb24')`` (honours the tags), swscale's defaults with the tags stripped (what any
FFmpeg-based reader that ignores the tags does) and OpenCV's ``cv2.VideoCapture``. The browser is in
test_colours_browser.py. Colours: saturated primaries and secondaries, skin tones and greys, on tiles
large enough that 4:2:0 chroma and the codec's ringing at tile edges stay outside the measured centres.
"""

from pathlib import Path

import av
import cv2
import numpy as np
import pytest
from django.conf import settings

from ls_extensions.video.frames import CODECS, WRITTEN_COLOURS, ColourTags, encode_frames, iter_frames, probe

TILE, MARGIN, COLUMNS = 40, 10, 5
PALETTE = {
    'red': (255, 0, 0),
    'green': (0, 255, 0),
    'blue': (0, 0, 255),
    'yellow': (255, 255, 0),
    'cyan': (0, 255, 255),
    'magenta': (255, 0, 255),
    'light skin': (255, 219, 172),
    'medium skin': (224, 172, 105),
    'tan skin': (198, 134, 66),
    'dark skin': (141, 85, 36),
    'black': (0, 0, 0),
    'dark grey': (20, 20, 20),
    'grey': (128, 128, 128),
    'light grey': (235, 235, 235),
    'white': (255, 255, 255),
}
TOLERANCE = 3  # levels of 255 per channel: the colour of every tile (the mean over its centre)
# and every single pixel of it: compression noise, which the colour conversion does not cause, is within
# the tolerance too for H.264 (crf 12), not for VP9 (crf 15, realtime), whose pixels scatter further
PIXEL_NOISE = {'h264': TOLERANCE, 'vp9': 8}
SIZES = {'even': (200, 120), 'odd': (203, 121)}  # odd: H.264 pads to 204x122, tiles off the chroma grid
FRAMES = 4


def palette_image(width, height, shift=0):
    """Tiles of the palette, rotated by ``shift`` so that successive frames differ (P-frames carry colour)."""
    colours = list(PALETTE.values())
    image = np.zeros((height, width, 3), np.uint8)
    for index in range((height // TILE) * COLUMNS):
        row, col = divmod(index, COLUMNS)
        image[row * TILE : (row + 1) * TILE, col * TILE : (col + 1) * TILE] = colours[(index + shift) % len(colours)]
    return image


def colour_errors(decoded, source):
    """Per palette colour, over the centres of its tiles: the worst error of the mean colour and of a pixel."""
    worst = {}
    for row in range(source.shape[0] // TILE):
        for col in range(COLUMNS):
            y, x = row * TILE + MARGIN, col * TILE + MARGIN
            want = source[y : y + TILE - 2 * MARGIN, x : x + TILE - 2 * MARGIN].astype(int)
            got = decoded[y : y + TILE - 2 * MARGIN, x : x + TILE - 2 * MARGIN].astype(int)
            name = min(PALETTE, key=lambda name: np.abs(want.mean((0, 1)) - PALETTE[name]).sum())  # JPEG sources
            colour = float(np.abs(got.mean((0, 1)) - want.mean((0, 1))).max())
            pixel = int(np.abs(got - want).max())
            previous = worst.get(name, (0.0, 0))
            worst[name] = (max(previous[0], colour), max(previous[1], pixel))
    return worst


def read_ours(path):
    return [image for _, image in iter_frames(path, range(1, FRAMES + 1))]


def read_pyav_default(path):
    with av.open(str(path)) as container:
        return [frame.to_ndarray(format='rgb24') for frame in container.decode(video=0)]


def read_swscale_untagged(path):
    """swscale's own defaults, as for a reader that never looks at the tags."""
    images = []
    with av.open(str(path)) as container:
        for frame in container.decode(video=0):
            frame.colorspace, frame.color_range = 2, 0  # AVCOL_SPC_UNSPECIFIED, AVCOL_RANGE_UNSPECIFIED
            images.append(frame.to_ndarray(format='rgb24'))
    return images


def read_opencv(path):
    capture = cv2.VideoCapture(str(path))
    images = []
    try:
        while True:
            ok, bgr = capture.read()
            if not ok:
                return images
            images.append(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
    finally:
        capture.release()


READERS = {'ours': read_ours, 'pyav': read_pyav_default, 'swscale': read_swscale_untagged, 'opencv': read_opencv}


def worst_errors(images, sources):
    """``{colour name: (worst error of the tile colour, worst pixel error)}`` over all frames."""
    assert len(images) == len(sources)
    worst = {}
    for image, source in zip(images, sources, strict=True):
        for name, (colour, pixel) in colour_errors(image, source).items():
            previous = worst.get(name, (0.0, 0))
            worst[name] = (max(previous[0], colour), max(previous[1], pixel))
    return worst


def worst_colour(worst):
    return max(colour for colour, _ in worst.values())


def worst_pixel(worst):
    return max(pixel for _, pixel in worst.values())


@pytest.fixture(scope='module', params=[(codec, size) for codec in sorted(CODECS) for size in SIZES])
def written(request, tmp_path_factory):
    codec, size = request.param
    width, height = SIZES[size]
    sources = [palette_image(width, height, shift) for shift in range(FRAMES)]
    path = tmp_path_factory.mktemp('colours') / f'{size}{CODECS[codec].suffix}'
    assert encode_frames(sources, path, 25, codec=codec) == FRAMES
    return path, sources, codec


@pytest.mark.parametrize('reader', sorted(READERS))
def test_every_reader_gets_the_source_colours(written, reader):
    path, sources, codec = written
    worst = worst_errors(READERS[reader](path), sources)
    assert set(worst) == set(PALETTE)
    assert worst_colour(worst) <= TOLERANCE, worst
    assert worst_pixel(worst) <= PIXEL_NOISE[codec], worst


def test_written_videos_are_tagged_as_they_were_converted(written):
    """BT.601 matrix and limited range as converted; sRGB's primaries and transfer, the images' own."""
    path, _, _ = written
    assert WRITTEN_COLOURS == ColourTags(matrix='smpte170m', primaries='bt709', transfer='iec61966-2-1', range='tv')
    assert probe(path).colours == WRITTEN_COLOURS


def write_tagged(path, sources, matrix, colorspace, color_range):
    """A video converted with swscale's ``matrix`` and tagged with FFmpeg's ``colorspace`` and range codes
    (as cameras and other tools write them; 2 and 0 leave the matrix and range untagged)."""
    full = color_range == 2
    with av.open(str(path), 'w') as container:
        stream = container.add_stream('libx264', rate=25, options={'crf': '12', 'bf': '0'})
        stream.width, stream.height, stream.pix_fmt = sources[0].shape[1], sources[0].shape[0], 'yuv420p'
        stream.codec_context.colorspace, stream.codec_context.color_range = colorspace, color_range
        for index, source in enumerate(sources):
            frame = av.VideoFrame.from_ndarray(source, format='rgb24').reformat(
                format='yuv420p', dst_colorspace=matrix, dst_color_range='JPEG' if full else 'MPEG'
            )
            frame.pts = index
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))


@pytest.mark.parametrize(
    'matrix,colorspace,color_range',
    [('ITU709', 1, 1), ('ITU709', 1, 2), ('SMPTE170M', 6, 2), ('SMPTE170M', 2, 0), ('BT2020', 9, 1)],
    ids=['bt709-tv', 'bt709-pc', 'bt601-pc', 'untagged-as-bt601', 'bt2020-tv'],
)
def test_our_reader_decodes_other_files_with_their_tagged_matrix(tmp_path, matrix, colorspace, color_range):
    """Exported frame images keep the colours of any user video, not only of ours."""
    sources = [palette_image(*SIZES['even'], shift) for shift in range(FRAMES)]
    path = tmp_path / 'tagged.mp4'
    write_tagged(path, sources, matrix, colorspace, color_range)
    worst = worst_errors(read_ours(path), sources)
    assert worst_colour(worst) <= TOLERANCE and worst_pixel(worst) <= TOLERANCE, worst


def test_why_not_bt709_opencv_ignores_the_tag(tmp_path):
    """The alternative, BT.709 tagged BT.709: OpenCV decodes it with BT.601 anyway, saturated colours
    far off. (Our reader, honouring the tag, is right; this is the reason the writer uses BT.601.)"""
    sources = [palette_image(*SIZES['even'], shift) for shift in range(FRAMES)]
    path = tmp_path / 'bt709.mp4'
    write_tagged(path, sources, 'ITU709', 1, 1)
    assert worst_colour(worst_errors(read_ours(path), sources)) <= TOLERANCE
    opencv = worst_errors(read_opencv(path), sources)
    assert opencv['red'][0] > 15 and opencv['cyan'][0] > 15, opencv
    assert opencv['grey'][0] <= TOLERANCE  # greys carry no chroma: the matrix does not matter for them


def upload(project, user, name, write):
    """A video stored as a Label Studio upload of the project, written by ``write(path)``; returns its URL."""
    from data_import.models import FileUpload

    relative = f'{settings.UPLOAD_DIR}/{project.id}/abcd1234-{name}'
    path = Path(settings.MEDIA_ROOT, relative)
    path.parent.mkdir(parents=True, exist_ok=True)
    write(path)
    FileUpload.objects.create(user=user, project=project, file=relative)
    return f'/data/{relative}'


def test_exported_frame_images_keep_the_source_colours(client_owner, video_project, user):
    """The export's JPEGs (YOLO images) of our video and of a BT.709 camera-style file, read with OpenCV."""
    from tests.video.test_export_api import add_task, body, export, kf, track, unzip

    sources = [palette_image(*SIZES['even'], shift) for shift in range(FRAMES)]  # write_tagged: even sizes
    ours = upload(video_project, user, 'ours.mp4', lambda path: encode_frames(sources, path, 25))
    camera = upload(video_project, user, 'camera.mp4', lambda path: write_tagged(path, sources, 'ITU709', 1, 1))
    for url in (ours, camera):
        add_task(video_project, user, url, [track([kf(1), kf(FRAMES, False)], frames_count=FRAMES)])
    files = unzip(body(export(client_owner, video_project, format='YOLO')))
    for stem in ('abcd1234-ours', 'abcd1234-camera'):
        images = [files[f'images/{stem}/{frame:06d}.jpg'] for frame in range(1, FRAMES + 1)]
        decoded = [
            cv2.cvtColor(cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
            for data in images
        ]
        worst = worst_errors([image[: sources[0].shape[0], : sources[0].shape[1]] for image in decoded], sources)
        assert worst_colour(worst) <= TOLERANCE, (stem, worst)  # JPEG's own loss included
