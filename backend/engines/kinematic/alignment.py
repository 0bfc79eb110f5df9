"""One exemplar aligned to an episode: the DTW path (pauses compressed) and the exemplar's
boundaries put at the same events of the episode."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .anchors import ANCHOR_WITHIN, Event, after_gripper, anchor, missed_grasps, next_event, ordinal, snap
from .features import Exemplar
from .signals import percentile

# A boundary no event pins down moves to a zero-shot cut this close (seconds).
ZERO_SHOT_SNAP = 0.6
ZERO_SHOT_CONFIRM = 0.5
# Below this speed (a fraction of the episode's brisk motion) a frame is still.
STILL_LEVEL = 0.12
# A pause lasts at least this many frames.
MIN_STILL = 3
# Seconds of smoothing before judging which frames are still.
STILL_SMOOTH = 0.15


@dataclass
class Alignment:
    """One exemplar aligned to the target: frame maps both ways and the path's cost."""

    exemplar: Exemplar
    to_target: np.ndarray  # (n_exemplar,) first target frame each exemplar frame maps to
    cost: float  # mean squared feature distance per path step
    spread: np.ndarray  # (n_exemplar,) how many target frames each exemplar frame maps to
    # Target frame of each of the exemplar's inner boundaries (after refinement).
    bounds: list[int] = field(default_factory=list)
    # Those of them put at the same gripper event as in the exemplar (the surest kind).
    pinned: set[int] = field(default_factory=set)
    path: np.ndarray | None = None  # (L, 2) exemplar frame, target frame
    index: int = 0  # which of the model's exemplars


def align(
    ex: np.ndarray,
    tgt: np.ndarray,
    ex_still: np.ndarray | None = None,
    tgt_still: np.ndarray | None = None,
) -> tuple[np.ndarray, float]:
    """The DTW path (L, 2) of exemplar frames to target frames, and its mean step cost.

    With `ex_still` / `tgt_still` (per frame: nothing moves, see `still_frames`), each pause is
    one frame to DTW, and the path is expanded back to every frame. A pause costs DTW once per
    frame it lasts, so a long hesitation of the teleoperator's, compared frame by frame, pulls
    the exemplar's own standstills (the stop at contact, before a push) onto it wherever it
    happens; compressed, a pause is a moment of the motion it interrupts.
    """
    from dtaidistance import dtw_ndim

    ex_runs = _runs(len(ex), ex_still)
    tgt_runs = _runs(len(tgt), tgt_still)
    ex_c, tgt_c = _compress(ex, ex_runs), _compress(tgt, tgt_runs)
    n, m = len(ex_c), len(tgt_c)
    # Sakoe-Chiba band: a third of the episode beyond the difference in length (phases of a
    # repeated task drift by less than that; the full matrix would cost twice as much).
    window = max(n, m) // 3 + abs(n - m) + 2
    path, dist = dtw_ndim.warping_path(ex_c, tgt_c, window=window, use_c=True, include_distance=True)
    arr = np.asarray(path, dtype=np.int64)
    cost = float(dist) ** 2 / max(1, len(arr))
    if len(ex_runs) == len(ex) and len(tgt_runs) == len(tgt):
        return arr, cost
    return _expand(arr, ex_runs, tgt_runs), cost


def still_frames(feat: np.ndarray, fps: float) -> np.ndarray:
    """Frames of a pause: every dimension (grippers too) below the still level for at least
    MIN_STILL frames in a row. Judged on positions smoothed over STILL_SMOOTH seconds (the
    features' own velocities are smoothed for sharp events and carry the sensor's noise)."""
    from scipy.ndimage import binary_opening, gaussian_filter1d

    half = feat.shape[1] // 2
    smooth = gaussian_filter1d(feat[:, :half], max(1.0, STILL_SMOOTH * fps), axis=0, mode="nearest")
    speed = np.linalg.norm(np.gradient(smooth, axis=0), axis=1)
    still = speed < STILL_LEVEL * max(float(percentile(speed, 90)), 1e-12)
    # Opening with MIN_STILL frames drops the shorter runs and keeps the others whole.
    return binary_opening(still, structure=np.ones(MIN_STILL, dtype=bool))


def _runs(n: int, still: np.ndarray | None) -> np.ndarray:
    """(R, 2) frame ranges [a, b) that become one frame each: every still run, and each other frame."""
    if still is None or not still.any():
        k = np.arange(n, dtype=np.int64)
        return np.stack([k, k + 1], axis=1)
    still = np.asarray(still[:n], dtype=bool)
    new = np.ones(n, dtype=bool)
    new[1:] = ~(still[1:] & still[:-1])
    starts = np.flatnonzero(new)
    return np.stack([starts, np.append(starts[1:], n)], axis=1).astype(np.int64)


def _compress(x: np.ndarray, runs: np.ndarray) -> np.ndarray:
    """Each run's mean frame."""
    if len(runs) == len(x):
        return x
    sums = np.add.reduceat(x, runs[:, 0], axis=0)
    return np.ascontiguousarray(sums / (runs[:, 1] - runs[:, 0])[:, None])


