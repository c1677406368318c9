"""Background training: one job at a time, one more queued, progress and metrics readable at any time.

A job pulls the project's annotations (Label Studio's export API), its images and the chosen frames of
its annotated videos (`video_dataset`), fine-tunes the served model through its adapter, measures
mAP@0.5 on a held-out split by task before and after (when there are enough samples), and serves the
new checkpoint as a new version only when training succeeded and, measured on the same held-out tasks, it
is not worse than the served version beyond the gate's tolerance (else the job is ``rejected``).
"""

import hashlib
import itertools
import logging
import math
import shutil
import threading
import time
import traceback
from collections import Counter, deque
from dataclasses import dataclass

import numpy as np

from ls_extensions.ml_backend.adapters.base import Sample
from ls_extensions.ml_backend.images import NO_LABEL_STUDIO, ImageError, ImageLoader
from ls_extensions.ml_backend.labels import LabelControls, LabelMap
from ls_extensions.ml_backend.ls_client import LabelStudioError
from ls_extensions.ml_backend.metrics import mean_average_precision
from ls_extensions.ml_backend.video_dataset import FrameStore, video_samples
from ls_extensions.ml_backend.video_predict import VideoError, VideoLoader
from ls_extensions.video.frame_sampling import FrameSampling

logger = logging.getLogger(__name__)

_ids = itertools.count(1)


def now_utc():
    return time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())


def percent_box_to_pixels(value, width, height):
    """Label Studio's percent rectangle (rotation in degrees around its top-left corner) -> xyxy pixels."""
    x, y = value['x'] * width / 100.0, value['y'] * height / 100.0
    w, h = value['width'] * width / 100.0, value['height'] * height / 100.0
    angle = math.radians(value.get('rotation') or 0)
    if angle:
        c, s = math.cos(angle), math.sin(angle)
        corners = [(x + dx * c - dy * s, y + dx * s + dy * c) for dx, dy in ((0, 0), (w, 0), (w, h), (0, h))]
        xs, ys = [p[0] for p in corners], [p[1] for p in corners]
        x1, y1, x2, y2 = min(xs), min(ys), max(xs), max(ys)
    else:
        x1, y1, x2, y2 = x, y, x + w, y + h
    return (
        float(np.clip(x1, 0, width)),
        float(np.clip(y1, 0, height)),
        float(np.clip(x2, 0, width)),
        float(np.clip(y2, 0, height)),
    )


def _number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def box_value(region):
    """``(label, value)`` of a well-formed rectangle region, else None (a string or NaN where a number
    belongs, from a hand-written /train body or an odd import, is dropped and counted, never raised)."""
    value = region.get('value')
    if not isinstance(value, dict):
        return None
    if not all(_number(value.get(k)) for k in ('x', 'y', 'width', 'height')):
        return None
    if value.get('rotation') is not None and not _number(value['rotation']):
        return None
    names = value.get('rectanglelabels')
    if not isinstance(names, list):
        return None
    return (names[0] if names and isinstance(names[0], str) else None), value


def latest_annotation(task):
    annotations = [a for a in task.get('annotations') or [] if isinstance(a, dict) and not a.get('was_cancelled')]
    if not annotations:
        return None

    def rank(a):
        number = a.get('id') if _number(a.get('id')) else 0
        return bool(a.get('ground_truth')), str(a.get('updated_at') or ''), number

    return max(annotations, key=rank)


def _image_sample(task, annotation, control, label_map, loader, stats, dropped_labels):
    """The sample of one annotated image task; ImageError when its image cannot be read."""
    result = annotation.get('result')
    regions = [
        r
        for r in (result if isinstance(result, list) else [])
        if isinstance(r, dict) and r.get('type') == 'rectanglelabels' and r.get('from_name') == control.from_name
    ]
    data = task.get('data')
    image = loader.load(data.get(control.value_key) if isinstance(data, dict) else None)
    height, width = image.shape[:2]
    boxes, labels = [], []
    for region in regions:
        box = box_value(region)
        if box is None:
            stats['malformed_regions'] += 1
            continue
        name, value = box
        k = label_map.class_for(name) if name is not None else None
        if k is None:
            dropped_labels[name if name is not None else '<none>'] += 1
            continue
        x1, y1, x2, y2 = percent_box_to_pixels(value, width, height)
        if x2 - x1 < 1 or y2 - y1 < 1:
            stats['degenerate_boxes'] += 1
            continue
        boxes.append((x1, y1, x2, y2))
        labels.append(k)
    stats['boxes'] += len(boxes)
    return Sample(image=image, boxes=boxes, labels=labels, key=str(task.get('id')))


