"""Proposals copied from accepted episodes of the same task by dynamic time warping.

Most datasets repeat one task many times. Once a person has accepted an episode,
the others are the same motions at other speeds, with other pauses: aligning
their signals (every numeric state and action dimension, normalized per episode,
and their velocities) to the accepted one with DTW (dtaidistance, C, with a
Sakoe-Chiba band) maps every accepted time to a time in the new episode. What is
anchored in time comes across through that map: segment boundaries and names,
dialogue turns, questions, and the times of box, contact and trajectory
keyframes (their image positions are copied and marked low-confidence: only a
tracker can move them).

Several exemplars vote frame by frame (with equal weight the vote is the median
boundary); the alignment's cost, relative to what aligning the exemplars with one
another costs, is the episode's uncertainty, so the review queue shows first the
episode the exemplars explain worst.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import msgspec
import numpy as np
from scipy.ndimage import gaussian_filter1d

from core.annotations import EpisodeAnnotation, Segment, repair_cover
from core.dataset import EpisodeSignals

from .signals import GRIPPER_WORDS, clip01, noise_level, tokens

# Velocity features are scaled by this many seconds so that a phase's typical
# velocity (one range per phase, phases last about a second) weighs like its position.
VELOCITY_SECONDS = 1.0
# Gripper dimensions weigh this much more: their closing and opening are the sharpest events.
GRIPPER_WEIGHT = 2.0
# A dimension whose range in every episode is within this many noise levels carries no motion.
MIN_RANGE_NOISE = 12.0
# Fewer frames than this cannot be aligned meaningfully.
MIN_ALIGN_FRAMES = 4
# Keyframes copied from an exemplar keep their image position, so they are flagged with this confidence.
COPIED_CONFIDENCE = 0.2
MAX_EXEMPLARS = 6
# Below this activity (a fraction of the episode's brisk motion) a frame is still.
STILL_LEVEL = 0.12
# A pause lasts at least this many frames.
MIN_STILL = 3


class PropagationError(ValueError):
    """No exemplar can be aligned to the episode; the message says why."""


@dataclass
class Exemplar:
    """An accepted episode and its signals."""

    annotation: EpisodeAnnotation
    signals: EpisodeSignals


@dataclass
class Alignment:
    """One exemplar aligned to the target: frame maps both ways and the path's cost."""

    exemplar: Exemplar
    to_target: np.ndarray  # (n_exemplar,) first target frame each exemplar frame maps to
    cost: float  # mean squared feature distance per path step
    spread: np.ndarray  # (n_exemplar,) how many target frames each exemplar frame maps to
    # Target frame of each of the exemplar's inner boundaries (after refinement).
    bounds: list[int] = field(default_factory=list)


@dataclass
class Propagated:
    segments: list[Segment]
    items: dict[str, list[Any]]
    uncertainty: float
    notes: dict[str, Any] = field(default_factory=dict)


def fingerprint(annotations: Sequence[EpisodeAnnotation]) -> str:
    """A short hash of an exemplar set: which episodes, at which revisions."""
    keys = sorted((a.dataset, a.episode, a.revision) for a in annotations)
    return hashlib.sha1(repr(keys).encode()).hexdigest()[:10]


# ---------------------------------------------------------------- features


def layout(sig: EpisodeSignals) -> dict[str, tuple[str, ...]]:
    """Feature name -> its dimension names: what two episodes must share to be aligned."""
    return {f: tuple(sig.names.get(f, ())) for f in sorted(sig.channels)}


def _is_gripper(name: str) -> bool:
    return any(w in t for t in tokens(name) for w in GRIPPER_WORDS)


def _clean(x: np.ndarray) -> np.ndarray:
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


