"""What each arm does over an episode: when it moves, turns, closes and opens its gripper.

These are the instants a person cuts a demonstration at: an arm starts to move
(reach, lift, retreat), its jaws start to close (grasp) or to open (release), a
carried object changes course (move, place). Per arm:

- motion: the speed of its joints (each scaled by its range, floored at a third of
  the arm's widest joint so a barely moving wrist does not have its noise blown
  up), smoothed; still below a fraction of the robot's brisk speed, with
  hysteresis; a pause is a still run of a quarter second or more;
- strokes: runs where the gripper closes or opens by a clear part of its range;
- holding: a closed gripper the object blocks. Teleoperated data records the
  leader's command as the action: on an object the follower stalls short of it,
  so the state sits well open of the action. Without an action channel, a
  closing that stops clearly short of the tightest the gripper ever closes counts;
- turns and slowdowns (course.py): where a long motion changes course, and where it
  slows almost to a stop and carries on.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from backend.engines.kinematic.arms import Arm
from backend.engines.kinematic.course import slowdowns, turns
from backend.engines.kinematic.signals import (
    MIN_SNR,
    feature_order,
    median,
    noise_level,
    noise_levels,
    percentile,
    smooth,
)

# Motion thresholds, as fractions of the robot's brisk speed (95th percentile).
STILL_BELOW = 0.07
MOVING_ABOVE = 0.14
# A stop this long is a pause, not a dip between two blended motions (seconds).
MIN_PAUSE = 0.25
# Smoothing of joint positions before differentiating (seconds).
MOTION_SMOOTHING = 0.07
# A gripper stroke moves at least this part of the gripper's range.
MIN_STROKE = 0.2
# Holding: the state sits this part of the range open of the command (the object blocks it).
STALL_GAP = 0.12


@dataclass
class Stroke:
    """One gripper movement: frames [start, end), closing or opening, and where it ends up."""

    kind: Literal["close", "open"]
    start: int
    end: int
    level_before: float  # normalized: 1 open, 0 tightest seen
    level_after: float
    holding_after: bool = False
    holding_before: bool = False


@dataclass
class ArmTrack:
    """One arm's motion and gripper over the episode."""

    arm: Arm
    speed: np.ndarray  # (T,) joint speed in the robot's brisk-speed units (after `normalize`)
    vel: np.ndarray  # (T, d) scaled joint velocities
    moving: np.ndarray  # (T,) bool, with hysteresis
    strokes: list[Stroke] = field(default_factory=list)
    holding: np.ndarray | None = None  # (T,) bool
    turns: list[int] = field(default_factory=list)
    slowdowns: list[int] = field(default_factory=list)
    notes: dict = field(default_factory=dict)
    _runs: list[tuple[int, int, bool]] | None = field(default=None, repr=False)

    @property
    def name(self) -> str:
        return self.arm.name

    def moves_at_all(self) -> bool:
        return bool(self.moving.any()) or bool(self.strokes)

    def runs(self) -> list[tuple[int, int, bool]]:
        """(start, end, moving) runs of the motion mask (computed once)."""
        if self._runs is None:
            m = np.asarray(self.moving, dtype=bool)
            edges = [0, *(np.flatnonzero(np.diff(m.astype(np.int8))) + 1).tolist(), len(m)]
            self._runs = [(a, b, bool(m[a])) for a, b in itertools.pairwise(edges) if b > a]
        return self._runs


# ---------------------------------------------------------------- motion


def _joint_matrix(arm: Arm) -> tuple[np.ndarray, np.ndarray | None]:
    """The arm's joint positions (gripper excluded) from its main feature, and their dataset-wide
    ranges where known."""
    sig = arm.signals
    feature = feature_order(sig)[0]
    arr = np.asarray(sig.channels[feature], dtype=np.float64)
    skip = arm.gripper.dim if arm.gripper is not None and arm.gripper.feature == feature else None
    cols = [j for j in range(arr.shape[1]) if j != skip]
    ranges = sig.ranges.get(feature)
    return arr[:, cols], (ranges[cols] if ranges is not None else None)


def _fill(x: np.ndarray) -> np.ndarray:
    """NaN/inf replaced by the nearest finite value of the column."""
    bad = ~np.isfinite(x)
    if not bad.any():
        return x
    x = x.copy()
    for j in range(x.shape[1]):
        b = bad[:, j]
        if b.all():
            x[:, j] = 0.0
        elif b.any():
            idx = np.flatnonzero(~b)
            x[b, j] = np.interp(np.flatnonzero(b), idx, x[idx, j])
    return x


