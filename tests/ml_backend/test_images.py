"""Image sources against a stand-in Label Studio on loopback: uploads and local-files with the token,
plain URLs only on allowed hosts, personal access tokens exchanged for Bearer access tokens."""

import io
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest
from PIL import Image

from ls_extensions.ml_backend.images import ImageError, ImageLoader
from ls_extensions.ml_backend.ls_client import LabelStudioClient

PAT = 'header.payload.signature'


def _png():
    buffer = io.BytesIO()
    Image.fromarray(np.full((6, 8, 3), 200, np.uint8)).save(buffer, format='PNG')
    return buffer.getvalue()


@pytest.fixture
def fake_ls():
    seen = []

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def _send(self, code, body, kind='image/png'):
            self.send_response(code)
            self.send_header('Content-Type', kind)
            self.send_header('Content-Length', str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_POST(self):
            body = json.loads(self.rfile.read(int(self.headers['Content-Length'])))
            seen.append(('POST', self.path, body))
            if self.path == '/api/token/refresh' and body == {'refresh': PAT}:
                return self._send(200, json.dumps({'access': 'access-1'}).encode(), 'application/json')
            return self._send(401, b'{}', 'application/json')

        def do_GET(self):
            auth = self.headers.get('Authorization')
            seen.append(('GET', self.path, auth))
            if self.path.startswith('/public/'):
                return self._send(200, _png())
            if auth not in ('Token legacy-1', 'Bearer access-1'):
                return self._send(401, b'{}', 'application/json')
            if self.path in ('/data/upload/1/a.png', '/data/local-files/?d=images/b.png'):
                return self._send(200, _png())
            if self.path == '/data/upload/1/text.png':
                return self._send(200, b'not an image')
            return self._send(404, b'{}', 'application/json')

    server = ThreadingHTTPServer(('127.0.0.1', 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f'http://127.0.0.1:{server.server_address[1]}', seen
    server.shutdown()
    server.server_close()


def test_label_studio_uploads_and_local_files_with_the_legacy_token(fake_ls):
    url, seen = fake_ls
    loader = ImageLoader(LabelStudioClient(url, 'legacy-1'))
    assert loader.load('/data/upload/1/a.png').shape == (6, 8, 3)
    assert loader.load('/data/local-files/?d=images/b.png').shape == (6, 8, 3)
    assert loader.load(url + '/data/upload/1/a.png').shape == (6, 8, 3)  # absolute URL of Label Studio itself
    assert all(auth == 'Token legacy-1' for _, _, auth in seen)
    with pytest.raises(ImageError, match='404'):
        loader.load('/data/upload/1/missing.png')
    with pytest.raises(ImageError, match='not a readable image'):
        loader.load('/data/upload/1/text.png')


def test_refused_token_is_explained(fake_ls):
    url, _ = fake_ls
    with pytest.raises(ImageError, match='legacy tokens'):
        ImageLoader(LabelStudioClient(url, 'wrong')).load('/data/upload/1/a.png')


def test_personal_access_token_is_exchanged_for_an_access_token(fake_ls):
    url, seen = fake_ls
    loader = ImageLoader(LabelStudioClient(url, PAT))
    assert loader.load('/data/upload/1/a.png').shape == (6, 8, 3)
    assert ('POST', '/api/token/refresh', {'refresh': PAT}) in seen
    assert seen[-1] == ('GET', '/data/upload/1/a.png', 'Bearer access-1')


def test_plain_urls_only_from_allowed_hosts_and_never_with_the_token(fake_ls):
    url, seen = fake_ls
    port = url.rsplit(':', 1)[1]
    other = f'http://localhost:{port}/public/c.png'  # another host name: not Label Studio
    with pytest.raises(ImageError, match='not allowed'):
        ImageLoader(LabelStudioClient(url, 'legacy-1')).load(other)
    loader = ImageLoader(LabelStudioClient(url, 'legacy-1'), allowed_hosts=f'localhost:{port}')
    assert loader.load(other).shape == (6, 8, 3)
    assert seen[-1] == ('GET', '/public/c.png', None)