def _matrix(sig: EpisodeSignals, keys: Sequence[tuple[str, int]]) -> np.ndarray:
    return _clean(np.stack([sig.channels[f][:, d] for f, d in keys], axis=1))


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
        mats = [_matrix(e.signals, keys) for e in exemplars]
        ranges = np.stack([np.percentile(m, 98, axis=0) - np.percentile(m, 2, axis=0) for m in mats])
        noise = np.stack([[noise_level(m[:, j]) for j in range(m.shape[1])] for m in mats])
        moving = (ranges > MIN_RANGE_NOISE * np.maximum(noise, 1e-12)).any(axis=0)
        self.keys = [k for k, ok in zip(keys, moving, strict=True) if ok]
        typical = np.median(ranges, axis=0)[moving]
        self.floor = np.maximum(0.25 * typical, 1e-9)
        names = [first.names.get(f, [])[d] if d < len(first.names.get(f, [])) else "" for f, d in self.keys]
        self.weights = np.array([GRIPPER_WEIGHT if _is_gripper(n) else 1.0 for n in names])
        # The arm's dimensions (not the grippers'): what "starts or stops moving" is judged on.
        self.arm = np.array([not _is_gripper(n) for n in names], dtype=bool)

    def __call__(self, sig: EpisodeSignals) -> np.ndarray:
        """(T, 2 * dims) positions and velocities, normalized and weighted."""
        x = _matrix(sig, self.keys)
        lo, hi = np.percentile(x, 2, axis=0), np.percentile(x, 98, axis=0)
        u = (x - lo) / np.maximum(hi - lo, self.floor)
        sigma = max(1.0, 0.04 * self.fps)
        v = np.gradient(gaussian_filter1d(u, sigma, axis=0, mode="nearest"), axis=0) * self.fps
        v *= VELOCITY_SECONDS
        return np.ascontiguousarray(np.concatenate([u, v], axis=1) * np.tile(self.weights, 2))


# ---------------------------------------------------------------- alignment


def align(ex: np.ndarray, tgt: np.ndarray) -> tuple[np.ndarray, float]:
    """The DTW path (L, 2) of exemplar frames to target frames, and its mean step cost."""
    from dtaidistance import dtw_ndim

    n, m = len(ex), len(tgt)
    window = max(n, m) // 2 + abs(n - m) + 2
    path, dist = dtw_ndim.warping_path(ex, tgt, window=window, use_c=True, include_distance=True)
    arr = np.asarray(path, dtype=np.int64)
    return arr, float(dist) ** 2 / max(1, len(arr))


def _maps(path: np.ndarray, n_ex: int) -> tuple[np.ndarray, np.ndarray]:
    """For each exemplar frame: the first target frame it maps to, and how many it maps to."""
    first = np.full(n_ex, -1, dtype=np.int64)
    count = np.zeros(n_ex, dtype=np.int64)
    for i, j in path:
        if first[i] < 0:
            first[i] = j
        count[i] += 1
    # every exemplar frame is on a DTW path; guard anyway
    for i in range(n_ex):
        if first[i] < 0:
            first[i] = first[i - 1] if i else 0
    return first, count


def _frame(t: float, fps: float, n: int) -> int:
    return int(min(max(round(t * fps), 0), n))


def map_time(al: Alignment, t: float, fps: float, n_target: int) -> float:
    """An exemplar time as a target time (frame grid), through the alignment."""
    n_ex = len(al.to_target)
    i = _frame(t, fps, n_ex)
    if i >= n_ex:
        return n_target / fps
    return float(al.to_target[i]) / fps


# ---------------------------------------------------------------- the proposal


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


def _crossings(act: np.ndarray, a: int, z: int, rising: bool) -> list[int]:
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
        ex_cross = _crossings(ex_act, b - near, b + near + 1, rising)
        if ex_cross:
            break
    else:
        return j
    c_ex = min(ex_cross, key=lambda k: abs(k - b))
    offset = c_ex - b
    cands = [c for c in _crossings(tgt_act, lo + 1 + offset, hi + offset, rising) if lo < c - offset < hi]
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


def _boundaries(
    al: Alignment, ex_feat: np.ndarray, tgt_feat: np.ndarray, fps: float, arm: np.ndarray | None = None
) -> list[int]:
    """The exemplar's inner boundaries as target frames: through the path, then refined."""
    n_ex, n = len(al.to_target), len(tgt_feat)
    raw = [
        int(al.to_target[min(_frame(s.start, fps, n_ex), n_ex - 1)])
        for s in al.exemplar.annotation.segments[1:]
    ]
    starts = [min(_frame(s.start, fps, n_ex), n_ex - 1) for s in al.exemplar.annotation.segments[1:]]
    out: list[int] = []
    for k, (b, j) in enumerate(zip(starts, raw, strict=True)):
        lo = out[-1] if out else 0
        hi = raw[k + 1] if k + 1 < len(raw) else n
        out.append(max(refine_boundary(b, j, ex_feat, tgt_feat, lo, max(lo + 2, hi), fps, arm), lo))
    return out