def joint_velocity(arm: Arm, fps: float) -> np.ndarray:
    """(T, d) velocities of the arm's moving joints, each in units of its (floored) range per second."""
    x, wide = _joint_matrix(arm)
    x = _fill(x)
    if x.shape[1] == 0 or len(x) < 4:
        return np.zeros((len(x), 1))
    lo, hi = percentile(x, 1, axis=0), percentile(x, 99, axis=0)
    rng = hi - lo
    noise = noise_levels(x)
    keep = rng > MIN_SNR * 2.5 * np.maximum(noise, 1e-12)
    if not keep.any():
        return np.zeros((len(x), 1))
    x, rng = x[:, keep], rng[keep]
    # A joint is judged against how far it moves across the dataset where that is known, so a
    # joint that barely moves in this episode stays small.
    floor = 0.5 * wide[keep] if wide is not None else np.zeros_like(rng)
    scale = np.maximum(np.maximum(rng, floor), max(float(rng.max()), float(floor.max())) / 3.0)
    u = smooth(x / scale, MOTION_SMOOTHING * fps)
    return np.gradient(u, axis=0) * fps


def _back_to_rest(speed: np.ndarray, moving: np.ndarray) -> np.ndarray:
    """Each motion starts where the speed leaves its resting level, not where it crosses the
    moving threshold (which lags by a good part of the acceleration), and ends where it comes back."""
    out = moving.copy()
    n = len(speed)
    for i in range(1, n):
        if moving[i] and not moving[i - 1]:
            a = i
            while a > 0 and not out[a - 1] and speed[a - 1] < speed[a] and speed[a - 1] > 0.35 * STILL_BELOW:
                a -= 1
            out[a:i] = True
    for i in range(n - 2, -1, -1):
        if moving[i] and not moving[i + 1]:
            b = i
            while (
                b + 1 < n and not out[b + 1] and speed[b + 1] < speed[b] and speed[b + 1] > 0.35 * STILL_BELOW
            ):
                b += 1
            out[i : b + 1] = True
    return out


def _hysteresis(speed: np.ndarray, fps: float, min_pause: float = MIN_PAUSE) -> np.ndarray:
    moving = np.zeros(len(speed), dtype=bool)
    state = False
    for i, s in enumerate(speed):
        if not state and s > MOVING_ABOVE:
            state = True
        elif state and s < STILL_BELOW:
            state = False
        moving[i] = state
    # Stops shorter than a pause are dips inside motion.
    min_pause = max(1, round(min_pause * fps))
    i, n = 0, len(moving)
    while i < n:
        if not moving[i]:
            j = i
            while j < n and not moving[j]:
                j += 1
            if i > 0 and j < n and j - i < min_pause:
                moving[i:j] = True
            i = j
        else:
            i += 1
    return moving


# ---------------------------------------------------------------- the gripper


def _gripper_series(arm: Arm) -> tuple[np.ndarray | None, np.ndarray | None]:
    """The gripper's measured and commanded values (the command may be missing)."""
    g = arm.gripper
    if g is None:
        return None, None
    sig = arm.signals
    state = _fill(np.asarray(sig.channels[g.feature][:, g.dim : g.dim + 1], dtype=np.float64))[:, 0]
    command = None
    for f in feature_order(sig):
        if f == g.feature:
            continue
        names = sig.names.get(f, [])
        if g.dim < len(names) and names[g.dim] == g.name and sig.channels[f].shape[1] > g.dim:
            command = _fill(np.asarray(sig.channels[f][:, g.dim : g.dim + 1], dtype=np.float64))[:, 0]
            break
    return state, command


def _strokes(u: np.ndarray, fps: float) -> list[Stroke]:
    """Monotone runs of the smoothed, normalized gripper that cover at least MIN_STROKE."""
    n = len(u)
    us = smooth(u, max(1.0, 0.04 * fps))
    sigma = max(noise_level(u), 1e-6)
    v = np.gradient(us) * fps
    thresh = max(0.25, 6.0 * sigma * fps / 5.0)  # range per second
    sign = np.where(v > thresh, 1, np.where(v < -thresh, -1, 0))
    out: list[Stroke] = []
    i = 0
    while i < n:
        if sign[i] == 0:
            i += 1
            continue
        s = sign[i]
        j = i
        # a stroke continues through brief slowdowns of the same direction
        gap = max(2, round(0.1 * fps))
        last = i
        while j < n and (sign[j] == s or (sign[j] == 0 and j - last <= gap)):
            if sign[j] == s:
                last = j
            j += 1
        a, b = i, last + 1
        # extend to where the gripper leaves its level before and settles at the next
        tol = max(3.0 * sigma, 0.02)
        level = float(median(us[max(0, a - round(0.3 * fps)) : max(1, a - round(0.1 * fps))]))
        while a > 0 and (us[a] - level) * s > tol and (us[a] - us[a - 1]) * s > 0:
            a -= 1
        while b < n and (us[b] - us[b - 1]) * s > 0.2 * thresh / fps:
            b += 1
        before, after = float(us[a]), float(us[min(b, n - 1)])
        # A stroke covers a clear part of the range and stands far above the noise (a gripper
        # that twitches by a percent of its travel in an episode where it never really moves
        # has a tiny range, so the first test alone would take its twitch for a stroke).
        if abs(after - before) >= max(MIN_STROKE, 30.0 * sigma):
            out.append(Stroke("open" if s > 0 else "close", a, b, before, after))
        i = max(j, b)
    return out


