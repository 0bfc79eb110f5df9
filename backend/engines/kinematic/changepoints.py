"""Change points in the arm's velocity (ruptures), grouped into motions with a character."""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np
import ruptures as rpt

from backend.engines.kinematic.motion import Motion
from backend.engines.kinematic.options import KinematicOptions
from backend.engines.kinematic.signals import clip01


@dataclass
class Group:
    """A run of frames with one motion character; `still` runs are folded into the one before."""

    start: int
    end: int
    kind: str  # "still", "up", "down", "horizontal", or "moving" (joint mode)
    direction: np.ndarray
    clarity: float


def _pelt(signal: np.ndarray, penalty: float, min_size: int) -> list[int]:
    """Change points (inner, as frame offsets) of a multivariate signal by Pelt with an l2 cost."""
    n = len(signal)
    if n < 2 * min_size + 1:
        return []
    jump = 1 if n <= 200 else 2
    algo = rpt.Pelt(model="l2", min_size=min_size, jump=jump).fit(signal)
    return [b for b in algo.predict(pen=penalty) if 0 < b < n]


def _dynp(signal: np.ndarray, n_bkps: int, min_size: int) -> list[int]:
    """The best `n_bkps` change points by dynamic programming (exact), or none if too short."""
    n = len(signal)
    if n < (n_bkps + 1) * min_size + 1:
        return []
    algo = rpt.Dynp(model="l2", min_size=min_size, jump=1).fit(signal)
    return [b for b in algo.predict(n_bkps=n_bkps) if 0 < b < n]


class _Splitter:
    """Change-point analysis of one episode's motion (ruptures), shared by all its intervals."""

    def __init__(self, motion: Motion, fps: float, opts: KinematicOptions) -> None:
        self.m = motion
        self.fps = fps
        self.opts = opts
        self.min_size = max(2, round(opts.min_segment * fps))
        self.norm = motion.vel / motion.scale
        self.n_change_points = 0

    def _classify(self, s: int, e: int) -> Group:
        v = self.m.vel[s:e]
        mean_speed = float(self.m.speed[s:e].mean()) / self.m.scale
        mean_v = v.mean(axis=0)
        norm = float(np.linalg.norm(mean_v))
        direction = mean_v / norm if norm > 0 else np.zeros_like(mean_v)
        if mean_speed < self.opts.still_speed:
            return Group(s, e, "still", direction, clip01(1.0 - mean_speed / self.opts.still_speed))
        if self.m.z is None:
            return Group(s, e, "moving", direction, 0.6)
        zf = float(direction[self.m.z])
        if zf > 0.55:
            return Group(s, e, "up", direction, clip01((zf - 0.3) / 0.6))
        if zf < -0.55:
            return Group(s, e, "down", direction, clip01((-zf - 0.3) / 0.6))
        return Group(s, e, "horizontal", direction, clip01((math.sqrt(max(0.0, 1 - zf * zf)) - 0.5) / 0.4))

    def groups(self, a: int, b: int, fold_stills: bool = True) -> list[Group]:
        """Motion groups in [a, b): Pelt pieces, classified, same kinds merged.

        Pelt over-segments a smooth speed profile on purpose (a low penalty finds the
        weak motions too); merging pieces of one kind undoes the excess. With
        `fold_stills`, a pause joins the motion before it, as a hesitation at the
        end of a phase is still that phase; only a pause at the very start stays.
        """
        if b - a <= 0:
            return []
        cps = _pelt(self.norm[a:b], self.opts.penalty, self.min_size)
        self.n_change_points += len(cps)
        bounds = [a, *(a + c for c in cps), b]
        pieces = [self._classify(s, e) for s, e in itertools.pairwise(bounds)]
        merged: list[Group] = []
        for g in pieces:
            if merged and g.kind == "still" and (fold_stills or merged[-1].kind == "still"):
                merged[-1].end = g.end
            elif merged and merged[-1].kind == "still" and len(merged) == 1:
                # leading stillness: the motion starts later, keep it as its own still group
                merged.append(g)
            elif merged and self._same(merged[-1], g):
                merged[-1] = self._join(merged[-1], g)
            else:
                merged.append(g)
        return merged

    def _same(self, a: Group, b: Group) -> bool:
        if a.kind != b.kind:
            return False
        if a.kind != "moving":
            return True
        return float(np.dot(a.direction, b.direction)) > 0.7

    def _join(self, a: Group, b: Group) -> Group:
        """One group from two neighbours, keeping the first's kind (a re-classification would
        count the folded-in hesitations and could call a motion still)."""
        wa, wb = a.end - a.start, b.end - b.start
        d = a.direction * wa + b.direction * wb
        norm = float(np.linalg.norm(d))
        direction = d / norm if norm > 0 else a.direction
        clarity = (a.clarity * wa + b.clarity * wb) / max(1, wa + wb)
        return Group(a.start, b.end, a.kind, direction, clarity)

    def refine(self, cut: int, lo: int, hi: int) -> int:
        """Move a cut to where the arm moves slowest nearby: between two motions it stops or slows."""
        w = max(2, round(0.35 * self.fps))
        s, e = max(lo + 1, cut - w), min(hi - 1, cut + w)
        if e <= s:
            return cut
        seg = self.m.speed[s : e + 1]
        floor = float(seg.min())
        # Among the frames near the minimum, the one where motion picks up (latest
        # of the slow run) is the start of the next movement.
        slow = np.flatnonzero(seg <= floor + 0.05 * self.m.scale)
        runs = np.split(slow, np.flatnonzero(np.diff(slow) > 1) + 1)
        best = min(runs, key=lambda r: abs(s + int(r[-1]) - cut))
        return s + int(best[-1]) + 1 if s + int(best[-1]) + 1 < hi else cut

    def cut_confidence(self, cut: int, left: Group, right: Group) -> float:
        """Evidence for a cut between two motions: the arm slows down there, and changes direction."""
        w = max(1, round(0.05 * self.fps))
        at = float(self.m.speed[max(0, cut - w) : cut + w + 1].min())
        peaks = [
            float(self.m.speed[g.start : g.end].max(initial=0.0)) for g in (left, right) if g.kind != "still"
        ]
        peak = min(peaks) if peaks else 0.0
        depth = clip01(1.0 - at / peak) if peak > 0 else 0.0
        if "still" in (left.kind, right.kind):
            return depth  # to or from rest: how clearly it rests there is all there is
        turn = clip01(1.0 - float(np.dot(left.direction, right.direction)))
        return clip01(0.6 * depth + 0.4 * turn)

    def split_one(self, a: int, b: int) -> tuple[int, float] | None:
        """One cut in [a, b): at a jump in the state if there is one, else the best single change point."""
        jumps = [j for j in self.m.jumps if a < j < b]
        if jumps:
            return jumps[0], 0.9
        cps = _dynp(self.norm[a:b], 1, self.min_size)
        if not cps:
            return None
        self.n_change_points += 1
        cut = self.refine(a + cps[0], a, b)
        left, right = self._classify(a, cut), self._classify(cut, b)
        return cut, 0.8 * self.cut_confidence(cut, left, right)
