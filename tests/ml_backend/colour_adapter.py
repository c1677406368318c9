"""A real detector for the tests: it finds solid coloured squares by colour thresholding.

`ColourSquareAdapter` is a legitimate adapter: it implements the interface the server knows
(`adapters.base.Adapter`) and nothing else, so `predict` gets a batch of RGB images and returns one box
per connected blob of each class colour, whatever the images came from (a task's image or a video's
frames). It lives in tests/ because colour thresholding only detects the synthetic scenes the tests
draw (`draw_squares`: solid squares of `COLOURS` on a dark background); it does not train.
`RecordingColourAdapter` trains by recording the samples it was given.
"""

import threading
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from ls_extensions.ml_backend.adapters.base import Adapter, AdapterError, Detection, FitResult

COLOURS = {'red': (220, 40, 40), 'green': (40, 200, 60), 'blue': (40, 60, 220)}
BACKGROUND = (30, 30, 30)
MIN_AREA = 25  # pixels: smaller blobs are compression noise


def draw_squares(width, height, squares):
    """An RGB image of `squares` [(colour name, x, y, size), ...] (pixels) on the background."""
    image = np.empty((height, width, 3), np.uint8)
    image[:] = BACKGROUND
    for name, x, y, size in squares:
        image[max(y, 0) : max(y + size, 0), max(x, 0) : max(x + size, 0)] = COLOURS[name]
    return image


class ColourSquareAdapter(Adapter):
    """Boxes of the blobs of each class colour: a pixel belongs to a colour when it is nearer to it than
    half its distance to the background on every channel (so a blurred edge splits half-way)."""

    name = 'colours'

    @property
    def classes(self):
        return list(COLOURS)

    def predict(self, images, score_threshold=0.0):
        out = []
        for image in images:
            found = []
            pixels = np.asarray(image, np.int16)
            for index, colour in enumerate(COLOURS.values()):
                reach = np.abs(np.subtract(colour, BACKGROUND)).max() / 2
                mask = (np.abs(pixels - colour).max(axis=2) < reach).astype(np.uint8)
                count, _, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=4)
                for x, y, w, h, area in stats[1:count].tolist():
                    score = 0.5 + 0.49 * area / (w * h)  # a solid square: 0.99
                    if area >= MIN_AREA and score >= score_threshold:
                        found.append(Detection(float(x), float(y), float(x + w), float(y + h), index, score))
            out.append(found)
        return out

    def fit(self, samples, work_dir, progress=None):
        raise AdapterError('the colour-thresholding test detector does not train')


class RecordingColourAdapter(ColourSquareAdapter):
    """The colour detector whose `fit` records what training handed it, as a custom adapter sees it: for each
    `Sample` its key, group, image shape, boxes, classes and the squares the detector finds on its image
    (so a test can tell whether each frame and its boxes belong together). The checkpoint is a marker file."""

    name = 'recording'
    fits = []  # one list of `Seen` per fit, in order

    def fit(self, samples, work_dir, progress=None):
        seen = []
        for sample in samples:
            image = sample.image  # what any adapter does: read the pixels through the sample
            found = [d.as_tuple() for d in self.predict([image])[0]]
            seen.append(Seen(sample.key, sample.group, image.shape, sample.boxes.copy(), sample.labels.copy(), found))
        type(self).fits.append(seen)
        work_dir = Path(work_dir)
        work_dir.mkdir(parents=True, exist_ok=True)
        (work_dir / 'checkpoint.pth').write_bytes(b'recorded')
        return FitResult(work_dir / 'checkpoint.pth', {'loss': 0.1, 'epochs': 1, 'seconds_per_epoch': 0.0})


@dataclass
class Seen:
    key: str
    group: str
    shape: tuple
    boxes: np.ndarray
    labels: np.ndarray
    found: list  # (x1, y1, x2, y2, class, score) the detector finds on the sample's image


class GatedColourAdapter(ColourSquareAdapter):
    """The colour detector that, from its second batch on, waits until the test opens `gate` (so a test can
    look at the server while a video is half predicted)."""

    name = 'gated'
    gate = threading.Event()
    batches = 0

    def predict(self, images, score_threshold=0.0):
        type(self).batches += 1
        if type(self).batches > 1:
            assert type(self).gate.wait(60), 'the test never opened the gate'
        return super().predict(images, score_threshold)
