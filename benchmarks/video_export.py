"""Per-frame video export, end to end: our engine, our MOT export over HTTP, and Label Studio's own.

    .venv/bin/python benchmarks/video_export.py            # 50 videos x 20 tracks x 3000 frames
    .venv/bin/python benchmarks/video_export.py --quick    # 5 x 5 x 600

It builds a realistic project in a throw-away Label Studio data directory (our settings, SQLite): one
uploaded H.264 video per task (640x360, copies of one generated file), one annotation per task with
20 tracks keyframed every 10-50 frames, some disabled spans and rotations (benchmarks/video_engine.py's
generator). Then, side by side in one run:

- `ours: engine`: `iter_expanded` over every stored sequence (peak = tracemalloc peak of the Python heap);
- `ours: MOT writer`: the MOT writer into a byte-counting sink, in process;
- `ours: MOT over HTTP`, on a fifth of the videos and then on all: `GET /api/projects/<id>/export/
  video-frames?format=MOT` against a real `label-studio start` server, timed from request to last byte
  (database read, video probing, expansion, formatting, zip, HTTP); peak = the server's resident memory
  (sampled every 10 ms) above what it held after a warm-up export; both rows alike = flat memory;
- `LS: extract_key_frames`: the SDK function Label Studio's JSON export uses with `interpolate_key_frames`,
  on the first `--ls-videos` videos (it is slow; boxes/s does not depend on how many are used);
- `LS: JSON export over HTTP`: Label Studio's own `GET export?exportType=JSON&interpolate_key_frames=1`
  on the same first videos, for the whole-path comparison (its memory grows with the export).

The ratio column is boxes/s over `extract_key_frames`' boxes/s.
"""

from __future__ import annotations

import argparse
import importlib.util
import io
import json
import os
import shutil
import sys
import tempfile
import threading
import time
import urllib.request
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / 'benchmarks')]

import video_engine  # noqa: E402  (benchmarks/video_engine.py: workload generator and in-process stages)

FPS = video_engine.FPS
WIDTH, HEIGHT = 640, 360


def _load(path: Path, name: str):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


server_support = _load(REPO / 'tests' / 'support' / 'server.py', 'ls_ext_bench_server')


# ---------------------------------------------------------------- the project


def make_video(path: Path, frames: int) -> None:
    import numpy as np

    from ls_extensions.video.frames import VideoWriter

    with VideoWriter(path, FPS) as writer:
        for index in range(frames):
            writer.write(np.full((HEIGHT, WIDTH, 3), (index * 7) % 256, np.uint8))


def build_project(data_dir: Path, videos: int, tracks: int, frames: int, workload):
    """User, project, uploaded videos, tasks and annotations in `data_dir`'s database; returns (project id, token)."""
    os.environ['DJANGO_SETTINGS_MODULE'] = 'settings.offline'
    os.environ['LABEL_STUDIO_BASE_DATA_DIR'] = str(data_dir)
    import django

    django.setup()
    from data_import.models import FileUpload
    from django.conf import settings
    from django.db import connections
    from organizations.models import Organization
    from projects.models import Project
    from rest_framework.authtoken.models import Token
    from tasks.models import Annotation, Task
    from users.models import User

    user = User.objects.create_user(email='bench@example.org', password='bench-pass-123', username='bench')
    organization = Organization.create_organization(created_by=user, title='bench')
    user.active_organization = organization
    user.save(update_fields=['active_organization'])
    organization.jwt.legacy_api_tokens_enabled = True  # the benchmark's HTTP client uses the user's token
    organization.jwt.save()
    config = (REPO / 'tests' / 'label_configs.py').read_text()
    label_config = config.split('VIDEO_TRACKING = """', 1)[1].split('"""', 1)[0].replace('fish', 'car')
    project = Project.objects.create(
        title='bench', created_by=user, organization=organization, label_config=label_config
    )
    folder = Path(settings.MEDIA_ROOT, settings.UPLOAD_DIR, str(project.id))
    folder.mkdir(parents=True, exist_ok=True)
    source = folder / 'source.mp4'
    make_video(source, frames)
    uploads, tasks = [], []
    for track_set in workload:
        name = f'{settings.UPLOAD_DIR}/{project.id}/cam{track_set.task_id:03d}.mp4'
        shutil.copyfile(source, Path(settings.MEDIA_ROOT, name))
        uploads.append(FileUpload(user=user, project=project, file=name))
        tasks.append(Task(project=project, data={'video': f'/data/{name}'}))
    source.unlink()
    FileUpload.objects.bulk_create(uploads)
    tasks = Task.objects.bulk_create(tasks)
    annotations = []
    for task, track_set in zip(tasks, workload, strict=True):
        results = [
            {
                'id': f'r{track.track_id}',
                'from_name': 'box',
                'to_name': 'video',
                'type': 'videorectangle',
                'value': {
                    'sequence': track.sequence,
                    'labels': ['car'],
                    'framesCount': frames,
                    'duration': frames / FPS,
                },
            }
            for track in track_set.tracks
        ]
        annotations.append(Annotation(task=task, project=project, completed_by=user, result=results))
    Annotation.objects.bulk_create(annotations)
    Task.objects.filter(project=project).update(is_labeled=True, total_annotations=1)
    token, _ = Token.objects.get_or_create(user=user)
    project_id, key = project.id, token.key
    connections.close_all()
    return project_id, key, [task.id for task in tasks]


# ---------------------------------------------------------------- measuring a server


