"""Chromium shows videos made by frames_to_video in the source images' colours.

Real parts end to end: JPEG frames go through ``manage.py frames_to_video --project`` into a real Label
Studio server; Chromium opens each task's labeling page; the page's own ``<video>`` (first frame, as the
annotator sees it) and a second ``<video>`` of the same URL (seeked to every frame, P-frames included)
are drawn onto a canvas, read back with ``getImageData`` and compared with the source JPEGs as the
product reads them. Debian's Chromium (156) decodes H.264 as well as VP9: its bundled FFmpeg has the
proprietary codecs (canPlayType is checked before anything is measured).
"""

import base64
import subprocess
import sys

import cv2
import numpy as np
import pytest
from playwright.sync_api import sync_playwright

from ls_extensions.video.prepare import read_image
from tests.browser.walk import signed_in
from tests.support.server import REPO, LabelStudioServer, migrated_database
from tests.video.browser_seek import SHOW_AT
from tests.video.test_colours import FRAMES, PALETTE, SIZES, TOLERANCE, palette_image, worst_errors

pytestmark = pytest.mark.browser

FPS = 25
PIXEL_NOISE = 8  # per pixel: compression noise plus Chromium's own chroma upsampling; colours use TOLERANCE
CODEC_TYPES = {'h264': 'video/mp4; codecs="avc1.640016"', 'vp9': 'video/webm; codecs="vp09.00.10.08"'}

# Draws a video element onto a canvas of the video's own size and returns its RGB bytes, base64.
READ_PIXELS = """
(video) => {
  const canvas = document.createElement('canvas');
  canvas.width = video.videoWidth;
  canvas.height = video.videoHeight;
  const context = canvas.getContext('2d');
  context.drawImage(video, 0, 0);
  const rgba = context.getImageData(0, 0, canvas.width, canvas.height).data;
  let text = '';
  for (let i = 0; i < rgba.length; i += 4) text += String.fromCharCode(rgba[i], rgba[i + 1], rgba[i + 2]);
  return {width: canvas.width, height: canvas.height, rgb: btoa(text)};
}
"""
# The labeling UI's own <video>, once it shows a frame: one synchronous turn finds the element, checks
# it and reads it, so Label Studio re-mounting its <video> while the page settles cannot come in between.
READ_SHOWN = (
    """
() => {
  const video = document.querySelector('video');
  const showing = video && video.readyState >= 2 && !video.seeking && video.videoWidth > 0;
  return showing && [("""
    + READ_PIXELS
    + """)(video), video.currentSrc];
}
"""
)
# Loads the labeling page's video URL into a second element and reads each frame at its centre time,
# with the frame Chromium says it presented (mediaTime * fps).
READ_FRAMES = (
    """
async ([src, fps, frames]) => {
  const read = """
    + READ_PIXELS
    + """;
  const video = document.createElement('video');
  video.muted = true;
  video.preload = 'auto';
  const failed = new Promise((_, reject) => { video.onerror = () => reject(new Error('video error ' + video.error.code)); });
  video.src = src;
  await Promise.race([new Promise(ok => video.addEventListener('loadeddata', ok, {once: true})), failed]);
  const showAt = """
    + SHOW_AT
    + """;
  const images = [];
  for (let i = 0; i < frames; i++) {
    const shownTime = await showAt(video, (i + 0.5) / fps, failed);
    images.push({...read(video), frame: Math.round(shownTime * fps)});
  }
  return images;
}
"""
)


def decode(result):
    rgb = np.frombuffer(base64.b64decode(result['rgb']), np.uint8)
    return rgb.reshape(result['height'], result['width'], 3)


@pytest.fixture(scope='module')
def template_db(tmp_path_factory):
    return migrated_database(tmp_path_factory)


def write_sources(root):
    """One folder of JPEG frames per size; returns {folder: [source RGB as the product reads it]}."""
    sources = {}
    for size, (width, height) in SIZES.items():
        folder = root / size
        folder.mkdir(parents=True)
        for shift in range(FRAMES):
            image = palette_image(width, height, shift)
            cv2.imwrite(str(folder / f'img{shift}.jpg'), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
        sources[size] = [read_image(folder / f'img{shift}.jpg') for shift in range(FRAMES)]
    return sources


def prepare(server, tmp_path, codec, project_id, email):
    command = [
        sys.executable,
        str(REPO / 'manage.py'),
        'frames_to_video',
        str(tmp_path / 'src'),
        '--out',
        str(tmp_path / f'videos-{codec}'),
        '--fps',
        str(FPS),
        '--codec',
        codec,
        '--project',
        str(project_id),
        '--user',
        email,
        '--labels',
        'fish',
    ]
    result = subprocess.run(command, env=server.env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert f'{len(SIZES)} task(s) created' in result.stdout, result.stdout


def test_chromium_shows_prepared_videos_in_the_source_colours(tmp_path, template_db):
    sources = write_sources(tmp_path / 'src')
    email = 'colours@example.org'
    measured = {}
    with LabelStudioServer(tmp_path / 'data', template_db) as server, sync_playwright() as pw:
        browser, page, record = signed_in(pw, server.url, email)
        playable = page.evaluate(
            '(types) => types.map(t => document.createElement("video").canPlayType(t))', list(CODEC_TYPES.values())
        )
        assert playable == ['probably'] * len(CODEC_TYPES), playable  # Debian's build plays both
        csrf = next(c['value'] for c in page.context.cookies() if c['name'] == 'csrftoken')
        tasks = []
        for codec in CODEC_TYPES:  # one project per codec: a project holds one task per source folder
            created = page.request.post(
                server.url + '/api/projects', data={'title': codec}, headers={'X-CSRFToken': csrf}
            )
            assert created.status == 201, created.text()
            project_id = created.json()['id']
            prepare(server, tmp_path, codec, project_id, email)
            listed = page.request.get(f'{server.url}/api/tasks?project={project_id}&page_size=100').json()['tasks']
            tasks += [(project_id, task) for task in listed]
        assert len(tasks) == len(SIZES) * len(CODEC_TYPES)
        for project_id, task in tasks:
            url = task['data']['video']
            codec = 'vp9' if url.endswith('.webm') else 'h264'
            size = next(size for size in SIZES if f'{size}.' in url.rsplit('/', 1)[-1])
            page.goto(f'{server.url}/projects/{project_id}/data?task={task["id"]}', wait_until='domcontentloaded')
            shown = page.wait_for_function(READ_SHOWN, timeout=60_000).json_value()
            read = page.evaluate(READ_FRAMES, [shown[1], FPS, FRAMES])
            assert [r['frame'] for r in read] == list(range(FRAMES)), (codec, size)  # each seek presented its frame
            frames = [decode(r) for r in read]
            shown = decode(shown[0])  # the labeling UI's own element, at frame 1
            width, height = SIZES[size]
            if codec == 'h264':  # padded to even sizes by repeating the last row and column
                width, height = width + width % 2, height + height % 2
            assert [image.shape[:2] for image in [shown, *frames]] == [(height, width)] * (1 + FRAMES)
            measured[codec, size, 'ui'] = worst_errors([shown], sources[size][:1])
            measured[codec, size, 'seeked'] = worst_errors(frames, sources[size])
        browser.close()
    assert record.external_requests == []
    assert len(measured) == 2 * len(SIZES) * len(CODEC_TYPES)
    for key, worst in measured.items():
        assert set(worst) == set(PALETTE), key
        assert max(colour for colour, _ in worst.values()) <= TOLERANCE, (key, worst)
        assert max(pixel for _, pixel in worst.values()) <= PIXEL_NOISE, (key, worst)
