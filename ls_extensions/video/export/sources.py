"""Which local file a task's video URL names, if this project may read it: a security boundary.

`/data/upload/...` and `/data/local-files/?d=...` are resolved (symlinks too) and must stay inside their
roots, the organization's uploads and the project's local files storages; anything else is no file.
"""

from __future__ import annotations

import posixpath
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

from django.conf import settings

from .. import limits
from .errors import MalformedVideoUrl


def _inside(path: Path, root: Path) -> bool:
    try:
        path.relative_to(root)
    except ValueError:
        return False
    return True


def _strip_own_host(url: str) -> str:
    """`http://<HOSTNAME>/<FORCE_SCRIPT_NAME>/data/...` -> `/data/...`: this Label Studio's own URLs."""
    parts = urlsplit(url)
    hostname = urlsplit(settings.HOSTNAME or '').netloc
    if parts.scheme in ('http', 'https') and hostname and parts.netloc == hostname:
        url = url[len(f'{parts.scheme}://{parts.netloc}') :]
    prefix = (getattr(settings, 'FORCE_SCRIPT_NAME', None) or '').rstrip('/')
    if prefix and url.startswith(prefix + '/data/'):
        url = url[len(prefix) :]
    return url


def _url_problem(url: str) -> str | None:
    """Why no file can have this URL (too long, NUL or control characters, raw or %-encoded), or None."""
    if len(url) > limits.MAX_URL_CHARS:
        return f'it is longer than {limits.MAX_URL_CHARS} characters'
    for text in (url, unquote(url)):
        bad = next((char for char in text if ord(char) < 32 or ord(char) == 127), None)
        if bad is not None:
            return f'it contains the control character {bad!r}'
    return None


def resolve_video(project, url) -> Path | None:
    """The local file behind a task's video URL, or None when it is not one this project may read.

    `/data/upload/<...>`: a file uploaded to a project of the same organization, under
    MEDIA_ROOT/UPLOAD_DIR. `/data/local-files/?d=<path>`: a file under LOCAL_FILES_DOCUMENT_ROOT inside
    a local files storage of this project. Paths are resolved (symlinks too) before the containment
    checks, so `..` and links cannot leave the roots. Any other URL (cloud storage, web) -> None.
    A URL that no file can have (NUL byte, control characters, over-long) raises `MalformedVideoUrl`
    before it reaches the file system or the database (PostgreSQL refuses NUL in strings).
    """
    if not isinstance(url, str) or not url:
        return None
    url = _strip_own_host(url.strip())
    problem = _url_problem(url)
    if problem is not None:
        raise MalformedVideoUrl(f'its video URL is malformed: {problem}')
    parts = urlsplit(url)
    if parts.scheme or parts.netloc:
        return None
    try:
        if parts.path.startswith('/data/upload/'):
            return _upload_path(project, unquote(parts.path[len('/data/upload/') :]))
        if parts.path.rstrip('/') == '/data/local-files':
            relative = parse_qs(parts.query).get('d', [''])[0]
            return _local_file_path(project, relative)
    except (OSError, ValueError) as error:  # e.g. a path component longer than NAME_MAX
        raise MalformedVideoUrl(f'its video URL cannot name a file ({type(error).__name__}: {error})') from error
    return None


def _upload_path(project, relative: str) -> Path | None:
    from data_import.models import FileUpload

    relative = posixpath.normpath(relative).lstrip('/')
    if relative.startswith('..') or not relative or relative == '.':
        return None
    root = Path(settings.MEDIA_ROOT, settings.UPLOAD_DIR).resolve()
    path = (root / relative).resolve()
    if not _inside(path, root) or not path.is_file():
        return None
    name = f'{settings.UPLOAD_DIR}/{relative}'
    if not FileUpload.objects.filter(file=name, project__organization_id=project.organization_id).exists():
        return None
    return path


def _local_file_path(project, relative: str) -> Path | None:
    from io_storages.localfiles.models import LocalFilesImportStorage

    relative = posixpath.normpath(relative).lstrip('/')  # decoded once, as Label Studio's own view does
    if not relative or relative == '.':
        return None
    root = Path(settings.LOCAL_FILES_DOCUMENT_ROOT).resolve()
    path = (root / relative).resolve()
    if not _inside(path, root) or not path.is_file():
        return None
    for storage_path in LocalFilesImportStorage.objects.filter(project=project).values_list('path', flat=True):
        if storage_path and _inside(path, Path(storage_path).resolve()):
            return path
    return None
