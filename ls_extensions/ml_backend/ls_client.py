"""The few Label Studio API calls the model server makes (images, annotations), with its token.

Tokens: the legacy token that ``/setup`` hands over (``Authorization: Token ...``; Label Studio
1.23 accepts it only where legacy tokens are enabled), or a personal access token (a JWT refresh
token, e.g. from ``LABEL_STUDIO_API_KEY``) exchanged at ``/api/token/refresh`` for ``Bearer`` access.
"""

import threading
from urllib.parse import urljoin, urlsplit

import requests


class LabelStudioError(RuntimeError):
    pass


def _is_jwt(token):
    return token is not None and token.count('.') == 2


class LabelStudioClient:
    def __init__(self, url, token=None, timeout=30.0):
        if not url:
            raise LabelStudioError('Label Studio URL unknown: call /setup first or pass --ls-url')
        self.url = url.rstrip('/') + '/'
        self.token = token
        self.timeout = timeout
        self._session = requests.Session()
        self._access = None
        self._lock = threading.Lock()

    @property
    def netloc(self):
        return urlsplit(self.url).netloc.lower()

    def owns(self, url):
        return urlsplit(url).netloc.lower() == self.netloc

    def _auth_header(self, refresh=False):
        if not self.token:
            return {}
        if not _is_jwt(self.token):
            return {'Authorization': f'Token {self.token}'}
        with self._lock:
            if self._access is None or refresh:
                r = self._session.post(
                    urljoin(self.url, 'api/token/refresh'), json={'refresh': self.token}, timeout=self.timeout
                )
                if r.status_code != 200:
                    raise LabelStudioError(f'personal access token refused by Label Studio ({r.status_code})')
                self._access = r.json()['access']
            return {'Authorization': f'Bearer {self._access}'}

    def get(self, path_or_url, **kwargs):
        url = path_or_url if '://' in path_or_url else urljoin(self.url, path_or_url.lstrip('/'))
        if not self.owns(url):
            raise LabelStudioError(f'refusing to send the Label Studio token to {url}')
        r = self._session.get(url, headers=self._auth_header(), timeout=self.timeout, **kwargs)
        if r.status_code == 401 and _is_jwt(self.token):
            r = self._session.get(url, headers=self._auth_header(refresh=True), timeout=self.timeout, **kwargs)
        if r.status_code == 401:
            raise LabelStudioError(
                f'Label Studio refused the token (401) for {urlsplit(url).path}: enable legacy tokens for the '
                'organization (or LABEL_STUDIO_ENABLE_LEGACY_API_TOKEN) or give the server a personal access '
                'token (LABEL_STUDIO_API_KEY)'
            )
        if r.status_code >= 400:
            raise LabelStudioError(f'Label Studio answered {r.status_code} for {urlsplit(url).path}')
        return r

    def annotated_tasks(self, project_id):
        """Every task of the project with its annotations (Label Studio's JSON export)."""
        r = self.get(f'api/projects/{int(project_id)}/export', params={'exportType': 'JSON'})
        return r.json()