@dataclass
class DatasetSources:
    """Where a job's samples come from: the config's controls, the image and video readers, the frame
    store for chosen video frames and the rule that chooses them (`video_dataset`)."""

    controls: LabelControls
    images: ImageLoader
    videos: VideoLoader
    frame_store: FrameStore
    sampling: FrameSampling


def build_dataset(tasks, sources, model_classes, progress=None):
    """Samples from exported tasks (images, and the chosen frames of videos); stats say what was used and
    what was dropped, and why. A task that cannot be read is counted with its reason, the others go on."""
    controls = sources.controls
    maps = {kind: LabelMap(model_classes, c) for kind, c in (('image', controls.image), ('video', controls.video)) if c}
    stats, dropped_labels, errors, samples = Counter(), Counter(), [], []
    for done, task in enumerate(tasks, start=1):
        if progress is not None:
            progress({'tasks_read': done - 1, 'tasks': len(tasks)})
        annotation = latest_annotation(task)
        if annotation is None:
            stats['tasks_without_annotations'] += 1
            continue
        video = controls.is_video_task(task.get('data'))
        try:
            if video:
                if controls.video is None:
                    raise VideoError(controls.video_error or 'the label config has no VideoRectangle')
                found = video_samples(
                    task,
                    annotation,
                    controls.video,
                    maps['video'],
                    sources.videos,
                    sources.frame_store,
                    sources.sampling,
                    stats,
                    dropped_labels,
                )
                samples.extend(found)
                stats['annotated_videos'] += 1
            else:
                if controls.image is None:
                    raise ImageError('the label config has no RectangleLabels on an Image')
                samples.append(
                    _image_sample(
                        task, annotation, controls.image, maps['image'], sources.images, stats, dropped_labels
                    )
                )
                stats['annotated_tasks'] += 1
        except (ImageError, VideoError) as exc:
            stats['unreadable_videos' if video else 'unreadable_images'] += 1
            errors.append({'task': task.get('id'), 'error': str(exc)})
    if progress is not None:
        progress({'tasks_read': len(tasks), 'tasks': len(tasks)})
    if sources.frame_store.frames:
        stats['frame_store_mb'] = round(sources.frame_store.bytes / 2**20, 1)
    return samples, {**stats, 'dropped_labels': dict(dropped_labels), 'errors': errors[:20]}


def held_out(group, fraction):
    """True when task ``group`` belongs to the held-out set: every k-th task id (k = 1 / fraction), a rule of
    the id alone, so a task stays on its side as the project grows and successive versions are measured on
    the same tasks plus the new ones that fall in. A group that is no integer id is placed by its hash."""
    step = max(2, round(1 / fraction))
    text = str(group)
    number = int(text) if text.isdigit() else int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], 'big')
    return number % step == step - 1


def split(samples, min_eval, fraction):
    """Held-out split once there are ``min_eval`` samples: a task is held out, with all its samples (an image,
    or every chosen frame of a video: never frames of one video on both sides), when :func:`held_out` says
    so, whatever else the project holds. Nothing is held out while that would leave nothing to train on."""
    if len(samples) < min_eval:
        return samples, []
    ordered = sorted(samples, key=lambda s: (len(s.group), s.group))  # stable: a video's frames stay in order
    held = {s.group for s in ordered if held_out(s.group, fraction)}
    train = [s for s in ordered if s.group not in held]
    if not train:
        return samples, []
    return train, [s for s in ordered if s.group in held]


