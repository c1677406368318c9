"""The model server's protocol handlers: /health, /setup, /predict, /webhook, /train, /versions, /training, /job_status, /rollback, /metrics.

Each handler takes the checked request ``Body`` (``http_input``) and returns the JSON answer (with a
status when not 200); ``ROUTES`` maps method and path to them. ``/predict`` answers image tasks here
and video tasks through ``video_predict`` (tracks of ``videorectangle`` keyframes), each failing task
with its own ``error``. The project context /setup leaves
(label config, hostname, token) is kept here too, with ``label_studio_for`` deciding where Label
Studio calls go.
"""

import logging
import uuid
from collections import Counter

from ls_extensions.ml_backend.http_input import Body, HttpError, tasks_of
from ls_extensions.ml_backend.images import ImageError, ImageLoader
from ls_extensions.ml_backend.labels import (
    LabelConfigError,
    LabelMap,
    image_prediction,
    parse_controls,
)
from ls_extensions.ml_backend.ls_client import LabelStudioClient, LabelStudioError, is_http_url
from ls_extensions.ml_backend.registry import RegistryError
from ls_extensions.ml_backend.training import DatasetSources, now_utc
from ls_extensions.ml_backend.video_dataset import sampling_from_options
from ls_extensions.ml_backend.video_predict import VideoError, VideoLoader, VideoOptions, predict_video

logger = logging.getLogger('ls_extensions.ml_backend')

ANNOTATION_EVENTS = {'ANNOTATION_CREATED', 'ANNOTATION_UPDATED', 'ANNOTATIONS_CREATED', 'ANNOTATIONS_DELETED'}


def project_id_of(value):
    """Label Studio sends ``"<id>.<created_ts>"`` (predict/setup), an int, or a project dict (webhooks)."""
    if isinstance(value, dict):
        value = value.get('id')
    if value is None:
        return None
    try:
        return int(str(value).split('.', 1)[0])
    except ValueError:
        return None


