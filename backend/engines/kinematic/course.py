"""Where a long motion changes course or slows without stopping: the cuts inside a motion.

A person cuts a carried object's transport where it changes course (move, then
place), and a push where the approach reaches the object: the arm slows almost to
a stop and carries on. Change points (ruptures, on the direction of the joint
velocities) find the first; a local speed minimum well below the motion on both
sides finds the second, which the change points miss where a faster motion
elsewhere in the same run (the retreat) sets their scale.
"""

from __future__ import annotations

import numpy as np
import ruptures as rpt
from scipy.ndimage import maximum_filter1d

from backend.engines.kinematic.signals import percentile

# Turns: the course changes by at least this angle's cosine, in motions at least this long (s).
TURN_COS = 0.55
MIN_TURN_RUN = 0.8
# Slowdowns: the speed falls below this part of the slower of the peaks within SLOWDOWN_WINDOW
# seconds on either side, both peaks are motion, and the arm does not stop.
SLOWDOWN_BELOW = 0.5
SLOWDOWN_WINDOW = 0.5


def turns(vel: np.ndarray, moving: np.ndarray, speed: np.ndarray, fps: float) -> list[int]:
    """Frames inside long motions where the course changes (a dip in speed or a new direction)."""
    out: list[int] = []
    n = len(moving)
    min_run = max(4, round(MIN_TURN_RUN * fps))
    w = max(2, round(0.25 * fps))
    start = 0
    for i in range(1, n + 1):
        if i < n and moving[i] == moving[start]:
            continue
        a, b = start, i
        start = i
        if not moving[a] or b - a < min_run:
            continue
        seg = vel[a:b]
        norm = seg / max(float(percentile(np.linalg.norm(seg, axis=1), 90)), 1e-9)
        min_size = max(2, round(0.3 * fps))
        try:
            # The linear kernel is the l2 cost, computed in C.
            algo = rpt.KernelCPD(kernel="linear", min_size=min_size).fit(norm)
            cps = [c for c in algo.predict(pen=0.8 * norm.shape[1] ** 0.5 * 2.0) if 0 < c < b - a]
        except rpt.exceptions.BadSegmentationParameters:
            cps = []
        for c in cps:
            k = a + c
            lo, hi = max(a, k - w), min(b, k + w)
            d0, d1 = vel[lo:k].mean(axis=0), vel[k:hi].mean(axis=0)
            n0, n1 = float(np.linalg.norm(d0)), float(np.linalg.norm(d1))
            if n0 == 0 or n1 == 0:
                continue
            cos = float(np.dot(d0, d1) / (n0 * n1))
            dip = float(speed[lo:hi].min()) < 0.5 * min(float(speed[lo:k].max()), float(speed[k:hi].max()))
            if cos < TURN_COS or dip:
                # put the cut at the slowest frame nearby: where one motion hands over to the next
                local = speed[lo:hi]
                out.append(lo + int(np.argmin(local)))
    return sorted(set(out))


def slowdowns(speed: np.ndarray, moving: np.ndarray, fps: float, moving_above: float) -> list[int]:
    """Frames where the arm, still moving, slows to a local minimum well below the motion on
    both sides (peaks above `moving_above`, the speed that counts as motion; a stop is a pause:
    `ArmTrack.runs` has it)."""
    n = len(speed)
    w = max(2, round(SLOWDOWN_WINDOW * fps))
    if n < 3:
        return []
    s = np.asarray(speed, dtype=np.float64)
    # A minimum: no lower than the frame before, lower than the one after (a flat bottom counts once).
    k = np.flatnonzero((s[1:-1] <= s[:-2]) & (s[1:-1] < s[2:])) + 1
    if not len(k):
        return []
    # The peak in [k - w, k) and in (k, k + w]: a running maximum over w frames, shifted.
    run = maximum_filter1d(s, size=w, mode="nearest", origin=(w - 1) // 2)  # max of s[i - w + 1 .. i]
    left = run[np.maximum(k - 1, 0)]
    right = run[np.minimum(k + w, n - 1)]
    peak = np.minimum(left, right)
    keep = (peak > moving_above) & (s[k] < SLOWDOWN_BELOW * peak) & np.asarray(moving, dtype=bool)[k]
    return k[keep].tolist()
