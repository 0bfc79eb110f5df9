"""How a teleoperator's hand moves, and how a follower arm and its sensors answer.

A commanded trajectory is a sum of overlapping sub-movements (strokes), as in
models of human reaching: each stroke moves part of the way with a bell-shaped
but skewed velocity profile, and a stroke that starts before the previous one
ends blends the two into one curved motion. On top of that come physiological
tremor (8-12 Hz), slow postural drift, and, on the robot's side, a follower that
tracks the leader a few frames late through a first-order lag, a gripper that
stalls on what it holds, and sensors that quantize and add noise.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def min_jerk(tau: np.ndarray) -> np.ndarray:
    """0 -> 1 with zero velocity and acceleration at both ends."""
    tau = np.clip(tau, 0.0, 1.0)
    return 10 * tau**3 - 15 * tau**4 + 6 * tau**5


def skewed_profile(tau: np.ndarray, skew: float) -> np.ndarray:
    """Minimum jerk on a warped clock: the speed peak moves early (skew > 0) or late (< 0).

    Human reaches are rarely symmetric: quick out, slow homing in (or the reverse
    when hesitant). |skew| < 1 keeps the warp monotone and the ends at rest.
    """
    tau = np.clip(tau, 0.0, 1.0)
    return min_jerk(tau + skew * tau * (1.0 - tau))


@dataclass(frozen=True)
class Stroke:
    """One sub-movement: `delta` added over [start, start + duration] seconds."""

    start: float
    duration: float
    delta: np.ndarray
    skew: float = 0.0

    @property
    def end(self) -> float:
        return self.start + self.duration


def superpose(origin: np.ndarray, strokes: list[Stroke], n: int, fps: float) -> np.ndarray:
    """The (n, D) trajectory `origin + sum of strokes` sampled at `fps`."""
    t = np.arange(n) / fps
    out = np.repeat(np.asarray(origin, float)[None], n, axis=0)
    for s in strokes:
        tau = (t - s.start) / max(s.duration, 1e-6)
        out += skewed_profile(tau, s.skew)[:, None] * np.asarray(s.delta, float)[None]
    return out


def band_noise(rng: np.random.Generator, n: int, dims: int, fps: float, lo: float, hi: float) -> np.ndarray:
    """Gaussian noise band-limited to [lo, hi] Hz, unit standard deviation per column."""
    if n < 4:
        return np.zeros((n, dims))
    spec = np.fft.rfft(rng.normal(size=(n, dims)), axis=0)
    freqs = np.fft.rfftfreq(n, 1.0 / fps)
    spec[(freqs < lo) | (freqs > hi)] = 0
    out = np.fft.irfft(spec, n=n, axis=0)
    sd = out.std(axis=0)
    return out / np.where(sd > 0, sd, 1.0)


def hand_noise(
    rng: np.random.Generator, n: int, fps: float, tremor: np.ndarray, drift: np.ndarray
) -> np.ndarray:
    """Tremor (8-12 Hz) plus slow postural drift (< 0.4 Hz), per-dimension amplitudes."""
    tremor, drift = np.asarray(tremor, float), np.asarray(drift, float)
    d = len(tremor)
    return band_noise(rng, n, d, fps, 8.0, 12.0) * tremor + band_noise(rng, n, d, fps, 0.05, 0.4) * drift


def follow(lead: np.ndarray, delay: int, tau_frames: float) -> np.ndarray:
    """A position-controlled follower: the leader's command `delay` frames late, through a lag."""
    n = len(lead)
    shifted = np.concatenate([np.repeat(lead[:1], delay, axis=0), lead[: max(n - delay, 0)]])[:n]
    alpha = 1.0 / (1.0 + tau_frames)
    out = np.empty_like(shifted)
    out[0] = shifted[0]
    for i in range(1, n):
        out[i] = out[i - 1] + alpha * (shifted[i] - out[i - 1])
    return out


def follow_gripper(
    lead: np.ndarray, delay: int, tau_frames: float, stall: np.ndarray, closes_up: bool = False
) -> np.ndarray:
    """The follower's gripper: tracks the leader, but cannot close past `stall` (per frame).

    `stall` holds the level at which the jaws meet the held object (NaN when the
    jaws are empty); the servo stops there however far the leader closes. With
    `closes_up` the channel's value grows as the gripper closes.
    """
    free = follow(lead[:, None], delay, tau_frames)[:, 0]
    out = free.copy()
    has = ~np.isnan(stall)
    if closes_up:
        out[has] = np.minimum(free[has], stall[has])
    else:
        out[has] = np.maximum(free[has], stall[has])
    return out


def sense(
    rng: np.random.Generator, values: np.ndarray, sigma: np.ndarray, step: np.ndarray | None = None
) -> np.ndarray:
    """What a sensor reports: Gaussian noise, then quantized to `step` (0 = none) per column."""
    out = values + rng.normal(0.0, 1.0, size=values.shape) * np.asarray(sigma, float)
    if step is not None:
        step = np.asarray(step, float)
        q = np.where(step > 0, step, 1.0)
        out = np.where(step > 0, np.round(out / q) * q, out)
    return out
