"""Phase-by-phase teleoperation scripts, and where their boundaries lie.

A variant writes a task as a sequence of named phases; inside a phase it asks
for arm motions (to a joint or pose target), gripper strokes and waits, per arm.
The script turns them into strokes (core.demo.motion) with the operator's
variation: an independent speed factor per phase (0.5x to 1.5x), a random pause
in the middle of some motions, skewed velocity profiles, and motions that blend
into the next phase's first motion without stopping.

Boundary rule (the ground truth's, in the leader's time; the writer shifts it by
the follower's delay): a phase starts at the onset of its first action (motion
or gripper stroke) and ends where the next phase starts. Holds and pauses before
that onset belong to the phase before; a pause inside a motion belongs to the
phase of that motion. Where a phase's last motion blends into the next phase's
first motion of the same arm, the boundary is the middle of their overlap. The
episode starts and ends with an `idle` phase (nothing moves): the first ends at
the first motion's onset, the last starts when the last motion has stopped.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np

from core.demo.motion import Stroke, superpose


@dataclass
class Phase:
    name: str
    arm: str | None  # which arm acts: an arm name, "both", or None (idle)
    start: float  # seconds, leader time
    end: float


@dataclass
class Pause:
    arm: str
    phase: str
    start: float
    duration: float


@dataclass
class _Arm:
    q: np.ndarray  # commanded target once all scheduled strokes are done
    g: float  # commanded gripper level likewise
    origin: np.ndarray
    g_origin: float
    free: float = 0.0  # when the last scheduled stroke ends
    strokes: list[Stroke] = field(default_factory=list)
    grips: list[Stroke] = field(default_factory=list)
    last: Stroke | None = None
    in_phase: int = 0


@dataclass(frozen=True)
class Style:
    """One operator's habits for one episode."""

    speed: tuple[float, float] = (0.5, 1.5)  # per-phase speed factor range
    pause_prob: float = 0.15  # chance that a motion is interrupted by a pause
    pause: tuple[float, float] = (0.3, 1.3)  # pause length, seconds
    skew: float = 0.6  # |velocity profile skew| bound


class Script:
    """Schedules one episode's commanded motion for one or more arms."""

    def __init__(
        self, rng: np.random.Generator, arms: dict[str, tuple[np.ndarray, float]], style: Style | None = None
    ) -> None:
        self.rng = rng
        self.style = style or Style()
        self.arms = {
            k: _Arm(np.asarray(q, float).copy(), float(g), np.asarray(q, float).copy(), float(g))
            for k, (q, g) in arms.items()
        }
        self.t = 0.0
        self.phases: list[Phase] = []
        self.pauses: list[Pause] = []

    def idle(self, seconds: float) -> None:
        """Nothing moves for `seconds` (only at the start or the end of an episode)."""
        start = self.end
        if self.phases:
            self.phases[-1].end = start
        self.phases.append(Phase("idle", None, start, start + seconds))
        self.t = start + seconds
        for a in self.arms.values():
            a.free = self.t

    @contextmanager
    def phase(self, name: str, arm: str | None, speed: float | None = None):
        ph = _PhaseBuilder(self, name, arm, self.rng.uniform(*self.style.speed) if speed is None else speed)
        for a in self.arms.values():
            a.in_phase = 0
        yield ph
        used = [a.free for k, a in self.arms.items() if k in ph.used]
        if not used:
            raise RuntimeError(f"phase {name!r} schedules nothing")
        end = max(max(used), ph.start + 1e-3)
        self.phases.append(Phase(name, arm, ph.start, end))
        self.t = end

    @property
    def end(self) -> float:
        return max([self.t, *(a.free for a in self.arms.values())])

    def trajectories(self, n: int, fps: float) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """Per arm, the commanded (n, D) pose/joint track and (n,) gripper track."""
        out = {}
        for k, a in self.arms.items():
            q = superpose(a.origin, a.strokes, n, fps)
            g = superpose(np.array([a.g_origin]), a.grips, n, fps)[:, 0]
            out[k] = (q, g)
        return out


