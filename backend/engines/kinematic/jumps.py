"""Jumps in a recording: frames where the state teleports (a cut between scenes), not motion."""

from __future__ import annotations

import numpy as np

from backend.engines.kinematic.signals import noise_levels, percentile


def _jump_frames(disp: np.ndarray, noise: np.ndarray) -> list[int]:
    """Frames where the state teleports: a step far bigger than its neighbours' in several dims.

    That is a cut in the recording (the demo's multi-cycle episodes have them), not
    motion: smooth motion never steps 5x faster than the frames around it, and the
    step must also stand well clear of sensor noise. One dim alone stepping (a
    binary gripper command) is not a jump.
    """
    n, d = disp.shape
    if n < 5:
        return []
    mag = np.abs(disp)
    floor = 10.0 * noise + 1e-12
    # The largest step among the two frames before and after each frame (frame 0 never counts).
    pad = np.full((2, d), -np.inf)
    m = np.concatenate([pad, mag, pad])
    m[2] = -np.inf  # frame 0's step is not a neighbour (it is the prepended zero step)
    neighbours = np.max(np.stack([m[k : k + n] for k in (0, 1, 3, 4)]), axis=0)
    big = (mag > 5.0 * np.where(np.isfinite(neighbours), neighbours, 0.0) + 1e-12) & (mag > floor)
    big[0] = False
    hits = np.flatnonzero(big.sum(axis=1) >= min(2, d))
    return [int(i) for i in hits if np.isfinite(neighbours[i]).any()]


def remove_jumps(arr: np.ndarray) -> tuple[np.ndarray, list[int]]:
    """`arr` (T, D) with teleport steps replaced by their neighbours' mean step, and where they were."""
    arr = np.asarray(arr, dtype=np.float64)
    if arr.ndim != 2 or len(arr) < 5:
        return arr, []
    lo, hi = percentile(arr, 1.0, axis=0), percentile(arr, 99.0, axis=0)
    scale = np.where(hi - lo > 0, hi - lo, 1.0)
    disp = np.diff(arr, axis=0, prepend=arr[:1])
    noise = noise_levels(arr) / scale
    jumps = _jump_frames(disp / scale, noise)
    if not jumps:
        return arr, []
    for i in jumps:
        nb = [j for j in (i - 1, i + 1) if 0 < j < len(arr) and j not in jumps]
        disp[i] = disp[nb].mean(axis=0) if nb else 0.0
    return arr[0] + np.cumsum(disp, axis=0), jumps
