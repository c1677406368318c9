"""The default adapter: any MMDetection 3.x detector, given its config file and (optionally) weights.

- Configs are loaded by path and must be whole (``_base_ = 'mmdet::...'`` needs ``pkg_resources``,
  absent beside Label Studio); ``configs/tiny_rtmdet.py`` is one.
- No weights are ever downloaded: ``init_cfg`` pretrained entries are dropped; without a
  checkpoint the model starts from the config's initialization.
- Checkpoints load with ``torch.load(weights_only=True)``. Full mmengine Runner checkpoints (which
  pickle a ``HistoryBuffer``) are refused with a hint: slim them once with
  ``python -m ls_extensions.ml_backend.adapters.mmdet_adapter slim IN.pth OUT.pth`` (only for a
  file you trust). Checkpoints written by ``fit`` are slim already.
- Predictions run batched (one forward pass per batch), not image by image.
- ``fit`` is a small training loop (no Runner, no dataset files): the config's ``ls_train`` dict
  (iters, batch_size, lr, weight_decay, warmup_iters, scale) with adapter options overriding it.
"""

import copy
import math
import random
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import torch

from ls_extensions.ml_backend.adapters.base import Adapter, AdapterError, Detection, FitResult

TRAIN_DEFAULTS = {
    'iters': 300,
    'batch_size': 8,
    'lr': 0.004,
    'weight_decay': 0.05,
    'warmup_iters': 30,
    'scale': None,  # (w, h) resize target; None = the test pipeline's Resize scale, else image size
    'flip': 0.5,
    'seed': 0,
}


def _coerce(value, default):
    """An option given as text (``--option iters=100``), typed like its default."""
    if not isinstance(value, str):
        return value
    if isinstance(default, int):
        return int(float(value))
    if isinstance(default, float):
        return float(value)
    if default is None and ',' in value:  # scale=128,128
        return tuple(int(v) for v in value.split(','))
    return value


def _strip_pretrained(cfg):
    """Drop every ``init_cfg`` that would load weights (no downloads, ever)."""
    if isinstance(cfg, dict):
        init = cfg.get('init_cfg')
        if isinstance(init, dict) and init.get('type') == 'Pretrained':
            cfg['init_cfg'] = None
        for value in cfg.values():
            _strip_pretrained(value)
    elif isinstance(cfg, list):
        for value in cfg:
            _strip_pretrained(value)


def _load_state(path):
    try:
        ckpt = torch.load(path, map_location='cpu', weights_only=True)
    except Exception as exc:  # noqa: BLE001 - pickled objects other than tensors
        raise AdapterError(
            f'cannot load {path} with torch.load(weights_only=True) ({exc.__class__.__name__}); if you trust this '
            f'file, slim it once: python -m ls_extensions.ml_backend.adapters.mmdet_adapter slim {path} OUT.pth'
        ) from None
    if isinstance(ckpt, dict) and 'state_dict' in ckpt:
        return ckpt['state_dict'], ckpt.get('meta') or {}
    if isinstance(ckpt, dict):
        return ckpt, {}
    raise AdapterError(f'{path} is not a checkpoint (a dict with state_dict)')


def slim_checkpoint(src, dst):
    """Keep only state_dict and dataset_meta of a (trusted) mmengine checkpoint."""
    ckpt = torch.load(src, map_location='cpu', weights_only=False)  # nosec - explicit, user-invoked
    state = ckpt.get('state_dict', ckpt)
    meta = ckpt.get('meta') or {}
    dataset_meta = {k.lower(): v for k, v in (meta.get('dataset_meta') or {}).items() if k.lower() == 'classes'}
    if not dataset_meta and 'CLASSES' in meta:
        dataset_meta = {'classes': list(meta['CLASSES'])}
    torch.save({'state_dict': state, 'meta': {'dataset_meta': dataset_meta}}, dst)


def _train_item(sample, index, box_type):
    """The mmdet pipeline's input for one sample, its image read now (BGR, as mmdet's loaders give it)."""
    image = sample.image
    height, width = image.shape[:2]
    labels = np.asarray(sample.labels, dtype=np.int64).copy()
    return {
        'img': np.ascontiguousarray(image[:, :, ::-1]),
        'img_id': index,
        'img_path': None,
        'ori_shape': (height, width),
        'img_shape': (height, width),
        'gt_bboxes': box_type(np.asarray(sample.boxes, dtype=np.float32).reshape(-1, 4).copy()),
        'gt_bboxes_labels': labels,
        'gt_ignore_flags': np.zeros(len(labels), dtype=bool),
    }


