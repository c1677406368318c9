"""Model versions on disk: ``<root>/versions/<version>/{checkpoint.pth,meta.json}`` and ``<root>/CURRENT``.

Version names are ``<name>.v<N>`` (N grows, never reused). ``v0`` is the model the server was
started with; it references the user's checkpoint file instead of copying it. The last ``keep``
trained versions are kept (plus v0 and whatever is current); ``rollback`` serves an older one.
"""

import json
import os
import shutil
import tempfile
import threading
import time
from pathlib import Path


class RegistryError(RuntimeError):
    pass


def _atomic_write(path, text):
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix='.tmp-')
    with os.fdopen(fd, 'w') as f:
        f.write(text)
    os.replace(tmp, path)


class ModelRegistry:
    def __init__(self, root, name='model', keep=3):
        self.root = Path(root)
        self.name = name
        self.keep = max(1, int(keep))
        self.versions_dir = self.root / 'versions'
        self.versions_dir.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()

    # -- reading
    def known(self):
        """Names of the stored versions (directories holding a meta.json), oldest number first."""
        return [m['version'] for m in self.versions()]

    def _meta(self, version):
        """A stored version's metadata. ``version`` must be the name of one (never a path: ``../x``,
        ``/abs``, NUL), so a request cannot make the server read or serve anything outside the registry."""
        names = {d.name for d in self.versions_dir.iterdir() if d.is_dir()}
        if not isinstance(version, str) or version not in names:
            shown = repr(version)[:100]
            known = ', '.join(self.known()) or 'none'
            raise RegistryError(f'unknown model version {shown} (known versions: {known})')
        path = self.versions_dir / version / 'meta.json'
        if not path.is_file():
            raise RegistryError(f'unknown model version {version!r} (known versions: {", ".join(self.known())})')
        return json.loads(path.read_text())

    def versions(self):
        """Metadata of every stored version, oldest first."""
        metas = []
        for d in self.versions_dir.iterdir():
            if d.is_dir() and (d / 'meta.json').is_file():
                metas.append(json.loads((d / 'meta.json').read_text()))
        return sorted(metas, key=lambda m: m['number'])

    def current_version(self):
        path = self.root / 'CURRENT'
        return path.read_text().strip() if path.is_file() else None

    def current(self):
        version = self.current_version()
        return self._meta(version) if version else None

    def get(self, version):
        return self._meta(version)

    def checkpoint(self, version):
        meta = self._meta(version)
        if meta.get('checkpoint') is None:
            return None
        path = Path(meta['checkpoint'])
        return path if path.is_absolute() else self.versions_dir / version / path

    # -- writing
    def _next_number(self):
        numbers = [m['number'] for m in self.versions()]
        counter = self.root / 'COUNTER'
        if counter.is_file():
            numbers.append(int(counter.read_text()))
        return max(numbers) + 1 if numbers else 0

    def register(self, checkpoint, meta=None, copy=True, make_current=True):
        """Store a checkpoint as the next version; returns its metadata. ``copy=False`` only references it."""
        with self._lock:
            number = self._next_number()
            version = f'{self.name}.v{number}'
            target = self.versions_dir / version
            target.mkdir(parents=True)
            if checkpoint is None:
                stored = None
            elif copy:
                shutil.copy2(checkpoint, target / 'checkpoint.pth')
                stored = 'checkpoint.pth'
            else:
                stored = str(Path(checkpoint).resolve())
            record = {
                **(meta or {}),
                'version': version,
                'number': number,
                'checkpoint': stored,
                'created_at': time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime()),
            }
            _atomic_write(target / 'meta.json', json.dumps(record, indent=2, default=str))
            _atomic_write(self.root / 'COUNTER', str(number))
            if make_current:
                self.set_current(version)
            self.prune()
            return record

    def set_current(self, version):
        with self._lock:
            self._meta(version)  # exists
            _atomic_write(self.root / 'CURRENT', version)

    def rollback(self, version=None):
        """Serve ``version``, or the newest version older than the current one."""
        with self._lock:
            if version is None:
                current = self.current()
                older = [m for m in self.versions() if current is None or m['number'] < current['number']]
                if not older:
                    raise RegistryError('no older version to roll back to')
                version = older[-1]['version']
            self.set_current(version)
            return self._meta(version)

    def prune(self):
        with self._lock:
            current = self.current_version()
            trained = [m for m in self.versions() if m['number'] > 0]
            for meta in trained[: max(0, len(trained) - self.keep)]:
                if meta['version'] != current:
                    shutil.rmtree(self.versions_dir / meta['version'], ignore_errors=True)
