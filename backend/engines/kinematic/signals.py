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


# numpy's median and percentile cost 8-50 us a call in their wrappers (axis handling, NaN checks,
# method tables): the analysis of one episode calls them ~60 times, a good part of its time when a
# backend re-proposes a thousand episodes. These give numpy's results bit for bit (its "linear"
# method, computed in the same order) straight from np.partition, for 1-D arrays or along axis 0,
# and hand anything else (NaN, empty input, other axes) to numpy itself.


def median(x: np.ndarray, axis: int | None = None) -> np.ndarray | float:
    """`np.median(x, axis)` for axis None or 0."""
    a = np.asarray(x)
    if axis is None:
        a = a.ravel()
    elif axis != 0:
        return np.median(a, axis=axis)
    n = a.shape[0] if a.ndim else 0
    if n == 0 or a.dtype.kind != "f" or np.isnan(a).any():
        return np.median(a, axis=axis)
    k = n // 2
    if n % 2:
        out = np.partition(a, k, axis=0)[k]
    else:
        part = np.partition(a, (k - 1, k), axis=0)
        # np.median takes the mean of the two middle values: their sum over two.
        out = np.add(part[k - 1], part[k]) / 2
    return out[()] if isinstance(out, np.ndarray) and out.ndim == 0 else out


def percentile(x: np.ndarray, q: float, axis: int | None = None) -> np.ndarray | float:
    """`np.percentile(x, q, axis)` for one q and axis None or 0 (method "linear")."""
    a = np.asarray(x)
    if axis is None:
        a = a.ravel()
    elif axis != 0:
        return np.percentile(a, q, axis=axis)
    n = a.shape[0] if a.ndim else 0
    if n == 0 or a.dtype.kind != "f" or np.ndim(q) or np.isnan(a).any():
        return np.percentile(a, q, axis=axis)
    v = (n - 1) * np.true_divide(q, a.dtype.type(100))  # in the array's precision, as numpy does
    if 0 <= v < n - 1:
        lo = int(np.floor(v))
        hi, gamma = lo + 1, v - np.floor(v)
    else:  # at an end both neighbours are the end element itself: nothing to interpolate
        lo = hi = 0 if v < 0 else n - 1
        gamma = v * 0
    part = np.partition(a, sorted({lo, hi}), axis=0)
    prev, nxt = part[lo], part[hi]
    gamma = np.asarray(gamma, dtype=np.asarray(v).dtype)
    diff = np.subtract(nxt, prev)
    out = np.asanyarray(np.add(prev, diff * gamma))
    if gamma >= 0.5:
        out = np.asanyarray(np.subtract(nxt, diff * (1 - gamma))).astype(out.dtype, copy=False)
    return out[()] if out.ndim == 0 else out


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
    mad = median(np.abs(d2 - median(d2, axis=0)), axis=0)
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