class MMDetAdapter(Adapter):
    name = 'mmdet'

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        if self.config is None:
            raise AdapterError('the MMDetection adapter needs --config (an MMDetection config .py file)')
        from mmengine.config import Config
        from mmengine.registry import init_default_scope

        self.cfg = Config.fromfile(str(self.config))
        _strip_pretrained(self.cfg.model)
        init_default_scope(self.cfg.get('default_scope', 'mmdet'))
        self.train_cfg = {**TRAIN_DEFAULTS, **dict(self.cfg.get('ls_train') or {})}
        for key, value in self.options.items():
            if key in TRAIN_DEFAULTS:
                self.train_cfg[key] = _coerce(value, TRAIN_DEFAULTS[key])
        state, meta = (None, {}) if self.checkpoint is None else _load_state(self.checkpoint)
        self.model = self._build(state)
        self._classes = self._find_classes(meta)
        self.model.dataset_meta = {'classes': tuple(self._classes)}
        self._test_pipeline = self._build_test_pipeline()

    # -- construction
    def _build(self, state):
        from mmdet.registry import MODELS
        from mmengine.model import revert_sync_batchnorm
        from mmengine.runner.checkpoint import load_state_dict

        torch.manual_seed(int(self.train_cfg.get('seed') or 0))
        model = revert_sync_batchnorm(MODELS.build(copy.deepcopy(self.cfg.model)))
        if state is None:
            if hasattr(model, 'init_weights'):
                import logging

                from mmengine.logging import MMLogger

                logger = MMLogger.get_current_instance()
                level = logger.level
                logger.setLevel(logging.WARNING)  # init_weights logs every parameter at INFO
                try:
                    model.init_weights()
                finally:
                    logger.setLevel(level)
        else:
            with warnings.catch_warnings():
                warnings.simplefilter('ignore')
                load_state_dict(model, state, strict=False)
        model.cfg = self.cfg
        return model.to(self.device).eval()

    def _find_classes(self, meta):
        dataset_meta = {k.lower(): v for k, v in (meta.get('dataset_meta') or {}).items()}
        classes = dataset_meta.get('classes') or meta.get('CLASSES')
        if not classes:
            metainfo = self.cfg.get('metainfo') or {}
            classes = metainfo.get('classes')
        if not classes:
            try:
                classes = self.cfg.test_dataloader.dataset.metainfo.classes
            except AttributeError:
                classes = None
        head = self.cfg.model.get('bbox_head') or self.cfg.model.get('roi_head', {}).get('bbox_head') or {}
        num_classes = head.get('num_classes')
        if not classes and num_classes == 80:
            from mmdet.evaluation import get_classes

            classes = get_classes('coco')
        if not classes:
            raise AdapterError(
                f'no class names: put metainfo = dict(classes=(...)) in {self.config} or use a checkpoint with dataset_meta'
            )
        if num_classes is not None and len(classes) != num_classes:
            raise AdapterError(f'{len(classes)} class names but the model has num_classes={num_classes}')
        return [str(c) for c in classes]

    def _build_test_pipeline(self):
        from mmcv.transforms import Compose

        pipeline = self.cfg.get('test_pipeline')
        if pipeline is None:
            pipeline = self.cfg.test_dataloader.dataset.pipeline
        pipeline = copy.deepcopy(list(pipeline))
        steps = []
        for step in pipeline:
            if step['type'] in ('LoadImageFromFile', 'mmdet.LoadImageFromFile'):
                step = {'type': 'mmdet.LoadImageFromNDArray'}
            elif step['type'] in ('LoadAnnotations', 'mmdet.LoadAnnotations'):
                continue
            steps.append(step)
        return Compose(steps)

    @property
    def classes(self):
        return self._classes

    def _test_scale(self):
        for step in self._test_pipeline.transforms:
            if type(step).__name__ == 'Resize' and getattr(step, 'scale', None):
                return tuple(step.scale)
        return None

    # -- inference
    @torch.no_grad()
    def predict(self, images, score_threshold=0.0):
        from mmengine.dataset import pseudo_collate

        data = [
            self._test_pipeline({'img': np.ascontiguousarray(image[:, :, ::-1]), 'img_id': i})  # RGB -> BGR
            for i, image in enumerate(images)
        ]
        batch = pseudo_collate(data)
        outputs = self.model.test_step(batch)
        results = []
        for out in outputs:
            inst = out.pred_instances
            keep = inst.scores >= score_threshold
            boxes = inst.bboxes[keep].cpu().numpy()
            scores = inst.scores[keep].cpu().numpy()
            labels = inst.labels[keep].cpu().numpy()
            results.append(
                [Detection(*map(float, b), int(k), float(s)) for b, k, s in zip(boxes, labels, scores, strict=True)]
            )
        return results

    # -- training
    def _train_pipeline(self, scale):
        from mmcv.transforms import Compose

        pipeline = self.cfg.get('ls_train_pipeline')
        if pipeline is None:
            pipeline = []
            if scale:
                pipeline.append({'type': 'mmdet.Resize', 'scale': tuple(scale), 'keep_ratio': True})
            if self.train_cfg['flip']:
                pipeline.append({'type': 'mmdet.RandomFlip', 'prob': float(self.train_cfg['flip'])})
            pipeline.append({'type': 'mmdet.PackDetInputs'})
        return Compose(copy.deepcopy(list(pipeline)))

    def fit(self, samples, work_dir, progress=None):
        """Reads each sample's image when its batch comes (a video frame store holds many more than memory)."""
        from mmdet.structures.bbox import HorizontalBoxes
        from mmengine.dataset import pseudo_collate
        from mmengine.optim import OptimWrapper

        tc = self.train_cfg
        iters, batch_size = int(tc['iters']), max(1, int(tc['batch_size']))
        seed = int(tc.get('seed') or 0)
        rng = np.random.default_rng(seed)
        torch.manual_seed(seed)
        # mmcv's random transforms (RandomFlip's np.random.choice) draw from the global generators: without
        # this, one seed on one set of samples trained a different model each run
        np.random.seed(seed)
        random.seed(seed)
        pipeline = self._train_pipeline(tc['scale'] or self._test_scale())
        model = copy.deepcopy(self.model).train()
        params = [p for p in model.parameters() if p.requires_grad]
        optimizer = torch.optim.AdamW(params, lr=float(tc['lr']), weight_decay=float(tc['weight_decay']))
        wrapper = OptimWrapper(optimizer, clip_grad={'max_norm': 35, 'norm_type': 2})
        samples = list(samples)
        per_epoch = max(1, math.ceil(len(samples) / batch_size))
        warmup = int(tc['warmup_iters'])
        started = time.monotonic()
        losses, epoch_losses = [], []
        order = []
        for it in range(iters):
            if not order:
                order = list(rng.permutation(len(samples)))
            chosen = [order.pop() for _ in range(min(batch_size, len(order)))]
            batch = [pipeline(_train_item(samples[idx], idx, HorizontalBoxes)) for idx in chosen]
            factor = min(1.0, (it + 1) / warmup) if warmup else 1.0
            cosine = 0.5 * (1 + math.cos(math.pi * it / iters))
            for group in optimizer.param_groups:
                group['lr'] = float(tc['lr']) * factor * (0.05 + 0.95 * cosine)
            log_vars = model.train_step(pseudo_collate(batch), wrapper)
            loss = float(log_vars['loss'].detach()) if torch.is_tensor(log_vars['loss']) else float(log_vars['loss'])
            if not math.isfinite(loss):
                raise RuntimeError(f'loss is {loss} at iteration {it}')
            losses.append(loss)
            epoch_losses.append(loss)
            if progress and (it % 10 == 0 or it == iters - 1):
                progress(
                    {
                        'iter': it + 1,
                        'iters': iters,
                        'epoch': it // per_epoch + 1,
                        'epochs': math.ceil(iters / per_epoch),
                        'loss': round(float(np.mean(epoch_losses[-per_epoch:])), 4),
                    }
                )
        seconds = time.monotonic() - started
        model.eval()
        work_dir = Path(work_dir)
        work_dir.mkdir(parents=True, exist_ok=True)
        path = work_dir / 'checkpoint.pth'
        state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
        torch.save({'state_dict': state, 'meta': {'dataset_meta': {'classes': list(self._classes)}}}, path)
        epochs = iters / per_epoch
        return FitResult(
            path,
            {
                'loss': round(float(np.mean(losses[-per_epoch:])), 4),
                'first_loss': round(float(np.mean(losses[:per_epoch])), 4),
                'iters': iters,
                'epochs': round(epochs, 2),
                'seconds_per_epoch': round(seconds / epochs, 3),
                'seconds_per_iter': round(seconds / iters, 3),
            },
        )


if __name__ == '__main__':
    if len(sys.argv) == 4 and sys.argv[1] == 'slim':
        slim_checkpoint(sys.argv[2], sys.argv[3])
        print(f'wrote {sys.argv[3]}')
    else:
        print('usage: python -m ls_extensions.ml_backend.adapters.mmdet_adapter slim IN.pth OUT.pth', file=sys.stderr)
        sys.exit(2)