class RssSampler:
    """Resident memory of a process, sampled in a thread: `peak` since `start()`."""

    def __init__(self, pid: int, every: float = 0.01):
        self.path = Path(f'/proc/{pid}/status')
        self.every = every
        self.peak = self.baseline = 0
        self._stop = threading.Event()

    def rss(self) -> int:
        for line in self.path.read_text().splitlines():
            if line.startswith('VmRSS:'):
                return int(line.split()[1]) * 1024
        return 0

    def _run(self):
        while not self._stop.is_set():
            self.peak = max(self.peak, self.rss())
            time.sleep(self.every)

    def __enter__(self):
        self.baseline = self.peak = self.rss()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self.rss())


def fetch(url: str, token: str, sink) -> tuple[int, float]:
    """Stream a GET into `sink`; (bytes, seconds from request to last byte)."""
    request = urllib.request.Request(url, headers={'Authorization': f'Token {token}'})
    started = time.perf_counter()
    size = 0
    with urllib.request.urlopen(request, timeout=3600) as response:
        while chunk := response.read(1 << 16):
            size += len(chunk)
            sink.write(chunk)
    return size, time.perf_counter() - started


def http_stage(server, url: str, token: str, boxes_of, baseline: int) -> tuple[int, float, float, int]:
    """(boxes, seconds, peak RSS over `baseline` in MiB, download bytes)."""
    with tempfile.TemporaryFile() as body, RssSampler(server.process.pid) as memory:
        size, seconds = fetch(url, token, body)
        body.seek(0)
        boxes = boxes_of(body)
    return boxes, seconds, (memory.peak - baseline) / 2**20, size


def mot_boxes(body) -> int:
    return json.loads(zipfile.ZipFile(body).read('summary.json'))['boxes']


def ls_json_boxes(body) -> int:
    tasks = json.load(io.TextIOWrapper(body, encoding='utf-8'))
    return sum(
        len(result['value']['sequence'])
        for task in tasks
        for annotation in task['annotations']
        for result in annotation['result']
    )


# ---------------------------------------------------------------- main


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--quick', action='store_true', help='5 videos x 5 tracks x 600 frames')
    parser.add_argument('--ls-videos', type=int, default=5, help='videos given to Label Studio (slow)')
    parser.add_argument('--keep', action='store_true', help='keep the data directory')
    args = parser.parse_args()
    videos, tracks, frames = (5, 5, 600) if args.quick else (50, 20, 3000)
    ls_videos = min(args.ls_videos, videos)
    workload = video_engine.make_workload(videos, tracks, frames)
    work = Path(tempfile.mkdtemp(prefix='ls-ext-bench-'))
    print(f'workload: {videos} videos x {tracks} tracks x {frames} frames; Label Studio stages on {ls_videos} videos')
    try:
        template = server_support.migrated_database_in(work / 'template')
        data_dir = work / 'data'
        data_dir.mkdir()
        shutil.copy(template, data_dir / 'label_studio.sqlite3')
        started = time.perf_counter()
        project_id, token, task_ids = build_project(data_dir, videos, tracks, frames, workload)
        print(f'project built in {time.perf_counter() - started:.1f}s ({data_dir})')

        rows = [
            ('ours: engine (iter_expanded)', *video_engine.measure(video_engine.run_expand, workload), ''),
            ('ours: MOT writer -> sink', *video_engine.measure(video_engine.run_mot, workload), ''),
        ]
        env = {'DEBUG': 'false', 'LOG_LEVEL': 'WARNING'}
        with server_support.LabelStudioServer(data_dir, env=env) as server:
            base = f'{server.url}/api/projects/{project_id}'
            fetch(f'{base}/export/video-frames?format=MOT&ids={task_ids[0]}', token, io.BytesIO())  # warm up
            baseline = RssSampler(server.process.pid).rss()
            # the same export over a fifth of the videos first: its peak next to the full one's shows memory
            # does not grow with the export (server RSS above the warmed-up server's, both rows)
            fifth = max(1, videos // 5)
            subset = ','.join(str(task_id) for task_id in task_ids[:fifth])
            for label, query in ((f'{fifth} videos', f'&ids={subset}'), (f'{videos} videos', '')):
                url = f'{base}/export/video-frames?format=MOT{query}'
                boxes, seconds, grown, size = http_stage(server, url, token, mot_boxes, baseline)
                note = f'server RSS over warmed-up; {size / 2**20:.1f} MiB zip'
                rows.append((f'ours: MOT over HTTP, {label}', boxes, seconds, grown, note))
            ls_rows = [
                (
                    'LS: extract_key_frames',
                    *video_engine.measure(video_engine.run_label_studio, workload[:ls_videos]),
                    '',
                )
            ]
            ids = ''.join(f'&ids[]={task_id}' for task_id in task_ids[:ls_videos])
            url = f'{base}/export?exportType=JSON&interpolate_key_frames=1&download_all_tasks=1{ids}'
            before = RssSampler(server.process.pid).rss()
            boxes, seconds, grown, size = http_stage(server, url, token, ls_json_boxes, before)
            note = f'server RSS growth; {size / 2**20:.1f} MiB JSON'
            ls_rows.append((f'LS: JSON export over HTTP, {ls_videos} videos', boxes, seconds, grown, note))
        rows += ls_rows
        ls_rate = ls_rows[0][1] / ls_rows[0][2]
        print(f'{"stage":<34} {"boxes":>10} {"seconds":>8} {"boxes/s":>11} {"x LS":>6} {"peak MiB":>9}  note')
        for name, boxes, seconds, peak, note in rows:
            rate = boxes / seconds
            print(f'{name:<34} {boxes:>10,} {seconds:>8.2f} {rate:>11,.0f} {rate / ls_rate:>6.1f} {peak:>9.1f}  {note}')
    finally:
        if args.keep:
            print(f'kept {work}')
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == '__main__':
    main()
