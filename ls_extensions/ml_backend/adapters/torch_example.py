"""A minimal plain-PyTorch adapter: per-pixel classes at stride 4, boxes from connected regions.

It proves that the protocol layer does not depend on MMDetection, and it is the template for
"bring your own model". It learns the synthetic shapes (``synthetic.py``) in a few seconds.
"""

import copy
import math
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ls_extensions.ml_backend.adapters.base import Adapter, Detection, FitResult
from ls_extensions.ml_backend.synthetic import CLASSES

STRIDE = 4


class TinyNet(nn.Module):
    def __init__(self, num_classes):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(3, 16, 3, stride=2, padding=1),
            nn.ReLU(),
            nn.Conv2d(16, 32, 3, stride=2, padding=1),
            nn.ReLU(),
            nn.Conv2d(32, 32, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(32, num_classes + 1, 1),  # 0 = background
        )

    def forward(self, x):
        return self.body(x)


def _to_tensor(image):
    return torch.from_numpy(np.array(image, dtype=np.uint8, copy=True)).permute(2, 0, 1).float().div(255.0).unsqueeze(0)


def _components(mask):
    """4-connected components of a small boolean grid: list of (rows, cols) index arrays."""
    seen = np.zeros_like(mask, dtype=bool)
    h, w = mask.shape
    out = []
    for r0, c0 in zip(*np.nonzero(mask), strict=True):
        if seen[r0, c0]:
            continue
        stack, rows, cols = [(r0, c0)], [], []
        seen[r0, c0] = True
        while stack:
            r, c = stack.pop()
            rows.append(r)
            cols.append(c)
            for rr, cc in ((r + 1, c), (r - 1, c), (r, c + 1), (r, c - 1)):
                if 0 <= rr < h and 0 <= cc < w and mask[rr, cc] and not seen[rr, cc]:
                    seen[rr, cc] = True
                    stack.append((rr, cc))
        out.append((np.array(rows), np.array(cols)))
    return out


class TorchExampleAdapter(Adapter):
    name = 'torch_example'

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        classes = self.options.get('classes') or CLASSES
        state = None
        if self.checkpoint is not None:
            ckpt = torch.load(self.checkpoint, map_location='cpu', weights_only=True)
            state = ckpt['state_dict']
            classes = ckpt.get('meta', {}).get('dataset_meta', {}).get('classes') or classes
        self._classes = [c.strip() for c in classes.split(',')] if isinstance(classes, str) else list(classes)
        torch.manual_seed(int(self.options.get('seed', 0)))
        self.model = TinyNet(len(self._classes))
        if state is not None:
            self.model.load_state_dict(state)
        self.model.to(self.device).eval()

    @property
    def classes(self):
        return self._classes

    @torch.no_grad()
    def predict(self, images, score_threshold=0.0):
        results = [None] * len(images)
        by_shape = {}
        for i, image in enumerate(images):  # one forward pass per image size
            by_shape.setdefault(image.shape, []).append(i)
        for indices in by_shape.values():
            batch = torch.cat([_to_tensor(images[i]) for i in indices]).to(self.device)
            probs = torch.softmax(self.model(batch), 1).cpu().numpy()
            for i, p in zip(indices, probs, strict=True):
                results[i] = self._boxes(p, images[i].shape, score_threshold)
        return results

    def _boxes(self, probs, shape, score_threshold):
        h, w = shape[:2]
        winner = probs.argmax(0)
        dets = []
        for k in range(len(self._classes)):
            for rows, cols in _components(winner == k + 1):
                if len(rows) < 2:
                    continue
                score = float(probs[k + 1][rows, cols].mean())
                if score < score_threshold:
                    continue
                x1, y1 = cols.min() * STRIDE, rows.min() * STRIDE
                x2, y2 = min((cols.max() + 1) * STRIDE, w), min((rows.max() + 1) * STRIDE, h)
                dets.append(Detection(float(x1), float(y1), float(x2), float(y2), k, score))
        return dets

    def fit(self, samples, work_dir, progress=None):
        epochs = int(self.options.get('epochs', 25))
        model = copy.deepcopy(self.model).train()
        optim = torch.optim.Adam(model.parameters(), lr=float(self.options.get('lr', 3e-3)))
        loss_fn = nn.CrossEntropyLoss()
        started = time.monotonic()
        loss_value = math.nan
        for epoch in range(epochs):
            losses = []
            for sample in samples:
                h, w = sample.image.shape[:2]
                target = torch.zeros(math.ceil(h / STRIDE), math.ceil(w / STRIDE), dtype=torch.long)
                for (x1, y1, x2, y2), k in zip(sample.boxes, sample.labels, strict=True):
                    target[
                        int(y1 // STRIDE) : int(math.ceil(y2 / STRIDE)), int(x1 // STRIDE) : int(math.ceil(x2 / STRIDE))
                    ] = int(k) + 1
                logits = model(_to_tensor(sample.image).to(self.device))
                loss = loss_fn(logits[0].flatten(1).T, target.flatten().to(self.device))
                optim.zero_grad()
                loss.backward()
                optim.step()
                losses.append(loss.item())
            loss_value = float(np.mean(losses)) if losses else math.nan
            if progress:
                progress({'epoch': epoch + 1, 'epochs': epochs, 'loss': loss_value})
        seconds = time.monotonic() - started
        work_dir = Path(work_dir)
        work_dir.mkdir(parents=True, exist_ok=True)
        path = work_dir / 'checkpoint.pth'
        state = {k: v.cpu() for k, v in model.state_dict().items()}
        torch.save({'state_dict': state, 'meta': {'dataset_meta': {'classes': list(self._classes)}}}, path)
        return FitResult(path, {'loss': loss_value, 'epochs': epochs, 'seconds_per_epoch': seconds / max(epochs, 1)})
