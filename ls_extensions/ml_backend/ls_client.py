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


def is_http_url(url):
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises for a malformed port
    except (ValueError, TypeError, AttributeError):
        return False
    return parts.scheme in ('http', 'https') and bool(parts.hostname)


def _is_jwt(token):
    return token is not None and token.count('.') == 2


MAX_REDIRECTS = 5


def refusal(status, token):
    """What a user reads when Label Studio refuses the model server's token: the cause and both cures.

    Under 300 characters: Label Studio shows it from the reason phrase of the model server's answer."""
    if not token:
        return (
            f'Label Studio answered {status}: the model server has no Label Studio token; start it with '
            'LABEL_STUDIO_API_KEY=<personal access token>'
        )
    kind = 'personal access token' if _is_jwt(token) else 'legacy token'
    return (
        f"Label Studio refused the model server's {kind} ({status}): it cannot read images or annotations. "
        'Enable legacy tokens (Organization > API Tokens Settings > Legacy Tokens) or start the model server '
        'with LABEL_STUDIO_API_KEY=<personal access token>'
    )


class LabelStudioClient:
    """Sends its token to its own ``url``'s host and nowhere else (redirects to other hosts included).

    Which ``url`` a project gets is decided by the server (``ModelServer.label_studio_for``)."""

    def __init__(self, url, token=None, timeout=30.0):
        if not url:
            raise LabelStudioError('Label Studio URL unknown: start the server with --ls-url')
        if not is_http_url(url):
            raise LabelStudioError(f'Label Studio URL must be http(s)://host[:port], not {str(url)[:100]!r}')
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

    def _auth_header(self, refresh=False, timeout=None):
        if not self.token:
            return {}
        if not _is_jwt(self.token):
            return {'Authorization': f'Token {self.token}'}
        with self._lock:
            if self._access is None or refresh:
                r = self._session.post(
                    urljoin(self.url, 'api/token/refresh'),
                    json={'refresh': self.token},
                    timeout=self.timeout if timeout is None else timeout,
                    allow_redirects=False,  # the body carries the token: never re-sent elsewhere
                )
                if r.status_code != 200:
                    raise LabelStudioError(f'personal access token refused by Label Studio ({r.status_code})')
                self._access = r.json()['access']
            return {'Authorization': f'Bearer {self._access}'}

    def get(self, path_or_url, **kwargs):
        """GET with the token. A redirect within Label Studio is followed; one to another host is
        returned as is (``is_redirect``), for the caller to fetch without the token if it may."""
        url = path_or_url if '://' in path_or_url else urljoin(self.url, path_or_url.lstrip('/'))
        for _ in range(MAX_REDIRECTS + 1):
            if not self.owns(url):
                raise LabelStudioError(f'refusing to send the Label Studio token to {url}')
            r = self._get_once(url, **kwargs)
            if not r.is_redirect:
                break
            location = urljoin(url, r.headers.get('location', ''))
            if not self.owns(location):
                return r
            url = location
        else:
            raise LabelStudioError(f'Label Studio redirected more than {MAX_REDIRECTS} times for {urlsplit(url).path}')
        return self._checked(r, url)

    def _get_once(self, url, **kwargs):
        kwargs['allow_redirects'] = False  # every hop goes through owns() above
        r = self._session.get(url, headers=self._auth_header(), timeout=self.timeout, **kwargs)
        if r.status_code == 401 and _is_jwt(self.token):
            r = self._session.get(url, headers=self._auth_header(refresh=True), timeout=self.timeout, **kwargs)
        return r

    def check_token(self, timeout=2.0):
        """Raise LabelStudioError when Label Studio refuses this token (401/403), so that ``/setup`` fails and
        Label Studio shows why (on connect, and as the model's Error state). Label Studio not answering in
        ``timeout`` is not decided here: the reads themselves report it, task by task."""
        url = urljoin(self.url, 'api/current-user/whoami')
        try:
            r = self._session.get(
                url, headers=self._auth_header(timeout=timeout), timeout=timeout, allow_redirects=False
            )
            if r.status_code == 401 and _is_jwt(self.token):
                headers = self._auth_header(refresh=True, timeout=timeout)
                r = self._session.get(url, headers=headers, timeout=timeout, allow_redirects=False)
        except requests.RequestException:
            return None
        except LabelStudioError as exc:  # the personal access token's refresh: refused, or Label Studio failing
            if '(401)' in str(exc) or '(403)' in str(exc):
                raise LabelStudioError(refusal(401, self.token)) from None
            return None
        if r.status_code in (401, 403):
            raise LabelStudioError(refusal(r.status_code, self.token))
        return r.status_code

    def _checked(self, r, url):
        if r.status_code == 401:
            raise LabelStudioError(f'{refusal(401, self.token)} (reading {urlsplit(url).path})')
        if r.status_code >= 400:
            raise LabelStudioError(f'Label Studio answered {r.status_code} for {urlsplit(url).path}')
        return r

    def annotated_tasks(self, project_id):
        """Every task of the project with its annotations (Label Studio's JSON export)."""
        r = self.get(f'api/projects/{int(project_id)}/export', params={'exportType': 'JSON'})
        if r.is_redirect:
            raise LabelStudioError(f'Label Studio redirected the export to another host ({r.headers.get("location")})')
        try:
            return r.json()
        except ValueError:
            raise LabelStudioError('Label Studio export is not JSON') from None