class ProtocolHandlers:
    """The handlers of ``ModelServer`` (``lifecycle``), which holds the model, registry, trainer and counters."""

    # -- project context
    def training_sources(self, project_id, label_config, frame_store):
        """(Label Studio client or None, the `DatasetSources` a training job of the project reads)."""
        ctx = self.projects.get(project_id, {})
        xml = label_config or ctx.get('label_config')
        if not xml:
            raise LabelStudioError(f'project {project_id} is unknown: connect it in Label Studio (calls /setup) first')
        controls = parse_controls(xml)
        client = self.label_studio_for(project_id)
        max_bytes = VideoOptions.from_settings(self.options, None).max_bytes
        sources = DatasetSources(
            controls,
            ImageLoader(client, self.allowed_hosts),
            VideoLoader(client, self.allowed_hosts, max_bytes),
            frame_store,
            sampling_from_options(self.options),
        )
        return client, sources

    def label_studio_for(self, project_id):
        """The one place that decides where Label Studio calls (images, annotations) go, with which token.

        - ``--ls-url`` configured: there, with ``LABEL_STUDIO_API_KEY`` or else the token /setup handed over.
        - else, only with ``--trust-setup-hostname``: the hostname of that project's /setup, with the token
          of the same /setup body only (the configured key never goes to a host a request named).
        - else: None; Label Studio paths fail with a message naming the options, nothing is sent.
        """
        ctx = self.projects.get(project_id, {})
        if self.ls_url:
            return LabelStudioClient(self.ls_url, self.ls_token or ctx.get('access_token'))
        if self.trust_setup_hostname and ctx.get('hostname'):
            return LabelStudioClient(ctx['hostname'], ctx.get('access_token'))
        return None

    # -- protocol handlers
    def health(self, _body):
        return {
            'status': 'UP',
            'model_class': self.adapter_cls.__name__,
            'model_version': self.version,
            'training': self.trainer.status()['state'],
        }

    def setup(self, body):
        project_id = project_id_of(body.object_or_id('project'))
        schema = body.text('schema', 'label_config')
        hostname, token = body.text('hostname'), body.text('access_token')
        if hostname is not None and not is_http_url(hostname):
            raise HttpError(400, f'"hostname" must be an http(s) URL, not {hostname[:100]!r}')
        try:
            controls = parse_controls(schema)
        except LabelConfigError as exc:
            raise HttpError(400, str(exc)) from None
        if controls.image is None and controls.video is None:
            raise HttpError(400, controls.video_error)
        maps = {}
        for kind, control in (('video_labels', controls.video), ('labels', controls.image)):
            if control is None:
                continue
            maps[kind] = label_map = LabelMap(self.adapter.classes, control)
            if not label_map.to_label:
                raise HttpError(
                    400,
                    f'none of the labels {control.labels} matches a model class '
                    f'({", ".join(self.adapter.classes[:20])}); name the labels after the classes or set predicted_values',
                )
        if project_id is not None:
            self.projects[project_id] = {'label_config': schema, 'hostname': hostname, 'access_token': token}
            client = self.label_studio_for(project_id)
            if client is not None:  # a refused token fails /setup: Label Studio shows the reason, not only a log
                client.check_token()
        answer = {'model_version': self.version, 'labels': maps.get('labels', label_map).describe()}
        if controls.image is not None and controls.video is not None:
            answer['video_labels'] = maps['video_labels'].describe()
        if controls.video_error:
            answer['warnings'] = [controls.video_error]
        return answer

    def predict(self, body):
        tasks = tasks_of(body, 'tasks')
        project_id = project_id_of(body.object_or_id('project'))
        try:
            controls = parse_controls(
                body.text('label_config') or self.projects.get(project_id, {}).get('label_config')
            )
        except LabelConfigError as exc:
            raise HttpError(400, str(exc)) from None
        control = controls.image
        with self._predict_lock:
            adapter, version = self.adapter, self.version
        label_map = LabelMap(adapter.classes, control) if control is not None else None
        loader = ImageLoader(self.label_studio_for(project_id), self.allowed_hosts)
        videos = [i for i, task in enumerate(tasks) if controls.is_video_task(task.object('data'))]
        images = [i for i in range(len(tasks)) if i not in set(videos)]

        def load(task):
            try:
                return loader.load(task.object('data').get(control.value_key)), None
            except ImageError as exc:
                return None, str(exc)
            except Exception as exc:  # noqa: BLE001 - one task's image never fails the whole request
                logger.exception('reading the image of task %s failed', task.get('id'))
                return None, f'cannot read the image: {exc.__class__.__name__}'

        loaded = dict(zip(images, self._pool.map(load, [tasks[i] for i in images]), strict=True))
        results = [None] * len(tasks)
        ok = [i for i in images if loaded[i][0] is not None]
        for i in images:
            if loaded[i][1] is not None:
                results[i] = {'task': tasks[i].get('id'), 'error': loaded[i][1]}
        for start in range(0, len(ok), self.batch_size):
            chunk = ok[start : start + self.batch_size]
            per_image = self._detect(adapter, [loaded[i][0] for i in chunk])
            for i, dets in zip(chunk, per_image, strict=True):
                if isinstance(dets, Exception):
                    results[i] = {'task': tasks[i].get('id'), 'error': f'model failed: {dets}'}
                    continue
                results[i] = self._to_prediction(dets, loaded[i][0].shape, control, label_map, version)
        dropped = Counter(label_map.dropped if label_map is not None else {})
        if videos:
            dropped.update(
                self._predict_videos(body, [tasks[i] for i in videos], controls, adapter, version, results, videos)
            )
        errors = [r for r in results if 'error' in r]
        self.stats.update(tasks=len(tasks), failed_tasks=len(errors))
        self.dropped.update(dropped)
        return {
            'results': results,
            'model_version': version,
            'errors': errors,
            'dropped_unmapped': dict(dropped),
        }

    def _detect(self, adapter, images):
        """The adapter's detections on a batch of images, one list (or the Exception it raised) per image:
        a batch that fails is retried one by one, so one bad image fails alone."""
        try:
            return adapter.predict(images, score_threshold=self.score_threshold)
        except Exception:  # noqa: BLE001 - isolate the image that breaks the batch
            logger.exception('batch prediction failed; retrying one by one')
            per_image = []
            for image in images:
                try:
                    per_image.append(adapter.predict([image], score_threshold=self.score_threshold)[0])
                except Exception as exc:  # noqa: BLE001
                    per_image.append(exc)
            return per_image

    def _predict_videos(self, body, tasks, controls, adapter, version, results, indices):
        """Each video task's track prediction (or its error) into ``results[indices]``; the dropped classes."""
        label_map = LabelMap(adapter.classes, controls.video) if controls.video is not None else None
        try:
            options = VideoOptions.from_settings(self.options, body.object('params'))
        except ValueError as exc:
            raise HttpError(400, str(exc)) from None
        loader = VideoLoader(
            self.label_studio_for(project_id_of(body.object_or_id('project'))), self.allowed_hosts, options.max_bytes
        )

        def detect(images):
            per_image = self._detect(adapter, images)
            failed = next((d for d in per_image if isinstance(d, Exception)), None)
            if failed is not None:
                raise VideoError(f'model failed: {failed}')
            return per_image

        for i, task in zip(indices, tasks, strict=True):
            if controls.video is None:
                results[i] = {'task': task.get('id'), 'error': controls.video_error}
                continue
            key = uuid.uuid4().hex
            entry = self.predicting[key] = {
                'task': task.get('id'),
                'frames_done': 0,
                'frames': None,
                'since': now_utc(),
            }

            def progress(done, frames, entry=entry):
                entry.update(frames_done=done, frames=frames)

            try:
                results[i] = predict_video(
                    task,
                    controls.video,
                    loader,
                    detect,
                    label_map,
                    options=options,
                    batch_size=self.batch_size,
                    score_threshold=self.score_threshold,
                    version=version,
                    progress=progress,
                )
            except VideoError as exc:
                results[i] = {'task': task.get('id'), 'error': str(exc)}
            except Exception as exc:  # noqa: BLE001 - one video never fails the whole request
                logger.exception('predicting the video of task %s failed', task.get('id'))
                results[i] = {'task': task.get('id'), 'error': f'cannot predict the video: {exc.__class__.__name__}'}
            finally:
                self.predicting.pop(key, None)
        return label_map.dropped if label_map is not None else {}

    def _to_prediction(self, detections, shape, control, label_map, version):
        return image_prediction(detections, shape, control, label_map, version, self.score_threshold)

    def webhook(self, body):
        action = body.text('action')
        project = body.object_or_id('project')
        project_id = project_id_of(project)
        label_config = project.text('label_config') if isinstance(project, Body) else None
        if action == 'START_TRAINING':
            if project_id is None:
                raise HttpError(400, 'START_TRAINING without a project id')
            return self.trainer.request(project_id, 'START_TRAINING', label_config=label_config), 201
        if action in ANNOTATION_EVENTS:
            self._events[project_id] += 1
            if self.train_every and project_id is not None and self._events[project_id] % self.train_every == 0:
                return self.trainer.request(project_id, f'{self.train_every} annotation events', label_config), 201
            return {'status': 'counted', 'events': self._events[project_id]}, 200
        return {'status': 'ignored', 'action': action}, 200

    def train(self, body):
        """Legacy ``/train``: the annotated tasks come in the request."""
        tasks = tasks_of(body, 'annotations')
        project_id = project_id_of(body.object_or_id('project'))
        return self.trainer.request(project_id, 'train', body.text('label_config'), tasks=tasks), 201

    def versions(self, _body):
        return {
            'versions': [m['version'] for m in self.registry.versions()],
            'current': self.version,
            'details': self.registry.versions(),
        }

    def training(self, _body):
        """The trainer's state, the served version, and the videos being predicted now (frames done of all)."""
        return {
            **self.trainer.status(),
            'model_version': self.version,
            'metrics': self.current_meta.get('metrics'),
            'predicting': [dict(entry) for entry in list(self.predicting.values())],
        }

    def job_status(self, body):
        job_id = body.scalar('job')
        if job_id is None:
            raise HttpError(400, '"job" is required (the id /train or /webhook answered)')
        job = self.trainer.find(str(job_id))
        if job is None:
            raise HttpError(404, f'unknown job {str(job_id)[:100]!r}')
        return job

    def do_rollback(self, body):
        try:
            meta = self.rollback(body.text('version'))
        except RegistryError as exc:
            raise HttpError(400, str(exc)) from None
        return {'model_version': meta['version']}

    def metrics(self, _body):
        return {
            'requests': dict(self.stats),
            'dropped_unmapped': dict(self.dropped),
            'annotation_events': {str(k): v for k, v in self._events.items()},
            'model_version': self.version,
        }

    ROUTES = {
        ('GET', '/'): 'health',
        ('GET', '/health'): 'health',
        ('POST', '/setup'): 'setup',
        ('POST', '/predict'): 'predict',
        ('POST', '/webhook'): 'webhook',
        ('POST', '/train'): 'train',
        ('GET', '/versions'): 'versions',
        ('GET', '/training'): 'training',
        ('POST', '/job_status'): 'job_status',
        ('POST', '/rollback'): 'do_rollback',
        ('GET', '/metrics'): 'metrics',
    }