def _labels(al: Alignment, fps: float, n: int) -> tuple[list[str], np.ndarray]:
    """Per target frame, the index of the exemplar segment name it falls in."""
    names = [s.name for s in al.exemplar.annotation.segments]
    out = np.zeros(n, dtype=np.int64)
    for k, j in enumerate(al.bounds, 1):
        out[j:] = k
    return names, out


def _vote(aligns: Sequence[Alignment], weights: np.ndarray, fps: float, n: int) -> list[tuple[str, int, int]]:
    """Runs (name, start, end) of the per-frame weighted vote over the exemplars' labels."""
    vocab: dict[str, int] = {}
    scores: list[np.ndarray] = []
    for al, w in zip(aligns, weights, strict=True):
        names, idx = _labels(al, fps, n)
        for k, name in enumerate(names):
            c = vocab.setdefault(name, len(vocab))
            if c == len(scores):
                scores.append(np.zeros(n))
            scores[c][idx == k] += w
    best = np.argmax(np.stack(scores), axis=0)
    inv = {v: k for k, v in vocab.items()}
    runs: list[tuple[str, int, int]] = []
    start = 0
    for j in range(1, n + 1):
        if j == n or best[j] != best[start]:
            runs.append((inv[int(best[start])], start, j))
            start = j
    return runs


def _drop_short(runs: list[tuple[str, int, int]], min_frames: int) -> list[tuple[str, int, int]]:
    """Flicker from the vote (a few frames of another label) joins the longer neighbour."""
    runs = list(runs)
    while len(runs) > 1:
        k = min(range(len(runs)), key=lambda i: runs[i][2] - runs[i][1])
        _, a, b = runs[k]
        if b - a >= min_frames:
            break
        if k == 0:
            n2, _, b2 = runs[1]
            runs[0:2] = [(n2, a, b2)]
        elif k == len(runs) - 1 or (runs[k - 1][2] - runs[k - 1][1]) >= (runs[k + 1][2] - runs[k + 1][1]):
            n0, a0, _ = runs[k - 1]
            runs[k - 1 : k + 1] = [(n0, a0, b)]
        else:
            n2, _, b2 = runs[k + 1]
            runs[k : k + 2] = [(n2, a, b2)]
        # neighbours that now share a name are one run
        merged: list[tuple[str, int, int]] = []
        for r in runs:
            if merged and merged[-1][0] == r[0]:
                merged[-1] = (r[0], merged[-1][1], r[2])
            else:
                merged.append(r)
        runs = merged
    return runs


def _boundary_confidence(aligns: Sequence[Alignment], at: int, fps: float) -> float:
    """How well the exemplars agree on a boundary and how sharply the path pins it down."""
    near = [min(al.bounds, key=lambda j: abs(j - at)) for al in aligns if al.bounds]
    if not near:
        return 0.3
    off = float(np.median(np.abs(np.asarray(near) - at))) / fps
    agree = clip01(1.0 - off / 0.5)
    return round(0.3 + 0.7 * agree, 4) if len(aligns) > 1 else 0.8


def _uncertainty(costs: Sequence[float], reference: float | None) -> float:
    """How badly the best exemplar explains the episode, from 0 (as well as exemplars explain
    each other) to 1 (many times worse); without a reference, from the absolute feature error."""
    best = min(costs)
    if reference is not None and reference > 0:
        ratio = best / reference
        return clip01(0.1 + 0.45 * math.log2(max(ratio, 1e-9)) + 0.1)
    rms = math.sqrt(best)
    return clip01((rms - 0.05) / 0.6)


