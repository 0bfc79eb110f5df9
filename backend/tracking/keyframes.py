"""A dense track as sparse keyframes: keep a frame wherever linear interpolation would be off.

The app, the exporters and the trainer all read boxes and trajectory points as
keyframes with linear interpolation between them, so a track is stored the same
way: the fewest keyframes such that interpolating between them reproduces every
tracked frame to within `tolerance_px` (Douglas-Peucker in time: split a span at
its worst frame until no frame is off by more). For a box the error is the
largest deviation of any of its four edges; for a point, the distance. A
stationary object costs two keyframes, a moving one a few per second.
"""

from __future__ import annotations

import itertools

import numpy as np

# What "a few pixels" is: keyframes make interpolation this close (px at the camera's size).
DEFAULT_TOLERANCE_PX = 2.0


def _errors(values: np.ndarray, frames: np.ndarray, i: int, j: int, kind: str) -> np.ndarray:
    """How far linear interpolation between rows i and j misses each row strictly between them."""
    if j - i < 2:
        return np.zeros(0)
    inner = values[i + 1 : j]
    w = ((frames[i + 1 : j] - frames[i]) / max(frames[j] - frames[i], 1))[:, None]
    interp = values[i] + w * (values[j] - values[i])
    diff = inner - interp
    if kind == "box":
        return np.abs(diff).max(axis=1)
    return np.linalg.norm(diff, axis=1)


def sparsify(
    frames: list[int] | np.ndarray,
    values: list[tuple[float, ...]] | np.ndarray,
    kind: str,
    tolerance_px: float = DEFAULT_TOLERANCE_PX,
    keep: set[int] | None = None,
) -> list[int]:
    """Indices (into `frames`) of the keyframes to store; the first and last are always kept.

    `frames` must be increasing. `values` are pixels (box x1, y1, x2, y2 or point x, y)
    so the tolerance means the same on every camera. `keep` forces indices in (lost
    frames, for instance). A gap in `frames` is never bridged by a straight line it
    did not earn: the rows on both sides of a gap of more than one frame are kept.
    """
    if tolerance_px < 0:
        raise ValueError(f"tolerance_px = {tolerance_px}: must be >= 0")
    f = np.asarray(frames, np.float64)
    v = np.asarray(values, np.float64).reshape(len(f), -1)
    n = len(f)
    if n == 0:
        return []
    if n <= 2:
        return list(range(n))
    chosen = {0, n - 1} | set(keep or ())
    gaps = np.flatnonzero(np.diff(f) > 1)
    chosen |= set(gaps.tolist()) | set((gaps + 1).tolist())
    bounds = sorted(i for i in chosen if 0 <= i < n)
    stack = list(itertools.pairwise(bounds))
    while stack:
        i, j = stack.pop()
        err = _errors(v, f, i, j, kind)
        if len(err) and err.max() > tolerance_px:
            k = i + 1 + int(np.argmax(err))
            chosen.add(k)
            stack += [(i, k), (k, j)]
    return sorted(chosen)