class _PhaseBuilder:
    def __init__(self, script: Script, name: str, arm: str | None, speed: float) -> None:
        self.script = script
        self.name = name
        self.arm = arm
        self.speed = float(speed)
        self.start = script.t
        self.used: set[str] = set()

    def _skew(self) -> float:
        s = self.script.style.skew
        return float(self.script.rng.uniform(-s, s))

    def _begin(self, arm: str, after: float) -> float:
        a = self.script.arms[arm]
        self.used.add(arm)
        return max(a.free, self.start + after) if a.in_phase == 0 else a.free

    def move(
        self,
        arm: str,
        target: np.ndarray,
        nominal: float,
        blend: float = 0.0,
        pause: bool = True,
        after: float = 0.0,
    ) -> Stroke:
        """Move `arm` to `target` in about `nominal` seconds at this phase's speed.

        `blend` (0..0.9) starts the motion that fraction of the previous motion's
        duration early, so the two merge; `after` delays the arm's first action
        in the phase (the other arm goes first). Returns the (first) stroke.
        """
        sc, a = self.script, self.script.arms[arm]
        dur = max(nominal / self.speed, 0.15)
        start = self._begin(arm, after)
        if blend > 0 and a.last is not None:
            overlap = blend * min(a.last.duration, dur)
            start = max(a.last.start + 0.1 * a.last.duration, a.free - overlap)
            if a.in_phase == 0 and abs(a.free - self.start) < 1e-9 and sc.phases:
                prev = sc.phases[-1]
                boundary = max((start + a.free) / 2, prev.start + 0.1)
                self.start = prev.end = boundary
            elif a.in_phase == 0:
                start = max(start, self.start)  # another arm ended the last phase: no blending across it
        delta = np.asarray(target, float) - a.q
        pieces: list[Stroke] = []
        if pause and sc.rng.random() < sc.style.pause_prob:
            f = float(sc.rng.uniform(0.35, 0.75))
            hold = float(sc.rng.uniform(*sc.style.pause))
            s1 = Stroke(start, dur * f, delta * f, self._skew())
            s2 = Stroke(s1.end + hold, dur * (1 - f) * 1.3, delta * (1 - f), self._skew())
            pieces = [s1, s2]
            sc.pauses.append(Pause(arm, self.name, s1.end, hold))
        else:
            pieces = [Stroke(start, dur, delta, self._skew())]
        a.strokes += pieces
        a.q = np.asarray(target, float).copy()
        a.free = max(a.free, pieces[-1].end)
        a.last = pieces[-1]
        a.in_phase += 1
        return pieces[0]

    def grip(
        self, arm: str, level: float, nominal: float, with_motion: bool = False, at: float | None = None
    ) -> Stroke:
        """Drive `arm`'s gripper to `level`; with `with_motion`, during its last motion; `at`: not before then."""
        a = self.script.arms[arm]
        dur = max(nominal / self.speed, 0.12)
        if with_motion and a.last is not None:
            start = a.last.start + 0.2 * a.last.duration
            self.used.add(arm)
        else:
            start = self._begin(arm, 0.0)
        if at is not None:
            start = max(start, at)
        s = Stroke(start, dur, np.array([level - a.g]), self._skew())
        a.grips.append(s)
        a.g = float(level)
        a.free = max(a.free, s.end)
        a.in_phase += 1
        return s

    def wait(self, arm: str, seconds: float) -> None:
        """`arm` holds still for `seconds` more (a dwell that belongs to this phase)."""
        a = self.script.arms[arm]
        self.used.add(arm)
        a.free = self._begin(arm, 0.0) + max(seconds, 0.0)
        a.in_phase += 1


def segments_from_phases(phases: list[Phase], fps: float, delay: int, n: int) -> list[dict]:
    """Gap-free {name, start, end, arm} records in seconds on the frame grid, shifted by `delay` frames.

    Neighbouring phases with one name (a pause-free repeat) are kept apart only
    when a person would tell them apart: the same name twice in a row merges.
    """
    cuts = [0]
    for p in phases[1:]:
        cuts.append(min(max(round(p.start * fps) + delay, cuts[-1] + 1), n - 1))
    cuts.append(n)
    out: list[dict] = []
    for p, a, b in zip(phases, cuts[:-1], cuts[1:], strict=True):
        if b <= a:
            continue
        if out and out[-1]["name"] == p.name and out[-1]["arm"] == p.arm:
            out[-1]["end"] = b / fps
            continue
        out.append({"name": p.name, "start": a / fps, "end": b / fps, "arm": p.arm})
    return out
