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

import difflib
import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import msgspec
import numpy as np
from scipy.ndimage import gaussian_filter1d

from core.annotations import EpisodeAnnotation, Segment, repair_cover
from core.dataset import EpisodeSignals

from .anchors import (
    ANCHOR_WITHIN,
    Event,
    after_gripper,
    anchor,
    episode_kinematics,
    missed_grasps,
    next_event,
    ordinal,
    snap,
)
from .naming import adapt_name, word_map
from .signals import GRIPPER_WORDS, clip01, noise_levels, tokens

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
# Cuts closer than this (seconds) are one.
MERGE_NEAR = 0.3
# A boundary no event pins down moves to a zero-shot cut this close (seconds).
ZERO_SHOT_SNAP = 0.6
ZERO_SHOT_CONFIRM = 0.5
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
    # Those of them put at the same gripper event as in the exemplar (the surest kind).
    pinned: set[int] = field(default_factory=set)
    path: np.ndarray | None = None  # (L, 2) exemplar frame, target frame
    index: int = 0  # which of the model's exemplars


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


def layout(sig: EpisodeSignals) -> dict[str, tuple[int, tuple[str, ...]]]:
    """Feature name -> its width and dimension names: what two episodes must share to be aligned."""
    return {f: (int(np.shape(sig.channels[f])[1]), tuple(sig.names.get(f, ()))) for f in sorted(sig.channels)}


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
        noise = np.stack([noise_levels(m) for m in mats])
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
        int(al.to_target[min(_frame(s.start, fps, n_ex), n_ex - 1)])
        for s in al.exemplar.annotation.segments[1:]
    ]
    starts = [min(_frame(s.start, fps, n_ex), n_ex - 1) for s in al.exemplar.annotation.segments[1:]]
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


def symbolic_labels(
    ex_spans: list[tuple[int, int, str]],
    person: Sequence[Segment],
    tgt_spans: list[tuple[int, int, str]],
    fps: float,
) -> dict[int, str]:
    """The person's name for each zero-shot span of the episode (by its start frame), read off
    the exemplar without timing: the zero-shot analysis names the same events the same way in
    both episodes (a grasp, the lift after it, the release), so the two sequences of zero-shot
    names align (difflib) and each span takes the person's name that covers the matching span of
    the exemplar. A span with no match (the retry of a grasp that missed here only) takes the
    person's name of the same zero-shot name elsewhere in the exemplar, or none."""

    def person_at(a: int, b: int) -> str:
        best, cover = "", -1.0
        for s in person:
            ov = min(b / fps, s.end) - max(a / fps, s.start)
            if ov > cover:
                best, cover = s.name, ov
        return best

    def split_inside(a: int, b: int) -> bool:
        """The person cut inside this zero-shot span: it has no one name."""
        edge = ANCHOR_WITHIN * fps
        return any(a + edge < s.start * fps < b - edge for s in person[1:])

    ex_names = [z for _, _, z in ex_spans]
    ex_person = [None if split_inside(a, b) else person_at(a, b) for a, b, _ in ex_spans]
    by_name: dict[str, str] = {}
    for z, p in zip(ex_names, ex_person, strict=True):
        if p is not None:
            by_name.setdefault(z, p)
    tgt_names = [z for _, _, z in tgt_spans]
    out: dict[int, str] = {}
    for op, i1, i2, j1, j2 in difflib.SequenceMatcher(a=ex_names, b=tgt_names, autojunk=False).get_opcodes():
        for k, j in enumerate(range(j1, j2)):
            if op == "equal" or (op == "replace" and i2 - i1 == j2 - j1):
                name = ex_person[i1 + k]
            else:
                name = by_name.get(tgt_names[j])
            if name is not None:  # else the aligned proposal names it
                out[tgt_spans[j][0]] = name
    return out


