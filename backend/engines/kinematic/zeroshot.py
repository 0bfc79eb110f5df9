"""Zero-shot segments: the gripper's close/open plus velocity change points, no exemplars."""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np

from backend.engines.base import EpisodeJob, Prediction
from backend.engines.kinematic.changepoints import Group, _dynp, _Splitter
from backend.engines.kinematic.gripper import Transition, find_gripper, gripper_transitions
from backend.engines.kinematic.motion import arm_motion
from backend.engines.kinematic.naming import task_cycles
from backend.engines.kinematic.options import KinematicOptions
from backend.engines.kinematic.signals import CARRY, GRIPPER_SPANS, MIN_FRAMES, clip01
from core.annotations import EpisodeAnnotation, Segment, repair_cover


@dataclass
class Span:
    start: int
    end: int
    name: str
    clarity: float = 1.0


class _Plan:
    """Spans and the confidence of each cut between them, built left to right."""

    def __init__(self) -> None:
        self.spans: list[Span] = []
        self.cut_conf: dict[int, float] = {}

    def add(self, start: int, end: int, name: str, clarity: float = 1.0, conf: float | None = None) -> None:
        if end <= start:
            return
        if conf is not None and start > 0:
            self.cut_conf[start] = min(self.cut_conf.get(start, 1.0), conf)
        self.spans.append(Span(start, end, name, clarity))


