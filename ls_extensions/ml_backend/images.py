"""Read a task's image: Label Studio uploads and local-files (with its token), data URIs, plain URLs
on allowed hosts. Anything else is refused with a message, never fetched."""

import base64
import io
from urllib.parse import urljoin, urlsplit

import numpy as np
import requests
from PIL import Image, UnidentifiedImageError

from ls_extensions.privacy import egress

MAX_BYTES = 64 * 1024 * 1024
NO_LABEL_STUDIO = (
    "the server does not know Label Studio's URL: start it with --ls-url (or LABEL_STUDIO_URL), "
    'or with --trust-setup-hostname to use the hostname Label Studio sends in /setup'
)


class ImageError(RuntimeError):
    pass


def decode(data):
    try:
        with Image.open(io.BytesIO(data)) as img:
            return np.asarray(img.convert('RGB'))
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise ImageError(f'not a readable image ({exc.__class__.__name__})') from None


class ImageLoader:
    """``load(url) -> HxWx3 uint8 RGB``; raises ImageError with a reason."""

    def __init__(self, client=None, allowed_hosts='', timeout=30.0):
        self.client = client  # LabelStudioClient or None
        self.rules = egress.parse_allow_list(allowed_hosts) if isinstance(allowed_hosts, str) else list(allowed_hosts)
        self.timeout = timeout

    def _allowed(self, url):
        parts = urlsplit(url)
        port = parts.port or (443 if parts.scheme == 'https' else 80)
        return any(rule.matches(parts.hostname or '', port) for rule in self.rules)

    def fetch(self, url, _hops=0):
        if not url or not isinstance(url, str):
            raise ImageError('task has no image URL')
        if url.startswith('data:'):
            try:
                return base64.b64decode(url.split(',', 1)[1])
            except (IndexError, ValueError):
                raise ImageError('malformed data URI') from None
        try:
            urlsplit(url).port  # noqa: B018 - raises for '[::1', ':99999', ...
        except ValueError:
            raise ImageError(f'malformed image URL {url[:200]!r}') from None
        ls_path = url.startswith('/data/') or url.startswith('data/')
        if ls_path or (self.client is not None and '://' in url and self.client.owns(url)):
            if self.client is None:
                raise ImageError(f'{url} is a Label Studio path but {NO_LABEL_STUDIO}')
            try:
                response = self.client.get(url, stream=True)
            except Exception as exc:  # noqa: BLE001 - any failure is this task's error
                raise ImageError(f'cannot read {url} from Label Studio: {exc}') from None
            if response.is_redirect:  # to another host (a cloud storage): fetched as a plain URL, no token
                if _hops >= 3:
                    raise ImageError(f'too many redirects for {url}')
                return self.fetch(urljoin(url, response.headers.get('location', '')), _hops + 1)
            return self._read(response, url)
        scheme = urlsplit(url).scheme
        if scheme not in ('http', 'https'):
            raise ImageError(f'unsupported image location {url!r} (only Label Studio files, http(s) and data URIs)')
        if not self._allowed(url):
            raise ImageError(f'host of {url} is not allowed (add it to --allowed-hosts)')
        try:
            response = requests.get(url, timeout=self.timeout, stream=True, allow_redirects=False)
        except (requests.RequestException, OSError, ValueError) as exc:  # refused, blocked, malformed
            raise ImageError(f'cannot fetch {url}: {exc.__class__.__name__}') from None
        if response.status_code >= 400 or response.is_redirect:
            raise ImageError(f'cannot fetch {url}: HTTP {response.status_code}')
        return self._read(response, url)

    def _read(self, response, url):
        chunks, size = [], 0
        for chunk in response.iter_content(1 << 16):
            size += len(chunk)
            if size > MAX_BYTES:
                raise ImageError(f'{url} is larger than {MAX_BYTES} bytes')
            chunks.append(chunk)
        return b''.join(chunks)

    def load(self, url):
        return decode(self.fetch(url))