def _fuse(
    runs: list[tuple[str, int, int]],
    cuts: list[int],
    best: Alignment,
    n: int,
    fps: float,
    symbolic: dict[int, str] | None = None,
) -> list[tuple[str, int, int]]:
    """The person's segments, cut where this episode's own kinematics cut.

    The aligned proposal knows the person's names and which moments they cut at, but only
    to within DTW's error; the zero-shot analysis of the episode itself cuts precisely. So
    the episode is cut at its zero-shot cuts plus the aligned boundaries that sit at a gripper
    event the exemplar also had and that no zero-shot cut is near, and each piece takes the
    name the aligned proposal gives most of its frames; neighbours with one name are one.
    """
    if not cuts:
        return runs
    pinned = best.pinned
    # Each target frame's name: what the exemplar frames the path pairs it with are called.
    segs = best.exemplar.annotation.segments
    ex_label = np.zeros(len(best.to_target), dtype=np.int64)
    for k, s in enumerate(segs[1:], 1):
        ex_label[_frame(s.start, fps, len(ex_label)) :] = k
    votes = np.zeros((n, len(segs)))
    for i, j in best.path if best.path is not None else []:
        votes[j, ex_label[i]] += 1
    labels = np.array([segs[int(k)].name for k in np.argmax(votes, axis=1)], dtype=object)
    for name, a, b in runs:
        labels[a:b] = name
    near = round(0.5 * fps)
    symbolic = symbolic or {}
    extra = [
        a
        for _, a, _ in runs[1:]
        if any(abs(a - p) <= 2 for p in pinned) and all(abs(a - c) > near for c in cuts)
    ]
    bounds = sorted({0, *[c for c in cuts if 0 < c < n], *extra})
    zs = sorted({0, *[c for c in cuts if 0 < c < n]})
    out: list[tuple[str, int, int]] = []
    for i, a in enumerate(bounds):
        b = bounds[i + 1] if i + 1 < len(bounds) else n
        if b <= a:
            continue
        whole = a in zs and (b == n or b in zs)  # a zero-shot span no aligned boundary splits
        if whole and symbolic and a in symbolic:
            name = symbolic[a]
        else:
            values, counts = np.unique(labels[a:b].astype(str), return_counts=True)
            name = str(values[int(np.argmax(counts))])
        if out and out[-1][0] == name:
            out[-1] = (name, out[-1][1], b)
        else:
            out.append((name, a, b))
    return out


def _insert_missed(
    runs: list[tuple[str, int, int]],
    best: Alignment,
    ex_events: list[Event],
    tgt_events: list[Event],
    fps: float,
) -> list[tuple[str, int, int]]:
    """A grasp that missed here and not in the exemplar: cut it in as the exemplar names a grasp
    and a new approach (the grasp's name from the miss, the approach's from where the arm sets off
    again after opening)."""
    _, tgt_extra = missed_grasps(ex_events, tgt_events)
    if not tgt_extra:
        return runs
    segs = best.exemplar.annotation.segments
    n_ex = len(best.to_target)
    cuts = {a: name for name, a, _ in runs}
    for miss in tgt_extra:
        hold = next_event(ex_events, -1, "close", miss.arm, "holds")
        if hold is None:
            continue
        k = next(
            (
                i
                for i, s in enumerate(segs)
                if abs(_frame(s.start, fps, n_ex) - hold.frame) <= ANCHOR_WITHIN * fps
            ),
            None,
        )
        if k is None or k == 0:
            continue
        grasp_name, reach_name = segs[k].name, segs[k - 1].name
        reopen = next_event(tgt_events, miss.frame, "open", miss.arm)
        again = next_event(tgt_events, reopen.frame if reopen else miss.frame, "onset", miss.arm)
        if any(abs(a - miss.frame) <= MERGE_NEAR * fps for a in cuts):
            continue
        cuts[miss.frame] = grasp_name
        if again is not None and not any(abs(a - again.frame) <= MERGE_NEAR * fps for a in cuts):
            cuts[again.frame] = reach_name
    starts = sorted(cuts)
    out = []
    n = runs[-1][2]
    for i, a in enumerate(starts):
        b = starts[i + 1] if i + 1 < len(starts) else n
        if out and out[-1][0] == cuts[a]:
            out[-1] = (cuts[a], out[-1][1], b)
        else:
            out.append((cuts[a], a, b))
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


def unexplained(cost: float, a: np.ndarray, b: np.ndarray) -> float:
    """The share of the two episodes' feature variance the alignment leaves unexplained, noise
    aside: the mean squared distance along the path beyond what the sensors' noise alone puts
    there (two noisy frames differ by twice their noise variance), over the features' spread."""

    def spread(x: np.ndarray) -> float:
        return float(np.mean(np.sum((x - x.mean(axis=0)) ** 2, axis=1)))

    noise = float(np.sum(noise_levels(a) ** 2) + np.sum(noise_levels(b) ** 2))
    signal = 0.5 * (spread(a) + spread(b)) - 0.5 * noise
    return max(0.0, cost - noise) / max(signal, 1e-12)