def evaluate(adapter, samples, batch_size=8):
    detections = []
    for i in range(0, len(samples), batch_size):
        batch = samples[i : i + batch_size]
        for dets in adapter.predict([s.image for s in batch], score_threshold=0.001):
            detections.append([d.as_tuple() for d in dets])
    gts = [(s.boxes, s.labels) for s in samples]
    result = mean_average_precision(detections, gts, len(adapter.classes))
    return round(result['mAP'], 4)


class Job(dict):
    """A plain dict (it is what the status endpoint returns) with an id."""


class Trainer:
    """One worker thread; ``request`` returns at once. Needs a server with ``adapter``, ``build_adapter``,
    ``registry``, ``serve(adapter, meta)`` and ``training_sources(project_id, label_config, frame_store)``."""

    def __init__(self, server, min_eval=10, eval_fraction=0.25, history=20, gate_tolerance=0.0):
        self.server = server
        self.gate_tolerance = gate_tolerance  # None: every version that trained is served
        self.min_eval = min_eval
        self.eval_fraction = eval_fraction
        self._cond = threading.Condition()
        self.running = None
        self.queued = None
        self.history = deque(maxlen=history)
        self._thread = None

    def request(self, project_id, source='START_TRAINING', label_config=None, tasks=None):
        with self._cond:
            if self.queued is not None:
                self.queued['merged_requests'] += 1
                return {'status': 'already_queued', 'job': self.queued['id']}
            job = Job(
                id=f'train-{int(time.time())}-{next(_ids)}',
                project=project_id,
                source=source,
                status='queued',
                created_at=now_utc(),
                merged_requests=0,
                progress={},
            )
            job._label_config = label_config
            job._tasks = tasks
            self.queued = job
            answer = 'queued' if self.running is not None else 'started'
            self._ensure_thread()
            self._cond.notify_all()
            return {'status': answer, 'job': job['id']}

    def _ensure_thread(self):
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(target=self._loop, name='ml-backend-trainer', daemon=True)
            self._thread.start()

    def _loop(self):
        while True:
            with self._cond:
                while self.queued is None:
                    self._cond.wait()
                job, self.queued = self.queued, None
                self.running = job
            try:
                self._run(job)
            except Exception as exc:  # noqa: BLE001 - a failed job is recorded, the worker lives on
                logger.exception('training job %s failed', job['id'])
                job.update(
                    status='failed', message=f'{exc.__class__.__name__}: {exc}', traceback=traceback.format_exc()
                )
            finally:
                job['finished_at'] = now_utc()
                job._tasks = None
                with self._cond:
                    self.history.appendleft(job)
                    self.running = None
                    self._cond.notify_all()

    def wait_idle(self, timeout=None):
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while self.running is not None or self.queued is not None:
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    return False
                self._cond.wait(left)
        return True

    def status(self):
        with self._cond:
            public = lambda j: {k: v for k, v in j.items()} if j else None  # noqa: E731
            return {
                'state': 'training' if self.running else 'idle',
                'running': public(self.running),
                'queued': public(self.queued),
                'history': [public(j) for j in self.history],
            }

    def find(self, job_id):
        with self._cond:
            for j in [self.running, self.queued, *self.history]:
                if j and j['id'] == job_id:
                    return dict(j)
        return None

    def _run(self, job):
        server = self.server
        started = time.monotonic()
        job.update(status='running', started_at=now_utc(), phase='fetching annotations')
        work_dir = server.registry.root / 'work' / job['id']
        try:
            self._train(job, work_dir, started)
        finally:
            shutil.rmtree(work_dir, ignore_errors=True)

    def _train(self, job, work_dir, started):
        server = self.server
        client, sources = server.training_sources(job['project'], job._label_config, FrameStore(work_dir / 'frames'))
        if job._tasks is not None:
            tasks = job._tasks
        elif client is None:
            raise LabelStudioError(f'cannot read the annotations of project {job["project"]}: {NO_LABEL_STUDIO}')
        else:
            tasks = client.annotated_tasks(job['project'])
        adapter, base_meta = server.adapter, server.current_meta
        job['phase'] = 'reading images and videos'

        def progress(p):  # of reading the tasks, then of training
            job['progress'] = {**p, 'elapsed_s': round(time.monotonic() - started, 1)}

        samples, stats = build_dataset(tasks, sources, adapter.classes, progress=progress)
        job['dataset'] = stats
        if stats.get('boxes', 0) == 0:
            job.update(status='noop', phase='done', message='no usable annotations: ' + _nothing_to_learn(tasks, stats))
            return
        train, val = split(samples, self.min_eval, self.eval_fraction)
        job.update(train_images=len(train), eval_images=len(val))
        if stats.get('annotated_videos'):
            job.update(train_videos=_videos(train), eval_videos=_videos(val))
        metrics = {}
        if val:
            job['phase'] = 'evaluating the served model'
            metrics['map_before'] = evaluate(adapter, val)
        job['phase'] = 'training'
        result = adapter.fit(train, work_dir, progress=progress)
        loss = result.metrics.get('loss')
        if loss is None or not math.isfinite(loss):
            raise RuntimeError(f'training diverged (loss={loss})')
        metrics.update(result.metrics)
        job['phase'] = 'loading the new checkpoint'
        new_adapter = server.build_adapter(result.checkpoint)
        if val:
            job['phase'] = 'evaluating the new model'
            metrics['map_after'] = evaluate(new_adapter, val)
        metrics['train_seconds'] = round(time.monotonic() - started, 2)
        refusal = gate_refusal(metrics, self.gate_tolerance)
        if refusal:
            job.update(status='rejected', phase='done', metrics=metrics, message=refusal)
            return
        meta = server.registry.register(
            result.checkpoint,
            meta={
                'parent': base_meta['version'] if base_meta else None,
                'job': job['id'],
                'project': job['project'],
                'metrics': metrics,
                'train_images': len(train),
                'eval_images': len(val),
                'config': str(server.config) if server.config else None,
            },
        )
        server.serve(new_adapter, meta)
        job.update(status='succeeded', phase='done', metrics=metrics, version=meta['version'])
        if not val:
            job['message'] = _no_held_out(train, self.min_eval, self.eval_fraction)


