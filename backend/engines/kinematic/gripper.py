"""Finding the gripper among a robot's channels, and its close/open transitions."""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from backend.engines.kinematic.jumps import remove_jumps
from backend.engines.kinematic.signals import (
    CLOSE_BELOW,
    GRIPPER_WORDS,
    MIN_SNR,
    OPEN_ABOVE,
    clip01,
    dim_label,
    feature_order,
    median,
    noise_level,
    noise_levels,
    percentile,
    smooth,
    tokens,
)
from core.dataset import EpisodeSignals


@dataclass
class ShapeScore:
    """How much a dimension behaves like a gripper, and the pieces of that judgement."""

    score: float
    snr: float = 0.0
    two_level: float = 0.0
    transitions: int = 0
    transit_fraction: float = 1.0
    returns: bool = False
    arm_correlation: float = math.nan
    stall: float = 0.0

    def as_notes(self) -> dict[str, Any]:
        return {
            "score": round(self.score, 3),
            "snr": round(self.snr, 1),
            "two_level": round(self.two_level, 3),
            "transitions": self.transitions,
            "transit_fraction": round(self.transit_fraction, 3),
            "returns_to_start": self.returns,
            "arm_correlation": None if math.isnan(self.arm_correlation) else round(self.arm_correlation, 3),
            "stall": round(self.stall, 3),
        }


def dim_speeds(arr: np.ndarray, fps: float) -> list[np.ndarray | None]:
    """Per-dimension speed in ranges per second (None for a dim that is only noise)."""
    out: list[np.ndarray | None] = []
    noise = noise_levels(arr)
    for d in range(arr.shape[1]):
        x = arr[:, d].astype(np.float64)
        lo, hi = percentile(x, 1.0), percentile(x, 99.0)
        if len(x) < 4 or hi - lo < 20.0 * max(float(noise[d]), 1e-12):
            out.append(None)
            continue
        u = smooth((x - lo) / (hi - lo), 2.0)
        out.append(np.abs(np.gradient(u)) * fps)
    return out


# Teleoperated grippers rest a while between strokes but also pre-shape while the arm reaches,
# so neither "always at a plateau" nor "never moves with the arm" holds for them.
TWO_LEVEL_FLOOR = 0.4
INDEP_CEIL = 0.6
INDEP_SPAN = 0.6


def stall_fraction(x: np.ndarray, command: np.ndarray, fps: float) -> float:
    """Share of the episode where the measured value sits well off its command while both hold
    still: a gripper closed on an object (the follower stalls short of the leader's squeeze).
    Joints follow their commands; only a gripper that holds things does this."""
    x, command = np.asarray(x, dtype=np.float64), np.asarray(command, dtype=np.float64)
    if len(x) < 8 or len(command) != len(x) or not (np.all(np.isfinite(x)) and np.all(np.isfinite(command))):
        return 0.0
    lo, hi = percentile(x, 1.0), percentile(x, 99.0)
    r = float(hi - lo)
    if r <= 0:
        return 0.0
    u, v = (x - lo) / r, (command - lo) / r
    w = max(1.0, 0.15 * fps)
    still = (np.abs(np.gradient(smooth(u, w))) * fps < 0.1) & (np.abs(np.gradient(smooth(v, w))) * fps < 0.1)
    gap = np.abs(smooth(u - v, max(1.0, 0.1 * fps))) > 0.12
    return float(np.mean(gap & still))