def _carry_items(al: Alignment, fps: float, n: int, duration: float, tag: str) -> dict[str, list[Any]]:
    """Everything anchored in time in the exemplar, at the mapped times of the target."""
    ann = al.exemplar.annotation

    def t_of(t: float) -> float:
        return min(map_time(al, t, fps, n), duration)

    def moved(item: Any, **changes: Any) -> Any:
        return msgspec.structs.replace(item, source=tag, **changes)

    items: dict[str, list[Any]] = {
        "dialogue": [moved(d, t=t_of(d.t), confidence=0.5) for d in ann.dialogue],
        "qa": [moved(q, t=t_of(q.t), confidence=0.5) for q in ann.qa],
        "boxes": [moved(b, t=t_of(b.t), confidence=COPIED_CONFIDENCE) for b in ann.boxes],
        "contacts": [moved(c, t=t_of(c.t), confidence=COPIED_CONFIDENCE) for c in ann.contacts],
        "trajectories": [
            moved(
                tr,
                points=[(t_of(t), x, y) for t, x, y in tr.points],
                confidence=COPIED_CONFIDENCE,
            )
            for tr in ann.trajectories
        ],
    }
    return items


class ExemplarModel:
    """An exemplar set ready to align episodes to: its feature space, features and self-cost."""

    def __init__(self, exemplars: Sequence[Exemplar], fps: float) -> None:
        usable = [e for e in exemplars if e.annotation.segments and len(e.signals) >= MIN_ALIGN_FRAMES]
        if not usable:
            raise PropagationError("no exemplar has segments and enough frames")
        self.fps = fps
        self.exemplars = usable
        self.space = FeatureSpace(usable, fps)
        if not self.space.keys:
            raise PropagationError("no dimension moves in the exemplars: nothing to align on")
        self.features = [self.space(e.signals) for e in usable]
        # What aligning the exemplars with one another costs: the yardstick of a good alignment.
        self.reference: float | None = None
        if len(usable) >= 2:
            pair = [
                align(self.features[i], self.features[j])[1]
                for i in range(len(usable))
                for j in range(i + 1, len(usable))
            ]
            self.reference = float(np.median(pair))

    def _nearest(self, n: int) -> list[int]:
        """The exemplars to align to: all of them, or the MAX_EXEMPLARS closest in length."""
        order = sorted(range(len(self.exemplars)), key=lambda i: abs(len(self.exemplars[i].signals) - n))
        return sorted(order[:MAX_EXEMPLARS])

    def propose(
        self, target: EpisodeSignals, duration: float, tag: str, min_segment: float = 0.2
    ) -> Propagated:
        """Segments and time-anchored items for `target` (which must share the exemplars' layout)."""
        fps = self.fps
        n = len(target)
        if n < MIN_ALIGN_FRAMES:
            raise PropagationError(f"the episode has {n} frame(s): too short to align")
        tgt = self.space(target)
        aligns = []
        for i in self._nearest(n):
            path, cost = align(self.features[i], tgt)
            first, count = _maps(path, len(self.features[i]))
            al = Alignment(self.exemplars[i], first, cost, count)
            al.bounds = _boundaries(al, self.features[i], tgt, fps, self.space.arm)
            aligns.append(al)
        costs = np.array([a.cost for a in aligns])
        # Equal votes (so the vote is the median boundary); a far worse exemplar counts less.
        weights = np.where(costs <= 2.0 * costs.min() + 1e-12, 1.0, 0.25)
        runs = _drop_short(_vote(aligns, weights, fps, n), max(1, round(min_segment * fps)))
        segments = []
        for k, (name, a, b) in enumerate(runs):
            c_start = 1.0 if k == 0 else _boundary_confidence(aligns, a, fps)
            c_end = 1.0 if k == len(runs) - 1 else _boundary_confidence(aligns, b, fps)
            segments.append(
                Segment(
                    name=name,
                    start=a / fps,
                    end=duration if b >= n else b / fps,
                    source=tag,
                    confidence=round(min(c_start, c_end), 4),
                )
            )
        best = aligns[int(np.argmin(costs))]
        notes = {
            "proposal": "aligned",
            "aligned_to": [a.exemplar.annotation.episode for a in aligns],
            "alignment_cost": {str(a.exemplar.annotation.episode): round(a.cost, 5) for a in aligns},
            "exemplar_cost": None if self.reference is None else round(self.reference, 5),
            "items_from": best.exemplar.annotation.episode,
            "dimensions": len(self.space.keys),
        }
        return Propagated(
            repair_cover(segments, duration, fps),
            _carry_items(best, fps, n, duration, tag),
            round(_uncertainty(costs.tolist(), self.reference), 4),
            notes,
        )
