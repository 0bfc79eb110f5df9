"""The arm's velocity over an episode, from end-effector x/y/z or from joints."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

import numpy as np

from backend.engines.kinematic.signals import AXES, dim_label, feature_order, noise_level, smooth, tokens
from core.dataset import EpisodeSignals

if TYPE_CHECKING:
    from backend.engines.kinematic.gripper import GripperChannel


@dataclass
class Motion:
    """The arm's velocity over the episode, from end-effector x/y/z or from joints."""

    mode: Literal["ee", "joint", "none"]
    source: str
    channels: list[str]
    vel: np.ndarray  # (T, d) velocity; for "ee" in the dataset's units per second
    speed: np.ndarray  # (T,)
    scale: float  # robust typical speed, so penalties and thresholds are unitless
    z: int | None = None  # column of z in `vel` (ee mode)
    jumps: list[int] = field(default_factory=list)  # frames where the state jumps (scene cuts)


def _find_xyz(sig: EpisodeSignals, skip: tuple[str, int] | None) -> tuple[str, list[int]] | None:
    for feature in feature_order(sig):
        names = sig.names.get(feature, [])
        found: dict[str, list[int]] = {a: [] for a in AXES}
        for i, n in enumerate(names):
            if skip == (feature, i):
                continue
            toks = tokens(n)
            for a in AXES:
                if a in toks:
                    found[a].append(i)
        if all(len(found[a]) == 1 for a in AXES):
            return feature, [found[a][0] for a in AXES]
    return None


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
    out = []
    for i in range(1, n):
        around = np.concatenate([mag[max(1, i - 2) : i], mag[i + 1 : i + 3]])
        if not len(around):
            continue
        big = (mag[i] > 5.0 * around.max(axis=0) + 1e-12) & (mag[i] > floor)
        if int(big.sum()) >= min(2, d):
            out.append(i)
    return out


def remove_jumps(arr: np.ndarray) -> tuple[np.ndarray, list[int]]:
    """`arr` (T, D) with teleport steps replaced by their neighbours' mean step, and where they were."""
    arr = np.asarray(arr, dtype=np.float64)
    if arr.ndim != 2 or len(arr) < 5:
        return arr, []
    lo, hi = np.percentile(arr, [1.0, 99.0], axis=0)
    scale = np.where(hi - lo > 0, hi - lo, 1.0)
    disp = np.diff(arr, axis=0, prepend=arr[:1])
    noise = np.array([noise_level(arr[:, j]) for j in range(arr.shape[1])]) / scale
    jumps = _jump_frames(disp / scale, noise)
    if not jumps:
        return arr, []
    for i in jumps:
        nb = [j for j in (i - 1, i + 1) if 0 < j < len(arr) and j not in jumps]
        disp[i] = disp[nb].mean(axis=0) if nb else 0.0
    return arr[0] + np.cumsum(disp, axis=0), jumps


def arm_motion(sig: EpisodeSignals, fps: float, gripper: GripperChannel | None, smoothing: float) -> Motion:
    """Velocity of the end effector when x/y/z are named, else of all moving non-gripper dims.

    Joint dims are scaled by their range so that no joint dominates for its units,
    and dims whose range is within noise are dropped (normalizing them would blow
    noise up to the size of motion).
    """
    n = len(sig)
    skip = (gripper.feature, gripper.dim) if gripper else None
    xyz = _find_xyz(sig, skip)
    if xyz is not None:
        feature, dims = xyz
        pos = sig.channels[feature][:, dims].astype(np.float64)
        mode: Literal["ee", "joint", "none"] = "ee"
        names = sig.names.get(feature, [])
        channels = [names[d] for d in dims]
        z: int | None = 2
    else:
        feature = gripper.feature if gripper else next(iter(feature_order(sig)), "")
        if not feature:
            return Motion("none", "", [], np.zeros((n, 1)), np.zeros(n), 1.0)
        arr = sig.channels[feature].astype(np.float64)
        keep, cols = [], []
        for i in range(arr.shape[1]):
            if skip == (feature, i):
                continue
            lo, hi = np.percentile(arr[:, i], [1.0, 99.0])
            if hi - lo > 20.0 * max(noise_level(arr[:, i]), 1e-12):
                keep.append(i)
                cols.append((arr[:, i] - lo) / (hi - lo))
        if not cols:
            return Motion("none", feature, [], np.zeros((n, 1)), np.zeros(n), 1.0)
        pos = np.stack(cols, axis=1)
        mode, z = "joint", None
        channels = [dim_label(feature, i) for i in keep]
    pos, jumps = remove_jumps(pos)
    vel = smooth(np.gradient(pos, axis=0) * fps, smoothing * fps)
    speed = np.linalg.norm(vel, axis=1)
    scale = float(np.percentile(speed, 90)) or 1.0
    return Motion(mode, feature, channels, vel, speed, scale, z, jumps)
