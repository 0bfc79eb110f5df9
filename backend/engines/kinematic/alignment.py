"""One exemplar aligned to an episode: the DTW path and the exemplar's boundaries put at the
same events (or starts of motion) of the episode."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .anchors import ANCHOR_WITHIN, Event, after_gripper, anchor, missed_grasps, next_event, ordinal, snap
from .features import Exemplar

# A boundary no event pins down moves to a zero-shot cut this close (seconds).
ZERO_SHOT_SNAP = 0.6
ZERO_SHOT_CONFIRM = 0.5
# Below this activity (a fraction of the episode's brisk motion) a frame is still.
STILL_LEVEL = 0.12
# A pause lasts at least this many frames.
MIN_STILL = 3


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


def align(ex: np.ndarray, tgt: np.ndarray) -> tuple[np.ndarray, float]:
    """The DTW path (L, 2) of exemplar frames to target frames, and its mean step cost."""
    from dtaidistance import dtw_ndim

    n, m = len(ex), len(tgt)
    # Sakoe-Chiba band: a third of the episode beyond the difference in length (phases of a
    # repeated task drift by less than that; the full matrix would cost twice as much).
    window = max(n, m) // 3 + abs(n - m) + 2
    path, dist = dtw_ndim.warping_path(ex, tgt, window=window, use_c=True, include_distance=True)
    arr = np.asarray(path, dtype=np.int64)
    return arr, float(dist) ** 2 / max(1, len(arr))


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


def activity(feat: np.ndarray, arm: np.ndarray | None = None) -> np.ndarray:
    """How much the arm moves per frame (norm of its velocity features), in units of the
    episode's brisk motion (its 90th percentile). `arm` masks the dimensions that count: a
    gripper's snap is not the arm starting to move."""
    half = feat.shape[1] // 2
    vel = feat[:, half:]
    if arm is not None and arm.any():
        vel = vel[:, arm]
    speed = np.linalg.norm(vel, axis=1)
    return speed / max(float(np.percentile(speed, 90)), 1e-9)


def crossings(act: np.ndarray, a: int, z: int, rising: bool) -> list[int]:
    """Frames in (a, z) where activity crosses the still level (upwards if `rising`), after at
    least a few still frames (a pause, not a flicker of noise)."""
    still = act < STILL_LEVEL
    out = []
    for k in range(max(a, 1), min(z, len(act))):
        if rising and still[k - 1] and not still[k] and still[max(0, k - MIN_STILL) : k].all():
            out.append(k)
        if not rising and not still[k - 1] and still[k] and still[k : k + MIN_STILL].all():
            out.append(k)
    return out


def refine_boundary(
    b: int,
    j: int,
    ex_feat: np.ndarray,
    tgt_feat: np.ndarray,
    lo: int,
    hi: int,
    fps: float,
    arm: np.ndarray | None = None,
) -> int:
    """Put a boundary the exemplar places at a start (or end) of motion at the same start (end)
    of motion in the target.

    Where one episode pauses and the other does not, DTW maps the whole pause to one instant of
    the other and may put the boundary anywhere in it. A person cuts where the motion starts or
    stops, so when the exemplar's boundary sits at such an instant, the target's goes to the
    start (end) of motion nearby whose next (last) moments look most like the exemplar's, with
    the same offset. Between two motions that meet at a standstill, the start of the next one
    counts: a pause belongs to the phase it interrupts.
    """
    ex_act, tgt_act = activity(ex_feat, arm), activity(tgt_feat, arm)
    near = max(2, round(0.3 * fps))
    for rising in (True, False):
        ex_cross = crossings(ex_act, b - near, b + near + 1, rising)
        if ex_cross:
            break
    else:
        return j
    c_ex = min(ex_cross, key=lambda k: abs(k - b))
    offset = c_ex - b
    cands = [c for c in crossings(tgt_act, lo + 1 + offset, hi + offset, rising) if lo < c - offset < hi]
    if not cands:
        return j
    w = max(3, round(0.4 * fps))

    def window(feat: np.ndarray, c: int) -> np.ndarray:
        a, z = (c, c + w) if rising else (c - w, c)
        idx = np.clip(np.arange(a, z), 0, len(feat) - 1)
        return feat[idx]

    ref = window(ex_feat, c_ex)
    scale = float(np.mean(ref**2)) + 1e-9

    def score(c: int) -> float:
        shape = float(np.mean((window(tgt_feat, c) - ref) ** 2)) / scale
        return shape + 0.5 * abs(c - offset - j) / fps

    k = min(cands, key=score) - offset
    return int(min(max(k, lo + 1), hi - 1))


def boundaries(
    al: Alignment,
    ex_feat: np.ndarray,
    tgt_feat: np.ndarray,
    fps: float,
    arm: np.ndarray | None = None,
    ex_events: list[Event] | None = None,
    tgt_events: list[Event] | None = None,
    tgt_cuts: list[int] | None = None,
) -> list[int]:
    """The exemplar's inner boundaries as target frames: through the path, then put at the same
    kinematic event as in the exemplar (anchors.py), or failing that at the same start of motion."""
    n_ex, n = len(al.to_target), len(tgt_feat)
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
        if (
            snapped is not None
            and found is not None
            and found[0].kind in ("close", "open", "onset", "start", "end")
        ):
            al.pinned.add(snapped)
        if snapped is None:
            snapped = refine_boundary(b, j, ex_feat, tgt_feat, lo, max(lo + 2, hi), fps, arm)
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