def _uncertainty(share: float, structure: float) -> float:
    """How badly the exemplars explain the episode: the variance their best alignment leaves
    unexplained (episodes of one task differ in where things are, so a quarter is a close match
    and most of it none), plus what the alignment could not carry over (grasps that missed in
    one episode only, boundaries no event pins down)."""
    return clip01((share - 0.25) / 0.6 + structure)


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
        kin = [episode_kinematics(e.signals, fps, e.annotation.task) for e in usable]
        self.events = [k.events for k in kin]
        self.zero_shot = [k.spans for k in kin]
        self.signatures = event_signatures([e for k in kin for e in k.events])
        self.aligned = [
            np.hstack([f, event_channels(ev, len(f), self.signatures, fps)])
            for f, ev in zip(self.features, self.events, strict=True)
        ]
        # What aligning the exemplars with one another costs: the yardstick of a good alignment.
        self.reference: float | None = None
        if len(usable) >= 2:
            pair = [
                align(self.features[i], self.features[j])[1]
                for i in range(len(usable))
                for j in range(i + 1, len(usable))
            ]
            self.reference = float(np.median(pair))

    @staticmethod
    def _in_words_of(ex: Exemplar, task: str) -> Exemplar:
        """The exemplar as the person would have written it for this episode: where each
        episode's instruction names its own objects, so do the person's names and texts."""
        mapping = word_map(ex.annotation.task, task) if task else {}
        if not mapping:
            return ex
        ann = ex.annotation

        def words(text: str) -> str:
            return adapt_name(text, mapping)

        def each(items: list[Any], **fields: Callable[[Any], Any]) -> list[Any]:
            return [msgspec.structs.replace(x, **{k: f(x) for k, f in fields.items()}) for x in items]

        adapted = msgspec.structs.replace(
            ann,
            task=task,
            segments=each(ann.segments, name=lambda x: words(x.name)),
            dialogue=each(
                ann.dialogue,
                skill=lambda x: words(x.skill),
                user_prompt=lambda x: words(x.user_prompt),
                robot_utterance=lambda x: words(x.robot_utterance),
            ),
            qa=each(
                ann.qa,
                question=lambda x: words(x.question),
                answer=lambda x: words(x.answer),
                choices=lambda x: [words(c) for c in x.choices],
            ),
            boxes=each(ann.boxes, label=lambda x: words(x.label)),
        )
        return Exemplar(adapted, ex.signals)

    def _nearest(self, n: int) -> list[int]:
        """The exemplars to align to: all of them, or the MAX_EXEMPLARS closest in length."""
        order = sorted(range(len(self.exemplars)), key=lambda i: abs(len(self.exemplars[i].signals) - n))
        return sorted(order[:MAX_EXEMPLARS])

    def propose(
        self, target: EpisodeSignals, duration: float, tag: str, min_segment: float = 0.2, task: str = ""
    ) -> Propagated:
        """Segments and time-anchored items for `target` (which must share the exemplars' layout)."""
        fps = self.fps
        n = len(target)
        if n < MIN_ALIGN_FRAMES:
            raise PropagationError(f"the episode has {n} frame(s): too short to align")
        tgt = self.space(target)
        tgt_kin = episode_kinematics(target, fps, task)
        tgt_events = tgt_kin.events
        tgt_aligned = np.hstack([tgt, event_channels(tgt_events, len(tgt), self.signatures, fps)])
        aligns = []
        for i in self._nearest(n):
            path, cost = align(self.aligned[i], tgt_aligned)
            first, count = _maps(path, len(self.features[i]))
            al = Alignment(self._in_words_of(self.exemplars[i], task), first, cost, count, path=path, index=i)
            al.bounds = _boundaries(
                al, self.features[i], tgt, fps, self.space.arm, self.events[i], tgt_events, tgt_kin.cuts
            )
            aligns.append(al)
        costs = np.array([a.cost for a in aligns])
        # Equal votes (so the vote is the median boundary); a far worse exemplar counts less.
        weights = np.where(costs <= 2.0 * costs.min() + 1e-12, 1.0, 0.25)
        runs = _drop_short(_vote(aligns, weights, fps, n), max(1, round(min_segment * fps)))
        best_i = int(np.argmin(costs))
        ex_index = aligns[best_i].index
        runs = _insert_missed(runs, aligns[best_i], self.events[ex_index], tgt_events, fps)
        words = word_map(self.exemplars[aligns[best_i].index].annotation.task, task) if task else {}
        ex_spans = [(a, b, adapt_name(z, words)) for a, b, z in self.zero_shot[aligns[best_i].index]]
        symbolic = symbolic_labels(ex_spans, aligns[best_i].exemplar.annotation.segments, tgt_kin.spans, fps)
        runs = _fuse(runs, tgt_kin.cuts, aligns[best_i], n, fps, symbolic)
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
        share = unexplained(best.cost, self.aligned[best.index], tgt_aligned)
        ex_extra, tgt_extra = missed_grasps(self.events[best.index], tgt_events)
        unpinned = 1.0 - len(best.pinned) / max(1, len(best.bounds))
        structure = 0.15 * (len(ex_extra) + len(tgt_extra)) + 0.2 * unpinned
        notes = {
            "proposal": "aligned",
            "aligned_to": [a.exemplar.annotation.episode for a in aligns],
            "alignment_cost": {str(a.exemplar.annotation.episode): round(a.cost, 5) for a in aligns},
            "exemplar_cost": None if self.reference is None else round(self.reference, 5),
            "items_from": best.exemplar.annotation.episode,
            "dimensions": len(self.space.keys),
            "unexplained": round(share, 4),
            "missed_grasps": {"exemplar_only": len(ex_extra), "episode_only": len(tgt_extra)},
            "pinned_boundaries": f"{len(best.pinned)} of {len(best.bounds)}",
        }
        return Propagated(
            repair_cover(segments, duration, fps),
            _carry_items(best, fps, n, duration, tag),
            round(_uncertainty(share, structure), 4),
            notes,
        )