class ZeroShot:
    """The pick-and-place template, once per close/open cycle of the gripper."""

    def predict(self, job: EpisodeJob, opts: KinematicOptions, tag: str) -> Prediction:
        ds = job.dataset
        info = ds.episode(job.episode)
        fps = float(ds.fps)
        sig = ds.signals(job.episode)
        n = len(sig)
        duration = info.length / fps
        if n < MIN_FRAMES:
            # Too short to have motion: one segment, and certainly worth a look.
            seg = Segment(name="idle", start=0.0, end=duration, source=tag, confidence=0.0)
            ann = EpisodeAnnotation(
                dataset=job.dataset_id,
                episode=job.episode,
                duration=duration,
                fps=fps,
                task=info.task,
                segments=[seg],
                uncertainty=1.0,
                model=tag,
            )
            notes = {"gripper_channel": None, "gripper_found_by": "none", "fallback": f"only {n} frame(s)"}
            return Prediction(status="ok", annotation=ann, notes=notes)

        gripper, notes = find_gripper(sig, fps, opts.shape_threshold)
        motion = arm_motion(sig, fps, gripper, opts.smoothing)
        splitter = _Splitter(motion, fps, opts)
        expected = task_cycles(info.task)
        notes.update(
            {
                "gripper_channel": gripper.label if gripper else None,
                "gripper_name": gripper.name if gripper else None,
                "gripper_found_by": gripper.found_by if gripper else "none",
                "gripper_score": round(gripper.shape.score, 3) if gripper else 0.0,
                "gripper_shape": gripper.shape.as_notes() if gripper else None,
                "motion": motion.mode,
                "motion_channels": motion.channels,
                "task_cycles": expected,
            }
        )
        transitions: list[Transition] = []
        if gripper is not None:
            transitions, starts_closed, polarity = gripper_transitions(
                sig.channels[gripper.feature][:, gripper.dim], fps, gripper.confidence
            )
            notes["gripper_open_is"] = polarity
        if transitions:
            plan = self._gripper_plan(transitions, starts_closed, n, splitter)
            cycles = sum(1 for t in transitions if t.kind == "close")
            notes["cycles"] = cycles
            # The task text is a second opinion on how many grasps there should be.
            agree = expected is None or expected == cycles
            task_factor = 1.0 if agree else 0.6
            if not agree:
                notes["task_disagrees"] = (
                    f"task suggests {expected} grasp(s), gripper closed {cycles} time(s)"
                )
        else:
            plan = self._motion_plan(n, splitter)
            notes["cycles"] = 0
            notes["fallback"] = "no gripper events: segments are motion/idle only"
            # Motion alone cannot say what the subtasks were; if the task asks for a
            # grasp, the missing gripper is a contradiction worth a human look.
            task_factor = 0.25 if expected else 0.35
        notes["state_jumps_at"] = [round(j / fps, 3) for j in motion.jumps]
        notes["change_points"] = splitter.n_change_points

        segments = self._segments(plan, n, fps, duration, tag, task_factor, opts)
        confs = [s.confidence or 0.0 for s in segments]
        uncertainty = clip01(1.0 - (0.5 * float(np.mean(confs)) + 0.5 * min(confs))) if confs else 1.0
        ann = EpisodeAnnotation(
            dataset=job.dataset_id,
            episode=job.episode,
            duration=duration,
            fps=fps,
            task=info.task,
            segments=segments,
            uncertainty=round(uncertainty, 4),
            model=tag,
        )
        return Prediction(status="ok", annotation=ann, notes=notes)

    # ------------------------------------------------------------ plans

    def _gripper_plan(
        self, transitions: list[Transition], starts_closed: bool, n: int, sp: _Splitter
    ) -> _Plan:
        """The pick-and-place template, once per close/open cycle of the gripper."""
        plan = _Plan()
        pos, released, carrying = 0, False, starts_closed
        pos_conf: float | None = None
        for t in transitions:
            if t.kind == "close":
                self._free(plan, pos, t.start, pos_conf, released, sp)
                plan.add(t.start, t.end, "grasp", conf=t.confidence)
                pos, pos_conf, carrying = t.end, t.confidence, True
            else:
                if carrying:
                    self._carry(plan, pos, t.start, pos_conf, sp)
                plan.add(t.start, t.end, "release", conf=t.confidence)
                pos, pos_conf, released, carrying = t.end, t.confidence, True, False
        if carrying:
            self._carry(plan, pos, n, pos_conf, sp)
        else:
            plan.add(pos, n, "retreat" if released else "reach", conf=pos_conf)
        return plan

    def _free(self, plan: _Plan, a: int, b: int, conf_a: float | None, released: bool, sp: _Splitter) -> None:
        """Free motion before a grasp: reach, or after a release retreat then reach."""
        if not released:
            plan.add(a, b, "reach", conf=conf_a)
            return
        found = sp.split_one(a, b)
        if found is None:
            # Too short to hold both: call it all reach, and say the cut was not seen.
            plan.add(a, b, "reach", conf=conf_a)
            return
        cut, conf = found
        plan.add(a, cut, "retreat", conf=conf_a)
        plan.add(cut, b, "reach", conf=conf)

    def _carry(self, plan: _Plan, a: int, b: int, conf_a: float | None, sp: _Splitter) -> None:
        """Carrying (between grasp and release): lift, move, place by direction, else by order."""
        if b - a <= 0:
            return
        groups = sp.groups(a, b)
        lead_still = groups[0] if groups and groups[0].kind == "still" else None
        moving = [g for g in groups if g.kind != "still"]
        if lead_still is not None and moving:
            # The arm waits after closing: that is still securing the grasp. The
            # cut goes where the arm starts to move (Pelt puts it part-way up the
            # speed ramp).
            cut = sp.refine(moving[0].start, a, moving[0].end)
            if plan.spans and plan.spans[-1].end == a:
                plan.spans[-1].end = cut
            else:
                plan.add(a, cut, "grasp", conf=conf_a)
            conf_a = sp.cut_confidence(cut, lead_still, moving[0])
            a = cut
            moving[0] = Group(cut, moving[0].end, moving[0].kind, moving[0].direction, moving[0].clarity)
        if not moving:
            plan.add(a, b, "grasp", clarity=0.5, conf=conf_a)
            return
        if sp.m.z is not None:
            # Up is lift, sideways is move, down is place; the order never goes back
            # (an arc that rises mid-move is still the move).
            named, rank = [], 0
            for g in moving:
                rank = max(rank, CARRY.index({"up": "lift", "horizontal": "move", "down": "place"}[g.kind]))
                named.append((g, CARRY[rank]))
        else:
            named = self._by_order(moving, a, b, sp)
        prev: Group | None = None
        for k, (g, label) in enumerate(named):
            start = a if k == 0 else g.start
            end = b if k == len(named) - 1 else named[k + 1][0].start
            if prev is None:
                conf = conf_a
            else:
                lo = max(prev.start, plan.spans[-1].start) if plan.spans else prev.start
                start = sp.refine(start, lo, end)
                conf = sp.cut_confidence(start, prev, g)
                if plan.spans:
                    plan.spans[-1].end = start
            plan.add(start, end, label, clarity=g.clarity, conf=conf)
            prev = g

    def _by_order(self, moving: list[Group], a: int, b: int, sp: _Splitter) -> list[tuple[Group, str]]:
        """Joint space has no up: merge to three motions by direction (lift, move, place in order)."""
        groups = list(moving)
        while len(groups) > 3:
            sims = [float(np.dot(x.direction, y.direction)) for x, y in itertools.pairwise(groups)]
            k = int(np.argmax(sims))
            groups[k : k + 2] = [sp._join(groups[k], groups[k + 1])]
        if len(groups) < 3:
            cps = _dynp(sp.norm[a:b], 2, sp.min_size)
            if len(cps) == 2:
                sp.n_change_points += 2
                bounds = [a, a + cps[0], a + cps[1], b]
                groups = [sp._classify(s, e) for s, e in itertools.pairwise(bounds)]
                for g in groups:
                    g.clarity = 0.4
        labels = {1: ("move",), 2: ("lift", "place"), 3: CARRY}[len(groups)]
        return [(g, lab) for g, lab in zip(groups, labels, strict=False)]

    def _motion_plan(self, n: int, sp: _Splitter) -> _Plan:
        """Without a gripper: where the arm moves and where it rests, nothing more to claim."""
        plan = _Plan()
        groups = sp.groups(0, n, fold_stills=False)
        if not groups:
            plan.add(0, n, "move", clarity=0.3)
            return plan
        prev: Group | None = None
        for k, g in enumerate(groups):
            end = n if k == len(groups) - 1 else groups[k + 1].start
            label = "idle" if g.kind == "still" else "move"
            conf = None if prev is None else 0.5 * sp.cut_confidence(g.start, prev, g)
            plan.add(g.start if k else 0, end, label, clarity=0.3, conf=conf)
            prev = g
        return plan

    # ------------------------------------------------------------ output

    def _segments(
        self,
        plan: _Plan,
        n: int,
        fps: float,
        duration: float,
        tag: str,
        task_factor: float,
        opts: KinematicOptions,
    ) -> list[Segment]:
        """Clean the plan (too-short spans, repeated names) into a frame-snapped cover."""
        min_frames = max(1, round(opts.min_segment * fps))
        spans = [s for s in plan.spans if s.end > s.start]
        conf = dict(plan.cut_conf)
        # Fold spans too short to be a subtask into the neighbour across the weaker cut.
        changed = True
        while changed and len(spans) > 1:
            changed = False
            for k, s in enumerate(spans):
                if s.end - s.start >= min_frames or s.name in GRIPPER_SPANS:
                    continue
                left = conf.get(s.start, 1.0) if k > 0 else math.inf
                right = conf.get(s.end, 1.0) if k < len(spans) - 1 else math.inf
                if left <= right:
                    spans[k - 1].end = s.end
                    conf.pop(s.start, None)
                else:
                    spans[k + 1].start = s.start
                    conf.pop(s.end, None)
                del spans[k]
                changed = True
                break
        merged: list[Span] = []
        for s in spans:
            if merged and merged[-1].name == s.name and merged[-1].end == s.start:
                merged[-1].end = s.end
                merged[-1].clarity = min(merged[-1].clarity, s.clarity)
                conf.pop(s.start, None)
            else:
                merged.append(Span(s.start, s.end, s.name, s.clarity))
        segs = []
        for s in merged:
            c_start = 1.0 if s.start == 0 else conf.get(s.start, 0.5)
            c_end = 1.0 if s.end >= n else conf.get(s.end, 0.5)
            c = clip01(min(c_start, c_end) * (0.5 + 0.5 * s.clarity) * task_factor)
            segs.append(
                Segment(
                    name=s.name,
                    start=s.start / fps,
                    end=duration if s.end >= n else s.end / fps,
                    source=tag,
                    confidence=round(c, 4),
                )
            )
        return repair_cover(segs, duration, fps)
