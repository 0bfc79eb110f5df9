"""How much a colour looks like the target rather than what surrounds it.

A colour histogram of the target's box against one of the ring around it
(Possegger et al., "In Defense of Color-based Model-free Tracking", CVPR 2015,
DAT) gives each colour the probability that a pixel of that colour belongs to
the target. It does not care how the target turns or that part of it is hidden,
and it is what tells an object from a gripper closing on it or sliding off it
when optical flow cannot: flow follows whatever texture moves, colour says
which of it is the object. Colours never seen score 0.5 (no opinion); a target
whose colours are also all around it scores near 0.5 everywhere, and the box
tracker then uses motion alone (`ColourModel.informative`).
"""

from __future__ import annotations

import numpy as np

# Bins per channel (RGB): 16 keeps shades of one surface together under shading and noise.
BINS = 16
_SHIFT = 8 - int(np.log2(BINS))


def colour_index(rgb: np.ndarray) -> np.ndarray:
    """The histogram bin of every pixel of an RGB uint8 image, (H, W) int32."""
    q = (np.asarray(rgb) >> _SHIFT).astype(np.int32)
    return (q[..., 0] * BINS + q[..., 1]) * BINS + q[..., 2]


def crop(shape: tuple[int, ...], box: np.ndarray) -> tuple[int, int, int, int]:
    """A box (x1, y1, x2, y2, float px) as integer bounds clipped to an image of `shape`."""
    h, w = shape[:2]
    x1, y1, x2, y2 = box
    return (
        int(np.clip(np.floor(x1), 0, w)),
        int(np.clip(np.floor(y1), 0, h)),
        int(np.clip(np.ceil(x2), 0, w)),
        int(np.clip(np.ceil(y2), 0, h)),
    )


def grow(box: np.ndarray, factor: float) -> np.ndarray:
    """The box grown about its centre so that its area is (1 + factor) times the original."""
    x1, y1, x2, y2 = box
    cx, cy, bw, bh = (x1 + x2) / 2, (y1 + y2) / 2, x2 - x1, y2 - y1
    g = np.sqrt(1.0 + factor)
    return np.array([cx - g * bw / 2, cy - g * bh / 2, cx + g * bw / 2, cy + g * bh / 2])


class ColourModel:
    """Target-vs-surroundings colour likelihood, learned on the keyframe.

    `ring` is the surroundings' area as a multiple of the box's. Histograms hold pixel
    counts, so P(target | colour) weighs the box's colours by how much of the box
    they fill against how much of the ring (DAT's object vs surrounding model).
    """

    def __init__(self, frame: np.ndarray, box: np.ndarray, ring: float = 2.0) -> None:
        self.ring = ring
        self.target = self._hist(frame, box)
        self.around = self._ring_hist(frame, box)
        self._table()

    def _hist(self, frame: np.ndarray, box: np.ndarray) -> np.ndarray:
        x1, y1, x2, y2 = crop(frame.shape, box)
        idx = colour_index(frame[y1:y2, x1:x2]).ravel()
        h = np.bincount(idx, minlength=BINS**3).astype(np.float64)
        return h / max(h.sum(), 1.0)

    def _ring_hist(self, frame: np.ndarray, box: np.ndarray) -> np.ndarray:
        X1, Y1, X2, Y2 = crop(frame.shape, grow(box, self.ring))
        x1, y1, x2, y2 = crop(frame.shape, box)
        idx = colour_index(frame[Y1:Y2, X1:X2])
        inner = np.zeros(idx.shape, bool)
        inner[max(0, y1 - Y1) : max(0, y2 - Y1), max(0, x1 - X1) : max(0, x2 - X1)] = True
        h = np.bincount(idx[~inner].ravel(), minlength=BINS**3).astype(np.float64)
        # per pixel of the box's area, so that the ring weighs `ring` times the box
        return h / max(float(inner.sum()), 1.0)

    def _table(self) -> None:
        t, a = self.target, self.around
        den = t + a
        self.table = np.where(den > 0, t / np.where(den > 0, den, 1.0), 0.5).astype(np.float32)

    def likelihood(self, rgb: np.ndarray) -> np.ndarray:
        """P(target | colour) per pixel of an RGB image or crop, float32 in [0, 1]."""
        return self.table[colour_index(rgb)]

    def informative(self, frame: np.ndarray, box: np.ndarray) -> float:
        """How well the colours tell the box from its ring: mean likelihood inside minus in the ring."""
        X1, Y1, X2, Y2 = crop(frame.shape, grow(box, self.ring))
        x1, y1, x2, y2 = crop(frame.shape, box)
        lik = self.likelihood(frame[Y1:Y2, X1:X2])
        inner = np.zeros(lik.shape, bool)
        inner[max(0, y1 - Y1) : max(0, y2 - Y1), max(0, x1 - X1) : max(0, x2 - X1)] = True
        if not inner.any() or inner.all():
            return 0.0
        return float(lik[inner].mean() - lik[~inner].mean())