def command_lag(arm: Arm, fps: float) -> int:
    """Frames by which the measured joints trail the commanded ones (0 without a command)."""
    sig = arm.signals
    order = feature_order(sig)
    if len(order) < 2:
        return 0
    a, b = sig.channels[order[0]], None
    for f in order[1:]:
        if sig.names.get(f) == sig.names.get(order[0]) and sig.channels[f].shape == a.shape:
            b = sig.channels[f]
            break
    if b is None or len(a) < 16:
        return 0
    va = np.diff(_fill(np.asarray(a, dtype=np.float64)), axis=0)
    vb = np.diff(_fill(np.asarray(b, dtype=np.float64)), axis=0)
    scale = np.maximum(va.std(axis=0), 1e-12)
    va, vb = va / scale, vb / scale
    best, lag = -np.inf, 0
    for k in range(0, min(round(0.5 * fps), len(va) // 4) + 1):
        c = float(np.sum(va[k:] * vb[: len(vb) - k]))
        if c > best:
            best, lag = c, k
    return lag


def _earlier_command(strokes: list[Stroke], commanded: list[Stroke], lag: int, fps: float) -> None:
    """Start each stroke where the operator started it: the command's stroke of the same kind
    (plus the follower's lag) when it began earlier. A gripper closed on an object only moves
    once the opening command passes where the object holds it."""
    window = round(1.0 * fps)
    prev_end = 0
    for st in strokes:
        cands = [c for c in commanded if c.kind == st.kind and st.start - window <= c.start + lag <= st.start]
        if cands:
            st.start = max(prev_end, min(c.start for c in cands) + lag)
        prev_end = st.end


def gripper_track(arm: Arm, fps: float) -> tuple[list[Stroke], np.ndarray | None, dict]:
    """The arm's gripper strokes and where it holds something."""
    state, command = _gripper_series(arm)
    n = len(arm.signals)
    if state is None:
        return [], None, {"gripper": None}
    lo, hi = percentile(state, 0.5), percentile(state, 99.5)
    wide = arm.signals.ranges.get(arm.gripper.feature) if arm.gripper is not None else None
    if wide is not None and arm.gripper.dim < len(wide):
        # Against the gripper's travel across the dataset: a twitch in one episode is no stroke.
        mid = 0.5 * (lo + hi)
        half = max(0.5 * float(hi - lo), 0.5 * float(wide[arm.gripper.dim]))
        lo, hi = mid - half, mid + half
    rng = float(hi - lo)
    if rng <= 0:
        return [], np.zeros(n, dtype=bool), {"gripper": "flat"}
    u = (state - lo) / rng
    cmd = None if command is None else (command - lo) / rng
    notes: dict = {"gripper": arm.gripper.label if arm.gripper else None}
    polarity = 1.0
    if cmd is not None:
        # Bigger is more open for most grippers; the stall says which way for this one: the
        # object keeps the follower more open than the command.
        # Only where both are at rest: in a stroke the follower's lag opens a gap either way.
        w = max(1, round(0.15 * fps))
        steady = (np.abs(np.gradient(smooth(cmd, w))) * fps < 0.1) & (
            np.abs(np.gradient(smooth(u, w))) * fps < 0.1
        )
        gap = u - cmd
        big = (np.abs(gap) > STALL_GAP) & steady
        if big.sum() >= 0.5 * fps and median(gap[big]) < 0:
            polarity = -1.0
    if polarity < 0:
        u = 1.0 - u
        cmd = None if cmd is None else 1.0 - cmd
    notes["gripper_open_is"] = "high" if polarity > 0 else "low"
    strokes = _strokes(u, fps)
    if cmd is not None:
        lag = command_lag(arm, fps)
        _earlier_command(strokes, _strokes(cmd, fps), lag, fps)
        notes["command_lag_frames"] = lag
    us = smooth(u, max(1.0, 0.04 * fps))
    stall = None
    if cmd is not None:
        # A stall is a gap that lasts while both sit still, not the follower catching up.
        w = max(1, round(0.15 * fps))
        still = (np.abs(np.gradient(smooth(cmd, w))) * fps < 0.1) & (
            np.abs(np.gradient(smooth(u, w))) * fps < 0.1
        )
        stall = smooth(u - cmd, max(1.0, 0.1 * fps)) > STALL_GAP
        if (stall & still).sum() < 0.3 * fps:
            stall = None
    if stall is not None:
        holding = stall
        notes["holding_from"] = "stall against the command"
    else:
        # No stall anywhere (a command that stops where the object does, or none at all): closed
        # short of the tightest the gripper ever closes; `carried` below adds transport.
        tight = float(percentile(us, 1))
        holding = (us < 0.7) & (us > tight + 0.15)
        notes["holding_from"] = "closed short of the tightest, or carried"
    _mark_holding(strokes, holding, n, fps)
    return strokes, holding, notes


def _mark_holding(strokes: list[Stroke], holding: np.ndarray, n: int, fps: float) -> None:
    held = False
    for st in strokes:
        after = holding[min(st.end + max(1, round(0.2 * fps)), n - 1) : min(n, st.end + round(0.6 * fps))]
        st.holding_after = st.kind == "close" and bool(len(after) and after.mean() > 0.5)
        # Once the jaws close on something, the arm holds it until they open again.
        st.holding_before = held
        held = st.holding_after


def carried(strokes: list[Stroke], holding: np.ndarray, moving: np.ndarray, fps: float) -> np.ndarray:
    """Where no stall tells, a closing that the arm then carries somewhere and opens again holds
    something: the arm travels at least a second with the jaws shut before they open."""
    out = holding.copy()
    n = len(moving)
    for k, st in enumerate(strokes):
        if st.kind != "close":
            continue
        reopen = next((x for x in strokes[k + 1 :] if x.kind == "open"), None)
        if reopen is None:
            continue
        a, b = st.end, reopen.start
        if b > a and moving[a:b].sum() >= 1.0 * fps:
            out[max(0, st.start) : min(n, b)] = True
    return out


# ---------------------------------------------------------------- per arm


def track_arms(arms: list[Arm], fps: float, min_pause: float = MIN_PAUSE) -> list[ArmTrack]:
    """Motion, strokes, holding and turns of every arm, on one speed scale for the robot."""
    vels = [joint_velocity(a, fps) for a in arms]
    raw = [np.linalg.norm(v, axis=1) for v in vels]
    ref = max((float(percentile(s, 95)) for s in raw if len(s)), default=0.0) or 1.0
    tracks = []
    for arm, v, s in zip(arms, vels, raw, strict=True):
        speed = s / ref
        moving = _back_to_rest(speed, _hysteresis(speed, fps, min_pause))
        strokes, holding, notes = gripper_track(arm, fps)
        if holding is not None and notes.get("holding_from", "").startswith("closed short"):
            holding = carried(strokes, holding, moving, fps)
            _mark_holding(strokes, holding, len(moving), fps)
        t = ArmTrack(arm, speed, v, moving, strokes, holding, notes=notes)
        t.turns = turns(v, moving, speed, fps)
        t.slowdowns = slowdowns(speed, moving, fps, MOVING_ABOVE)
        tracks.append(t)
    return tracks


def onsets(track: ArmTrack) -> list[int]:
    """Frames where the arm starts to move after a pause."""
    return [a for a, _, mv in track.runs() if mv and a > 0]


def offsets(track: ArmTrack) -> list[int]:
    return [b for _, b, mv in track.runs() if mv and b < len(track.moving)]


def same_course(track: ArmTrack, stop: int, go: int, fps: float) -> bool:
    """Whether the motion after a pause carries on the motion before it (a hesitation)."""
    w = max(2, round(0.3 * fps))
    before = track.vel[max(0, stop - w) : stop].mean(axis=0) if stop > 0 else None
    after = track.vel[go : go + w].mean(axis=0)
    if before is None:
        return False
    n0, n1 = float(np.linalg.norm(before)), float(np.linalg.norm(after))
    if n0 == 0 or n1 == 0:
        return False
    return float(np.dot(before, after) / (n0 * n1)) > 0.8


def pairwise_runs(track: ArmTrack) -> list[tuple[tuple[int, int, bool], tuple[int, int, bool]]]:
    return list(itertools.pairwise(track.runs()))
