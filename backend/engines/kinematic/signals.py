"""Signal helpers shared by the kinematic engine's parts: smoothing, noise, names."""

from __future__ import annotations

import math
import re

import numpy as np
from scipy.ndimage import gaussian_filter1d
from scipy.special import ndtri

from core.dataset import EpisodeSignals

GRIPPER_WORDS = ("gripper", "grip", "finger", "claw", "jaw")
# Where a robot's own reading lives first; the commanded action is second best.
FEATURE_PREFERENCE = ("observation.state", "action")
AXES = ("x", "y", "z")
PICK_WORDS = ("pick", "grab", "grasp", "take", "lift", "get")
CARRY = ("lift", "move", "place")
GRIPPER_SPANS = ("grasp", "release")

# Hysteresis on the gripper signal normalized to open = 1, tightest closed = 0. The
# open level is where the gripper comes back to; the closed level depends on the
# object, so "closed" only needs a clear drop and "open" a near-full return.
CLOSE_BELOW = 0.55
OPEN_ABOVE = 0.75
# A dimension whose range is not this many noise levels wide carries no events.
MIN_SNR = 8.0
# Fewer frames than this hold no motion to speak of (noise needs 4 for its estimate).
MIN_FRAMES = 8
# A normal distribution's standard deviation per median absolute deviation.
NORMAL_MAD = float(1.0 / ndtri(0.75))


def smooth(x: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian smoothing along time (axis 0), edges held; sigma in frames."""
    x = np.asarray(x, dtype=np.float64)
    if sigma < 0.3 or len(x) < 3:
        return x.copy()
    return gaussian_filter1d(x, sigma, axis=0, mode="nearest", truncate=3.0)


def noise_levels(x: np.ndarray) -> np.ndarray:
    """Sensor noise of each column of a (T, D) signal from its second differences (robust to
    smooth motion and steps).

    The second difference of white noise has variance 6 sigma^2; the MAD ignores the
    few frames where the motion itself bends.
    """
    x = np.asarray(x, dtype=np.float64)
    if x.ndim == 1:
        x = x[:, None]
    if len(x) < 4:
        return np.zeros(x.shape[1])
    d2 = np.diff(x, n=2, axis=0)
    # scipy.stats.median_abs_deviation(scale="normal") computes the same, at ~100x the cost per
    # call (its nan-policy wrapper); this runs per dimension per episode.
    mad = np.median(np.abs(d2 - np.median(d2, axis=0)), axis=0)
    return mad * NORMAL_MAD / math.sqrt(6.0)


def noise_level(x: np.ndarray) -> float:
    """`noise_levels` of a 1-D signal."""
    return float(noise_levels(np.asarray(x).reshape(len(x), -1)[:, :1])[0]) if len(x) else 0.0


def clip01(v: float) -> float:
    return float(min(1.0, max(0.0, v)))


def tokens(name: str) -> list[str]:
    return [t for t in re.split(r"[^a-z]+", name.lower()) if t]


def dim_label(feature: str, dim: int) -> str:
    return f"{feature}[{dim}]"


def feature_order(sig: EpisodeSignals) -> list[str]:
    preferred = [f for f in FEATURE_PREFERENCE if f in sig.channels]
    return preferred + [f for f in sig.channels if f not in preferred]
