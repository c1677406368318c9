"""The adapter interface: the only thing the protocol layer knows about a model.

An adapter wraps one loaded model (one checkpoint). The server builds adapters through
``adapter_class(config=..., checkpoint=..., device=..., options=...)``; after a successful
``fit`` it builds a fresh one on the new checkpoint and swaps it in, so ``predict`` never
sees a half-trained model.

Images are HxWx3 ``uint8`` RGB arrays. Boxes are pixels ``(x1, y1, x2, y2)``. Classes are
indices into ``adapter.classes``.
"""

import importlib
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np


class AdapterError(RuntimeError):
    """A start-up or training error with a message meant for the user."""


@dataclass
class Detection:
    x1: float
    y1: float
    x2: float
    y2: float
    class_index: int
    score: float

    def as_tuple(self):
        return (self.x1, self.y1, self.x2, self.y2, self.class_index, self.score)


class Sample:
    """One training image with its boxes (Nx4 pixels xyxy) and class indices (N).

    ``image`` is either held (an uploaded image) or read from ``load()`` on each access (a video frame
    from the training job's frame store), so a dataset of many long videos holds one frame at a time:
    an adapter reads ``sample.image`` when it needs the pixels and keeps no list of them. ``size`` is
    ``(height, width)`` without reading. ``group`` is what the held-out split keeps together (the task:
    all frames of one video fall on the same side); ``key`` names the sample (task id, or task/frame).
    """

    __slots__ = ('_image', '_load', 'boxes', 'labels', 'key', 'group', 'size')

    def __init__(self, image=None, boxes=None, labels=None, key='', *, load=None, size=None, group=None):
        if (image is None) == (load is None):
            raise ValueError('a Sample needs either an image or a load() that reads it')
        if image is None and size is None:
            raise ValueError('a lazily loaded Sample needs its size (height, width)')
        self._image, self._load = image, load
        self.boxes = np.asarray(boxes if boxes is not None else [], dtype=np.float32).reshape(-1, 4)
        self.labels = np.asarray(labels if labels is not None else [], dtype=np.int64)
        self.key = key
        self.group = key if group is None else group
        self.size = tuple(size) if size is not None else tuple(image.shape[:2])

    @property
    def image(self):
        return self._image if self._image is not None else self._load()

    def __repr__(self):
        return f'Sample(key={self.key!r}, size={self.size}, boxes={len(self.boxes)})'


@dataclass
class FitResult:
    checkpoint: Path
    metrics: dict = field(default_factory=dict)  # at least 'loss' (last epoch mean), 'epochs', 'seconds_per_epoch'


class Adapter(ABC):
    """Subclass this for your own model; see README ("Bring your own model")."""

    #: a short name, used in model version strings
    name = 'model'

    def __init__(self, *, config=None, checkpoint=None, device='cpu', options=None):
        self.config = config
        self.checkpoint = Path(checkpoint) if checkpoint else None
        self.device = device
        self.options = dict(options or {})
        if self.checkpoint is not None and not self.checkpoint.is_file():
            raise AdapterError(f'checkpoint file not found: {self.checkpoint}')

    @property
    @abstractmethod
    def classes(self):
        """Model class names, index = class index."""

    @abstractmethod
    def predict(self, images, score_threshold=0.0):
        """One list of Detection per image, for a batch of images."""

    @abstractmethod
    def fit(self, samples, work_dir, progress=None):
        """Fine-tune from this adapter's weights on ``samples``; write a checkpoint under ``work_dir``.

        Must not change the weights this adapter serves. ``progress(dict)`` may be called with
        ``{'epoch', 'epochs', 'iter', 'iters', 'loss'}``. Returns a FitResult.
        """

    def describe(self):
        return {'adapter': f'{type(self).__module__}.{type(self).__qualname__}', 'classes': list(self.classes)}


def load_adapter_class(dotted):
    module_name, _, attr = dotted.rpartition('.')
    if not module_name:
        raise AdapterError(f'adapter must be a dotted path module.Class, not {dotted!r}')
    try:
        cls = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise AdapterError(f'cannot import adapter {dotted}: {exc}') from exc
    if not (isinstance(cls, type) and issubclass(cls, Adapter)):
        raise AdapterError(f'{dotted} is not an Adapter subclass')
    return cls
