"""A Label Studio API client for tests that drive a live server with a token, and image bytes to upload."""

import io

import requests
from PIL import Image


class TokenApi:
    """Calls ``base + path`` with ``Token`` auth; asserts the status is expected and returns the JSON."""

    def __init__(self, base, token, expect=(200, 201), timeout=120):
        self.base, self.expect, self.timeout = base, expect, timeout
        self.session = requests.Session()
        self.session.headers['Authorization'] = f'Token {token}'

    def __call__(self, method, path, expect=None, **kwargs):
        response = self.session.request(method, self.base + path, timeout=self.timeout, **kwargs)
        assert response.status_code in (expect or self.expect), (path, response.status_code, response.text[:800])
        return response.json() if response.content else None


def png_bytes(array):
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format='PNG')
    return buffer.getvalue()