def _expand(path: np.ndarray, ex_runs: np.ndarray, tgt_runs: np.ndarray) -> np.ndarray:
    """A path over compressed frames as a monotone path over every frame: each pair of runs
    becomes a straight line through their frames (a run already walked stays at its last frame)."""
    path = np.asarray(path, dtype=np.int64)
    a1, b1 = ex_runs[path[:, 0], 0].copy(), ex_runs[path[:, 0], 1]
    a2, b2 = tgt_runs[path[:, 1], 0].copy(), tgt_runs[path[:, 1], 1]
    again_i = np.zeros(len(path), dtype=bool)
    again_j = np.zeros(len(path), dtype=bool)
    again_i[1:] = path[1:, 0] == path[:-1, 0]
    again_j[1:] = path[1:, 1] == path[:-1, 1]
    a1[again_i] = b1[again_i] - 1
    a2[again_j] = b2[again_j] - 1
    len1, len2 = b1 - a1, b2 - a2
    steps = np.maximum(len1, len2)
    step = np.repeat(np.arange(len(path)), steps)
    k = np.arange(int(steps.sum())) - np.repeat(np.cumsum(steps) - steps, steps)
    i = a1[step] + (k * len1[step]) // steps[step]
    j = a2[step] + (k * len2[step]) // steps[step]
    return np.stack([i, j], axis=1).astype(np.int64)


def path_maps(path: np.ndarray, n_ex: int) -> tuple[np.ndarray, np.ndarray]:
    """For each exemplar frame: the first target frame it maps to, and how many it maps to."""
    path = np.asarray(path, dtype=np.int64).reshape(-1, 2)
    first = np.full(n_ex, -1, dtype=np.int64)
    frames, at = np.unique(path[:, 0], return_index=True)
    first[frames] = path[at, 1]
    count = np.bincount(path[:, 0], minlength=n_ex)[:n_ex]
    # every exemplar frame is on a DTW path; guard anyway (a frame off it takes the one before's)
    if (first < 0).any():
        have = np.where(first >= 0, np.arange(n_ex), 0)
        first = np.where(first >= 0, first, first[np.maximum.accumulate(have)])
        first[first < 0] = 0
    return first, count


def frame_of(t: float, fps: float, n: int) -> int:
    return int(min(max(round(t * fps), 0), n))


def map_time(al: Alignment, t: float, fps: float, n_target: int) -> float:
    """An exemplar time as a target time (frame grid), through the alignment."""
    n_ex = len(al.to_target)
    i = frame_of(t, fps, n_ex)
    if i >= n_ex:
        return n_target / fps
    return float(al.to_target[i]) / fps


def boundaries(
    al: Alignment,
    n: int,
    fps: float,
    ex_events: list[Event] | None = None,
    tgt_events: list[Event] | None = None,
    tgt_cuts: list[int] | None = None,
) -> list[int]:
    """The exemplar's inner boundaries as target frames (`n` of them): through the path, then
    put at the same kinematic event as in the exemplar (anchors.py) where there is one.

    A boundary no event pins down stays where the path puts it. Snapping it to the nearest
    start or end of motion instead (as an earlier version did) moved it onto the end of
    whichever pause was nearest; with pauses compressed in `align`, the path's own position is
    the better one (F1@0.5 with one exemplar, single-joint seeds 11 / 5 / 7:
    0.958 / 0.920 / 0.853 with the snap, 0.975 / 0.932 / 0.903 without)."""
    n_ex = len(al.to_target)
    raw = [
        int(al.to_target[min(frame_of(s.start, fps, n_ex), n_ex - 1)])
        for s in al.exemplar.annotation.segments[1:]
    ]
    starts = [min(frame_of(s.start, fps, n_ex), n_ex - 1) for s in al.exemplar.annotation.segments[1:]]
    ex_events, tgt_events = ex_events or [], tgt_events or []
    # A grasp that missed in the exemplar but not here: its segments (the miss and the new
    # approach, up to the grasp that holds) have nothing to map to and are dropped.
    dropped: set[int] = set()
    ex_extra, _ = missed_grasps(ex_events, tgt_events)
    for miss in ex_extra:
        hold = next_event(ex_events, miss.frame, "close", miss.arm, "holds")
        stop = hold.frame if hold is not None else miss.frame + round(0.4 * fps)
        dropped |= {
            k
            for k, b in enumerate(starts)
            if miss.frame - ANCHOR_WITHIN * fps <= b < stop - ANCHOR_WITHIN * fps
        }
    out: list[int] = []
    for k, (b, j) in enumerate(zip(starts, raw, strict=True)):
        lo = out[-1] if out else 0
        hi = raw[k + 1] if k + 1 < len(raw) else n
        if k in dropped:
            out.append(lo)  # zero length: the segment vanishes
            continue
        found = anchor(b, ex_events, fps) if ex_events else None
        snapped = None
        if found is not None:
            ctx = after_gripper(found[0], ex_events)
            snapped = snap(
                j,
                found,
                tgt_events,
                lo,
                max(lo + 2, hi),
                fps,
                rank=ordinal(found[0], ex_events),
                context=ctx,
                context_rank=ordinal(ctx[0], ex_events) if ctx else None,
            )
        window = ZERO_SHOT_SNAP
        # Only a gripper event pins a boundary: starts and ends of motion come and go with
        # every pause of the teleoperator's.
        if snapped is not None and found is not None and found[0].kind in ("close", "open"):
            al.pinned.add(snapped)
        if snapped is None:
            snapped = j
        else:
            window = ZERO_SHOT_CONFIRM
        # Where the zero-shot analysis of this episode cuts nearby, it cuts precisely: a boundary
        # no event pins down moves there, a pinned one only when the cut is very near.
        near = [c for c in tgt_cuts or [] if abs(c - snapped) <= window * fps and lo < c < max(lo + 2, hi)]
        if near:
            snapped = min(near, key=lambda c: abs(c - snapped))
        out.append(max(snapped, lo))
    # Zero-length segments of dropped boundaries take the next boundary's frame.
    for k in sorted(dropped, reverse=True):
        if k + 1 < len(out):
            out[k] = out[k + 1]
        else:
            out[k] = n
    return out