def gripper_shape(
    x: np.ndarray, fps: float, others: np.ndarray | None = None, command: np.ndarray | None = None
) -> ShapeScore:
    """Score in [0, 1] for "this dimension is a gripper", from its shape alone.

    A gripper sits at two levels (open, and closed on whatever it holds), moves
    between them in short steps, does so a few times, and usually ends where it
    started. And it moves on its own: it closes after the arm has stopped at the
    object and opens before the arm leaves, so its speed does not rise with the
    arm's (`others`: summed speed of the other dims), while arm axes move together.
    Each property is a factor, so a signal must have all of them: a wrist that
    turns once (one step, never back) or an arm axis that glides through many
    levels scores low. A single step scores at most 0.35: by shape alone that is as
    likely a joint that moved once.
    """
    x = np.asarray(x, dtype=np.float64)
    n = len(x)
    if n < 8 or not np.all(np.isfinite(x)):
        return ShapeScore(0.0)
    lo, hi = percentile(x, 1.0), percentile(x, 99.0)
    rng = float(hi - lo)
    sigma = max(noise_level(x), 1e-9 * (float(np.max(np.abs(x))) + 1.0))
    snr = rng / sigma if rng > 0 else 0.0
    if snr < MIN_SNR:
        return ShapeScore(0.0, snr=snr)
    u = (smooth(x, 1.0) - lo) / rng
    # Excursions: runs away from the starting (open) level. Each is one close and
    # one open; the closed level may differ per excursion (objects differ in size).
    k = max(2, min(n // 10, round(0.3 * fps)))
    home = float(median(u[:k]))
    away = np.abs(u - home) > 0.3
    near = np.abs(u - home) < 0.1
    edges = np.flatnonzero(np.diff(away.astype(np.int8))) + 1
    bounds = [0, *edges.tolist(), n]
    transitions = len(edges)
    for s0, s1 in itertools.pairwise(bounds):
        if away[s0]:
            near[s0:s1] = np.abs(u[s0:s1] - float(median(u[s0:s1]))) < 0.1
    two_level = float(np.mean(near))
    returns = not bool(away[-1])
    speed = np.abs(np.gradient(smooth(u, max(1.0, 0.05 * fps)))) * fps
    # Moving: faster than half a range per second, and clear of what noise alone
    # reads as speed (the median: a gripper is at rest most of the time).
    transit = float(np.mean(speed > max(0.5, 4.0 * float(median(speed)))))
    s_snr = clip01(math.log(snr / MIN_SNR) / math.log(30.0 / MIN_SNR))
    s_two = clip01((two_level - TWO_LEVEL_FLOOR) / 0.4)
    if transitions == 0:
        s_steps = 0.0
    elif transitions == 1:
        s_steps = 0.35
    else:
        rate = transitions / (n / fps)  # per second; a gripper toggles every few seconds at most
        s_steps = clip01(0.5 / rate) if rate > 0.5 else 1.0
    s_sharp = clip01(1.0 - transit / 0.4)
    s_return = 1.0 if returns else 0.8
    corr = math.nan
    if others is not None and len(others) == n and float(np.std(others)) > 0 and float(np.std(speed)) > 0:
        corr = float(np.corrcoef(speed, others)[0, 1])
    # Unknown (no other dims to compare with) is neither evidence for nor against.
    s_indep = 0.7 if math.isnan(corr) else clip01((INDEP_CEIL - corr) / INDEP_SPAN)
    score = s_snr * s_two * s_steps * s_sharp * s_return * s_indep
    stall = stall_fraction(x, command, fps) if command is not None else 0.0
    if stall >= 0.05 and transitions >= 1:
        # Stalling against its command while holding is the surest sign there is.
        score = max(score, 0.5 + 0.45 * clip01(stall / 0.2))
    return ShapeScore(clip01(score), snr, two_level, transitions, transit, returns, corr, stall)


@dataclass
class GripperChannel:
    feature: str
    dim: int
    name: str
    found_by: Literal["name", "shape"]
    shape: ShapeScore

    @property
    def label(self) -> str:
        return dim_label(self.feature, self.dim)

    @property
    def confidence(self) -> float:
        """How sure the channel is the gripper: a name is strong evidence, shape less so."""
        if self.found_by == "name":
            return 1.0
        return clip01(0.35 + 0.6 * self.shape.score)


def _scores(
    arr: np.ndarray,
    dims: Sequence[int],
    fps: float,
    against_others: bool = True,
    command: np.ndarray | None = None,
) -> dict[int, ShapeScore]:
    """Shape scores of some dims of one feature, each judged against the feature's other dims
    (unless `against_others` is off: a dim its name already calls the gripper needs no such test)."""
    if not against_others:
        return {d: gripper_shape(np.asarray(arr[:, d], dtype=np.float64), fps, None) for d in dims}
    arr, _ = remove_jumps(arr)
    speeds = dim_speeds(arr, fps)
    out = {}
    for d in dims:
        rest = [sp for j, sp in enumerate(speeds) if j != d and sp is not None]
        others = np.sum(rest, axis=0) if rest else None
        out[d] = gripper_shape(arr[:, d], fps, others, None if command is None else command[:, d])
    return out


def paired_command(sig: EpisodeSignals, feature: str) -> np.ndarray | None:
    """The other feature laid out like `feature` (the action beside the state): its command."""
    arr = sig.channels[feature]
    for f in feature_order(sig):
        if f != feature and sig.channels[f].shape == arr.shape and sig.names.get(f) == sig.names.get(feature):
            return sig.channels[f]
    return None


def find_gripper(
    sig: EpisodeSignals, fps: float, threshold: float
) -> tuple[GripperChannel | None, dict[str, Any]]:
    """The gripper channel (by name, else by shape) and notes on the search.

    Features are tried in order of preference (the state before the action), so a
    gripper in `observation.state` wins over the commanded one. A named gripper
    that never moves (a constant column) is not used: the search goes on by shape,
    so a mislabeled or dead channel does not silence the engine.
    """
    notes: dict[str, Any] = {}
    order = feature_order(sig)
    named_flat: list[str] = []
    for feature in order:
        arr = sig.channels[feature]
        names = sig.names.get(feature, [])
        hits = [
            i
            for i, n in enumerate(names)
            if i < arr.shape[1] and any(w in t for t in tokens(n) for w in GRIPPER_WORDS)
        ]
        if not hits:
            continue
        scored = _scores(arr, hits, fps, against_others=False)
        usable = {i: sc for i, sc in scored.items() if sc.snr >= MIN_SNR and sc.transitions >= 1}
        named_flat += [dim_label(feature, i) for i in hits if i not in usable]
        if usable:
            i = max(usable, key=lambda k: usable[k].score)
            return GripperChannel(feature, i, names[i], "name", usable[i]), notes
    if named_flat:
        notes["gripper_named_but_flat"] = named_flat
    candidates: dict[str, float] = {}
    chosen: GripperChannel | None = None
    for feature in order:
        arr = sig.channels[feature]
        names = sig.names.get(feature, [])
        scored = _scores(arr, range(arr.shape[1]), fps, command=paired_command(sig, feature))
        candidates.update({dim_label(feature, i): round(sc.score, 3) for i, sc in scored.items()})
        ok = {i: sc for i, sc in scored.items() if sc.transitions >= 2 and sc.score >= threshold}
        if ok and chosen is None:
            i = max(ok, key=lambda k: ok[k].score)
            name = names[i] if i < len(names) else dim_label(feature, i)
            chosen = GripperChannel(feature, i, name, "shape", ok[i])
    notes["gripper_shape_candidates"] = dict(sorted(candidates.items(), key=lambda kv: -kv[1])[:3])
    return chosen, notes


@dataclass
class Transition:
    """One gripper close or open: frames [start, end) where it moves, and its evidence."""

    kind: Literal["close", "open"]
    start: int
    end: int
    confidence: float


def gripper_transitions(x: np.ndarray, fps: float, channel_conf: float) -> tuple[list[Transition], bool, str]:
    """Close/open transitions of a gripper signal, whether it starts closed, and its polarity.

    The signal is normalized per episode so that 1 is the open level and 0 the
    tightest closing seen: a gripper closed on an object stops short of the
    channel's minimum, and objects differ, so no fixed threshold would do.
    """
    x = np.asarray(x, dtype=np.float64)
    n = len(x)
    lo, hi = percentile(x, 0.5), percentile(x, 99.5)
    rng = float(hi - lo) or 1.0
    u = (x - lo) / rng
    k = max(2, min(n // 10, round(0.3 * fps)))
    head, tail = float(median(u[:k])), float(median(u[-k:]))
    # Open is where the episode starts and ends; if they disagree, trust the start
    # when it sits at an extreme, else assume the common "bigger value = wider".
    high_open = head > 0.5 if (head > 0.5) == (tail > 0.5) or abs(head - 0.5) > 0.3 else True
    g = u if high_open else 1.0 - u
    sigma = noise_level(g)
    gs = smooth(g, 1.5)
    delta = min(0.15, max(0.02, 3.0 * sigma))
    closed = gs[0] < CLOSE_BELOW
    starts_closed = bool(closed)
    crossings: list[tuple[str, int]] = []
    for i, val in enumerate(gs):
        if not closed and val < CLOSE_BELOW:
            closed = True
            crossings.append(("close", i))
        elif closed and val > OPEN_ABOVE:
            closed = False
            crossings.append(("open", i))
    out: list[Transition] = []
    for j, (kind, c) in enumerate(crossings):
        prev = crossings[j - 1][1] if j > 0 else 0
        nxt = crossings[j + 1][1] if j + 1 < len(crossings) else n
        before, after = gs[prev:c], gs[c:nxt]
        if kind == "close":
            pb, pa = before[before >= OPEN_ABOVE], after[after <= CLOSE_BELOW]
        else:
            pb, pa = before[before <= CLOSE_BELOW], after[after >= OPEN_ABOVE]
        level_b = float(median(pb)) if len(pb) else float(gs[max(prev, c - 1)])
        level_a = float(median(pa)) if len(pa) else float(gs[min(nxt - 1, c)])
        on_b = np.flatnonzero(np.abs(before - level_b) <= delta)
        start = prev + int(on_b[-1]) if len(on_b) else prev
        on_a = np.flatnonzero(np.abs(after - level_a) <= delta)
        end = c + int(on_a[0]) + 1 if len(on_a) else nxt
        start, end = max(start, out[-1].end if out else 0), min(max(end, c + 1), n)
        depth = abs(level_a - level_b)
        contrast = clip01(math.log10(max(depth / max(sigma, 1e-9), 1.0)) / 2.0)
        # A transition that takes long relative to its plateaus is a drift, not a grip.
        slow = clip01(1.0 - ((end - start) / fps) / 3.0)
        conf = channel_conf * contrast * (0.6 + 0.4 * slow) * (0.5 + 0.5 * clip01(depth / 0.5))
        out.append(Transition(kind, start, end, clip01(conf)))  # type: ignore[arg-type]
    return out, starts_closed, "high" if high_open else "low"
