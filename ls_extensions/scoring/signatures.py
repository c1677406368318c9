"""A cheap image signature for near-duplicates: pure, no Django.

Neighbouring video frames and burst shots differ by a few pixels; an uncertainty ranking serves them in a
row, and labelling the second teaches the model little. The signature is an average hash: the image in grey,
shrunk to ``SIDE`` x ``SIDE`` cells, one bit per cell brighter than the mean. Small changes (noise, a fish
moving a little) keep every cell on its side, so near-duplicates share a signature; different scenes
rarely do (2**16 values). Tasks with one signature form one cluster.
"""

import numpy as np

SIDE = 4


def signature_of(grey):
    """The signature of a ``SIDE`` x ``SIDE`` grey thumbnail (any numeric array): an int in [0, 2**(SIDE*SIDE))."""
    cells = np.asarray(grey, dtype=np.float64).reshape(-1)
    bits = cells > cells.mean()
    return int(sum(1 << i for i, bit in enumerate(bits) if bit))


def thumbnail(image):
    """``SIDE`` x ``SIDE`` grey cell means of an HxW or HxWx3 array (cell edges by integer division)."""
    array = np.asarray(image, dtype=np.float64)
    if array.ndim == 3:
        array = array[..., :3].mean(axis=2)
    h, w = array.shape
    rows = np.linspace(0, h, SIDE + 1).astype(int)
    cols = np.linspace(0, w, SIDE + 1).astype(int)
    return np.array(
        [
            [
                array[rows[i] : max(rows[i + 1], rows[i] + 1), cols[j] : max(cols[j + 1], cols[j] + 1)].mean()
                for j in range(SIDE)
            ]
            for i in range(SIDE)
        ]
    )