def gate_refusal(metrics, tolerance):
    """Why a new version must not be served (its held-out mAP below the served one's by more than
    ``tolerance``), or '' (served). Without a held-out mAP on both sides, or with the gate off, ''."""
    before, after = metrics.get('map_before'), metrics.get('map_after')
    if tolerance is None or before is None or after is None or after >= before - tolerance:
        return ''
    return (
        f"not served: held-out mAP@0.5 {after:.4f} is below the served version's {before:.4f} "
        f'by more than the gate tolerance {tolerance:g}; the served version stays'
    )


def _videos(samples):
    return len({s.group for s in samples if s.key != s.group})  # a video's frames are keyed task/frame


def _nothing_to_learn(tasks, stats):
    """Why a job found no box to learn from, from what building the dataset counted."""
    reasons = []
    if not tasks:
        reasons.append('the project has no tasks with annotations')
    if stats.get('unreadable_images'):
        reasons.append(f'{stats["unreadable_images"]} images could not be read')
    if stats.get('unreadable_videos'):
        reasons.append(f'{stats["unreadable_videos"]} videos could not be used')
    if stats.get('dropped_labels'):
        reasons.append(f'labels not known to the model: {stats["dropped_labels"]}')
    annotated = stats.get('annotated_tasks') or stats.get('annotated_videos')
    if annotated and not stats.get('dropped_labels'):
        reasons.append('the annotations contain no boxes')
    if stats.get('errors'):
        reasons.append(f'first error: task {stats["errors"][0]["task"]}: {stats["errors"][0]["error"]}')
    return '; '.join(reasons) or 'nothing to learn from'


def _no_held_out(train, min_eval, fraction):
    """The message of a job that trained without a held-out split, saying what the split needs."""
    if len(train) < min_eval:
        return f'trained on {len(train)} images; mAP needs at least {min_eval} annotated images'
    step = max(2, round(1 / fraction))
    return (
        f'trained on {len(train)} images and video frames of {len({s.group for s in train})} tasks; '
        f'mAP needs at least {step} annotated tasks (a held-out video is never trained on)'
    )
