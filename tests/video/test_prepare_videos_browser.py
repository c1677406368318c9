"""Chromium shows camera files the way probe's browser model says, and prepared files frame-exactly.

The probe's verdict rests on a model of the player: Label Studio seeks UI frame f to its
``goToFrame`` time and the browser shows the last frame at or before it (the first one before it
starts, a positive first timestamp kept). Here headless Chromium seeks a ``<video>`` to those times,
draws each frame on a canvas and the frame index is read back from its coloured blocks: for the
camera files it must match the model frame by frame, and for the files ``prepare_existing_videos``
wrote, UI frame f must show what our decoder reads as decoded frame f - 1. The files are served from loopback with HTTP
range requests, as Label Studio serves uploads (Chromium cannot seek in a response without them).
"""

import base64
import functools
import re
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest
from playwright.sync_api import sync_playwright

from ls_extensions.video.conform import prepare_existing_videos
from ls_extensions.video.probe import check_alignment
from tests.browser.walk import launch
from tests.video.browser_seek import SHOW_AT
from tests.video.camera_files import write_camera_file
from tests.video.test_prepare import codes, read_code
from tests.video.test_prepare_videos import FPS, SOURCES
from tests.video.test_probe import lsf_seek, shown_by_browser

pytestmark = pytest.mark.browser

# Seeks a fresh <video> of `src` to each time and returns each presented frame's RGB bytes (base64).
READ_AT = (
    """
async ([src, times]) => {
  const showAt = """
    + SHOW_AT
    + """;
  const video = document.createElement('video');
  video.muted = true;
  video.preload = 'auto';
  const failed = new Promise((_, reject) => { video.onerror = () => reject(new Error('video error ' + video.error.code)); });
  video.src = src;
  await Promise.race([new Promise(ok => video.addEventListener('loadeddata', ok, {once: true})), failed]);
  const canvas = document.createElement('canvas');
  canvas.width = video.videoWidth;
  canvas.height = video.videoHeight;
  const context = canvas.getContext('2d');
  const frames = [];
  for (const time of times) {
    await showAt(video, time, failed);
    context.drawImage(video, 0, 0);
    const rgba = context.getImageData(0, 0, canvas.width, canvas.height).data;
    let text = '';
    for (let i = 0; i < rgba.length; i += 4) text += String.fromCharCode(rgba[i], rgba[i + 1], rgba[i + 2]);
    frames.push(btoa(text));
  }
  return {width: canvas.width, height: canvas.height, frames};
}
"""
)


class RangeRequests(SimpleHTTPRequestHandler):
    """Static files with single ``bytes=a-b`` ranges (what Chromium asks a video for)."""

    def do_GET(self):
        path = self.translate_path(self.path)
        match = re.fullmatch(r'bytes=(\d+)-(\d*)', self.headers.get('Range', ''))
        if not match:
            return super().do_GET()
        with open(path, 'rb') as handle:
            data = handle.read()
        start, end = int(match[1]), int(match[2]) if match[2] else len(data) - 1
        self.send_response(206)
        self.send_header('Content-Type', 'video/mp4')
        self.send_header('Content-Range', f'bytes {start}-{end}/{len(data)}')
        self.send_header('Content-Length', str(end - start + 1))
        self.end_headers()
        self.wfile.write(data[start : end + 1])

    def end_headers(self):
        self.send_header('Accept-Ranges', 'bytes')
        super().end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def served(tmp_path):
    server = ThreadingHTTPServer(('127.0.0.1', 0), functools.partial(RangeRequests, directory=str(tmp_path)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f'http://127.0.0.1:{server.server_port}'
    finally:
        server.shutdown()
        thread.join()
        server.server_close()


def shown_frames(page, url, times):
    result = page.evaluate(READ_AT, [url, times])
    shape = result['height'], result['width'], 3
    return [read_code(np.frombuffer(base64.b64decode(frame), np.uint8).reshape(shape)) for frame in result['frames']]


def test_chromium_agrees_with_the_probe_and_shows_prepared_files_frame_exactly(tmp_path, served):
    cameras = tmp_path / 'cameras'
    cameras.mkdir()
    names = [name for name in SOURCES if not name.endswith('.ts')]
    for name in names:
        times, _, options = SOURCES[name]
        write_camera_file(cameras / name, times, **options)
    write_camera_file(cameras / 'cam.ts', SOURCES['site/cam.ts'][0], container='mpegts')
    records = {r.video: r for r in prepare_existing_videos([cameras], tmp_path / 'out', FPS)}

    with sync_playwright() as playwright:
        browser = launch(playwright)
        page = browser.new_page()
        page.goto(served + '/')
        for name in names:
            times = [float(t) for t in SOURCES[name][0]]
            _, verdict = check_alignment(cameras / name, FPS)
            seeks = [lsf_seek(f, FPS) for f in range(1, verdict.ui_length + 1)]
            chromium = shown_frames(page, f'{served}/cameras/{name}', seeks)
            assert chromium == [shown_by_browser(times, seek) for seek in seeks], name  # the model holds
            wrong = sum(shown != f - 1 for f, shown in enumerate(chromium, start=1))
            assert verdict.misaligned_ui_frames == wrong, name

            record = records[name]
            seeks = [lsf_seek(f, FPS) for f in range(1, record.frame_count + 1)]
            decoded = codes(tmp_path / 'out' / record.video)  # what decoded frame f - 1 carries, in order
            assert len(decoded) == record.frame_count
            assert shown_frames(page, f'{served}/out/{record.video}', seeks) == decoded, name
        with pytest.raises(Exception, match='video error 4'):  # MEDIA_ERR_SRC_NOT_SUPPORTED: the verdict's reason
            shown_frames(page, f'{served}/cameras/cam.ts', [0.002])
        browser.close()
    assert records['cam.mp4'].reasons[0] == 'h264 in a mpegts file does not play in common browsers.'
