"""What two episodes are compared on: every moving state and action dimension, normalized per
episode, with velocities, and a bump at every gripper and motion event."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.ndimage import gaussian_filter1d

from core.annotations import EpisodeAnnotation
from core.dataset import EpisodeSignals

from .anchors import Event
from .signals import GRIPPER_WORDS, median, noise_levels, percentile, tokens

# Velocity features are scaled by this many seconds so that a phase's typical
# velocity (one range per phase, phases last about a second) weighs like its position.
VELOCITY_SECONDS = 1.0
# Gripper dimensions weigh this much more: their closing and opening are the sharpest events.
GRIPPER_WEIGHT = 2.0
# A dimension whose range in every episode is within this many noise levels carries no motion.
MIN_RANGE_NOISE = 12.0


@dataclass
class Exemplar:
    """An accepted episode and its signals."""

    annotation: EpisodeAnnotation
    signals: EpisodeSignals


def layout(sig: EpisodeSignals) -> dict[str, tuple[int, tuple[str, ...]]]:
    """Feature name -> its width and dimension names: what two episodes must share to be aligned."""
    return {f: (int(np.shape(sig.channels[f])[1]), tuple(sig.names.get(f, ()))) for f in sorted(sig.channels)}


def is_gripper(name: str) -> bool:
    return any(w in t for t in tokens(name) for w in GRIPPER_WORDS)


def clean(x: np.ndarray) -> np.ndarray:
    """NaN/inf replaced by the nearest finite value (a dropped sensor reading is not motion)."""
    x = np.asarray(x, dtype=np.float64)
    bad = ~np.isfinite(x)
    if not bad.any():
        return x
    x = x.copy()
    for j in range(x.shape[1]):
        col, b = x[:, j], bad[:, j]
        if b.all():
            col[:] = 0.0
        elif b.any():
            idx = np.flatnonzero(~b)
            col[b] = np.interp(np.flatnonzero(b), idx, col[idx])
    return x


def matrix(sig: EpisodeSignals, keys: Sequence[tuple[str, int]]) -> np.ndarray:
    return clean(np.stack([sig.channels[f][:, d] for f, d in keys], axis=1))


class FeatureSpace:
    """Which dimensions to use and how to scale them, fixed per exemplar set.

    Each episode is normalized by its own range per dimension (object positions
    shift joint angles from episode to episode; the shape of the motion is what
    repeats), floored at a quarter of the exemplars' typical range so a joint
    that barely moves in one episode does not have its noise blown up.
    """

    def __init__(self, exemplars: Sequence[Exemplar], fps: float) -> None:
        self.fps = fps
        first = exemplars[0].signals
        keys = [(f, d) for f in sorted(first.channels) for d in range(first.channels[f].shape[1])]
        mats = [matrix(e.signals, keys) for e in exemplars]
        ranges = np.stack([percentile(m, 98, axis=0) - percentile(m, 2, axis=0) for m in mats])
        noise = np.stack([noise_levels(m) for m in mats])
        moving = (ranges > MIN_RANGE_NOISE * np.maximum(noise, 1e-12)).any(axis=0)
        self.keys = [k for k, ok in zip(keys, moving, strict=True) if ok]
        typical = median(ranges, axis=0)[moving]
        self.floor = np.maximum(0.25 * typical, 1e-9)
        names = [first.names.get(f, [])[d] if d < len(first.names.get(f, [])) else "" for f, d in self.keys]
        self.weights = np.array([GRIPPER_WEIGHT if is_gripper(n) else 1.0 for n in names])

    def __call__(self, sig: EpisodeSignals) -> np.ndarray:
        """(T, 2 * dims) positions and velocities, normalized and weighted."""
        x = matrix(sig, self.keys)
        lo, hi = percentile(x, 2, axis=0), percentile(x, 98, axis=0)
        u = (x - lo) / np.maximum(hi - lo, self.floor)
        sigma = max(1.0, 0.04 * self.fps)
        v = np.gradient(gaussian_filter1d(u, sigma, axis=0, mode="nearest"), axis=0) * self.fps
        v *= VELOCITY_SECONDS
        return np.ascontiguousarray(np.concatenate([u, v], axis=1) * np.tile(self.weights, 2))


# Event channels: a bump at every gripper event (by arm and what it does) and every start of
# an arm's motion, so the alignment pairs the grasp with the grasp, not with a look-alike moment.
EVENT_KINDS = ("close", "open", "onset", "start", "end")
EVENT_WIDTH = 0.15  # seconds
EVENT_WEIGHT = 1.5


def event_signatures(events: Sequence[Event]) -> list[tuple[str, str, str]]:
    return sorted({(e.kind, e.arm, e.detail) for e in events if e.kind in EVENT_KINDS})


def event_channels(
    events: Sequence[Event], n: int, signatures: list[tuple[str, str, str]], fps: float
) -> np.ndarray:
    out = np.zeros((n, len(signatures)))
    index = {sig: i for i, sig in enumerate(signatures)}
    for e in events:
        i = index.get((e.kind, e.arm, e.detail))
        if i is not None and 0 <= e.frame < n:
            out[e.frame, i] = 1.0
    if len(signatures):
        out = gaussian_filter1d(out, EVENT_WIDTH * fps, axis=0, mode="constant")
        out /= max(float(out.max()), 1e-9)
    return out * EVENT_WEIGHT
