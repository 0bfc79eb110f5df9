"""Zero-shot segments for any number of arms: cut where a person would, name by what happens.

A phase starts where its first action starts (events.py): an arm's jaws start to
close on something (grasp, also a grasp that misses) or to open what they hold
(release); an arm starts to move after a pause (reach, lift, retreat; a pause
whose motion carries on in the same direction is a hesitation and cuts nothing);
a carried object changes course (move, place) or slows and carries on (align, then
insert: `course.py`). The episode starts idle until the first motion and ends idle
after the last. Across arms the same rules hold, plus
the one bimanual event that is not a cut: an arm letting go of what another arm
has just grasped is part of that hand-over. Events closer than MERGE seconds are
one cut (the strongest kind wins). An arm that never moves cuts nothing.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from backend.engines.kinematic.events import ArmTrack, same_course
from backend.engines.kinematic.naming import TaskWords
from backend.engines.kinematic.signals import clip01

MERGE = 0.3  # seconds
# How sure each kind of cut is, before the evidence of the instance.
KIND_CONFIDENCE = {"grasp": 0.9, "release": 0.9, "start": 0.8, "end": 0.8, "onset": 0.75, "turn": 0.5}
PRIORITY = {"grasp": 5, "release": 5, "start": 4, "end": 4, "onset": 3, "turn": 1}
HANDOVER_WINDOW = 4.0  # seconds: a release this soon after another arm's grasp hands over


@dataclass
class Cut:
    frame: int
    kind: str  # grasp, release, onset, turn, start (of motion), end (of motion)
    arm: str
    confidence: float
    holding: bool = False  # whether the acting arm holds something after the cut
    handover: bool = False
    failed: bool = False  # a grasp that closes on nothing
    label: str = ""  # a name the rule that made the cut already knows


@dataclass
class Proposal:
    spans: list[tuple[int, int, str]]  # (start, end, name), covering [0, n)
    confidence: dict[int, float]  # start frame of a span -> confidence of the cut there
    notes: dict[str, Any] = field(default_factory=dict)


def _holding_at(track: ArmTrack, frame: int) -> bool:
    h = track.holding
    return bool(h is not None and 0 <= frame < len(h) and h[frame])


def arm_cuts(track: ArmTrack, others: list[ArmTrack], fps: float) -> list[Cut]:
    """The cuts one arm makes: its gripper strokes, its starts after pauses, its turns and
    slowdowns while carrying."""
    cuts: list[Cut] = []
    n = len(track.moving)
    window = round(HANDOVER_WINDOW * fps)
    for k, st in enumerate(track.strokes):
        if st.kind == "close":
            later_open = next((s for s in track.strokes[k + 1 :] if s.kind == "open"), None)
            if st.holding_after:
                cuts.append(Cut(st.start, "grasp", track.name, 0.9, holding=True))
            elif later_open is not None and later_open.start - st.end < 5 * fps:
                # closes on nothing and opens again: a grasp that missed
                cuts.append(Cut(st.start, "grasp", track.name, 0.7, failed=True))
        elif st.holding_before:
            taken = [
                o
                for o in others
                for s in o.strokes
                if s.kind == "close"
                and s.holding_after
                and 0 <= st.start - s.start <= window
                and _holding_at(o, min(n - 1, st.end + 1))
            ]
            if taken:
                cuts.append(Cut(st.start, "release", track.name, 0.9, handover=True))
            else:
                cuts.append(Cut(st.start, "release", track.name, 0.9))
    runs = track.runs()
    for i, (a, _b, mv) in enumerate(runs):
        if not mv or a == 0:
            continue
        stop = runs[i - 1][0]
        stroked = any(stop <= st.start < a for st in track.strokes)
        if i >= 2 and not stroked and same_course(track, stop, a, fps):
            continue  # a hesitation: the same motion carries on
        cuts.append(Cut(a, "onset", track.name, 0.75, holding=_holding_at(track, a)))
    # A carried object changes course (move, then place) or slows and carries on (a peg aligned
    # over its socket, then inserted).
    for t in sorted({*track.turns, *track.slowdowns}):
        if _holding_at(track, t):
            cuts.append(Cut(t, "turn", track.name, 0.5, holding=True))
    return cuts


def _turn_shape(track: ArmTrack, k: int, fps: float) -> tuple[float, float]:
    """(cosine between the courses before and after frame k, speed there over the slower peak)."""
    w = max(2, round(0.3 * fps))
    lo, hi = max(0, k - w), min(len(track.speed), k + w)
    d0, d1 = track.vel[lo:k].mean(axis=0), track.vel[k:hi].mean(axis=0)
    n0, n1 = float(np.linalg.norm(d0)), float(np.linalg.norm(d1))
    cos = float(np.dot(d0, d1) / (n0 * n1)) if n0 > 0 and n1 > 0 else 1.0
    peak = min(float(track.speed[lo:k].max(initial=0.0)), float(track.speed[k:hi].max(initial=0.0)))
    return cos, (float(track.speed[k]) / peak if peak > 0 else 1.0)


def contact_cuts(track: ArmTrack, first: int, last: int, verb: str, obj: str, fps: float) -> list[Cut]:
    """A task done by touching (push, wipe): reach, the contact motion, retreat.

    The retreat begins where the arm turns back (the deepest slowdown with a reversal of
    course); the contact motion where the approach last slows and carries on forward into the
    object before that (the approach's own waypoints come earlier), or failing that where the
    arm sets off again after a pause.
    """
    # Change points in the course, and slowdowns they miss (an approach that slows at contact
    # and pushes on in about the same direction).
    shapes = {k: _turn_shape(track, k, fps) for k in sorted({*track.turns, *track.slowdowns})}
    back = [k for k, (cos, dip) in shapes.items() if cos < 0.0 and dip < 0.45 and first < k < last]
    cuts: list[Cut] = []
    end = last
    if back:
        k = min(back, key=lambda k: shapes[k][1])
        cuts.append(Cut(k, "turn", track.name, 0.6, label="retreat"))
        end = k
    margin = round(0.5 * fps)
    forward = [
        k for k, (cos, dip) in shapes.items() if cos > 0.3 and dip < 0.5 and first + margin < k < end - margin
    ]
    if forward:
        k = max(forward)
        cuts.append(Cut(k, "turn", track.name, 0.5, label=f"{verb}_{obj}"))
    else:
        runs = track.runs()
        pauses = [
            (a - runs[i - 1][0], a)
            for i, (a, _b, mv) in enumerate(runs)
            if mv and i >= 2 and first + margin < a < end - margin
        ]
        if pauses:
            cuts.append(Cut(max(pauses)[1], "onset", track.name, 0.45, label=f"{verb}_{obj}"))
    return cuts


def _merge(cuts: list[Cut], fps: float, merge: float = MERGE) -> list[Cut]:
    """One cut per cluster of nearby cuts: the strongest kind, at its own frame."""
    cuts = sorted(cuts, key=lambda c: c.frame)
    out: list[list[Cut]] = []
    gap = merge * fps
    for c in cuts:
        if out and c.frame - out[-1][-1].frame <= gap:
            out[-1].append(c)
        else:
            out.append([c])
    merged = []
    for group in out:
        best = max(group, key=lambda c: (PRIORITY[c.kind], -c.frame))
        kinds = {c.kind for c in group}
        conf = min(1.0, best.confidence + 0.05 * (len(kinds) - 1))  # agreeing evidence
        label = best.label or next((c.label for c in group if c.label), "")
        merged.append(
            Cut(best.frame, best.kind, best.arm, conf, best.holding, best.handover, best.failed, label)
        )
    return merged


def propose(tracks: list[ArmTrack], words: TaskWords, n: int, fps: float, merge: float = MERGE) -> Proposal:
    """Segments covering [0, n) frames from the arms' tracks, named from the task's words."""
    active = [t for t in tracks if t.moves_at_all()]
    notes: dict[str, Any] = {"arms_moving": [t.name for t in active]}
    if not active:
        return Proposal([(0, n, "idle")], {}, {**notes, "fallback": "nothing moves"})
    cuts: list[Cut] = []
    for t in active:
        cuts += arm_cuts(t, [o for o in active if o is not t], fps)
    first = min(
        [a for t in active for a, _, mv in t.runs() if mv] + [s.start for t in active for s in t.strokes],
        default=0,
    )
    last = max(
        [b for t in active for _, b, mv in t.runs() if mv] + [s.end for t in active for s in t.strokes],
        default=n,
    )
    cuts = [c for c in cuts if first < c.frame < last and not (c.kind == "release" and c.handover)]
    grasped = any(s.kind == "close" and s.holding_after for t in active for s in t.strokes)
    if words.contact and not grasped:
        # Touching, not holding: the arm's own pauses are the approach's; the cuts come from the
        # contact rule (the most active arm does the task).
        main = max(active, key=lambda t: float(t.speed.sum()))
        cuts = [c for c in cuts if c.kind in ("grasp", "release")]
        cuts += contact_cuts(main, first, last, words.contact, words.grasped(0), fps)
        notes["contact_task"] = words.contact
    if first > 0:
        cuts.append(Cut(first, "start", "", 0.8))
    if last < n - 1:
        cuts.append(Cut(last, "end", "", 0.8))
    cuts = [c for c in _merge(cuts, fps, merge) if 0 < c.frame < n]
    spans, conf = _name(cuts, tracks, words, n, first, last)
    notes["cuts"] = {c.kind: sum(1 for x in cuts if x.kind == c.kind) for c in cuts}
    notes["handovers"] = sum(
        1 for t in active for c in arm_cuts(t, [o for o in active if o is not t], fps) if c.handover
    )
    return Proposal(spans, conf, notes)


def _name(
    cuts: list[Cut], tracks: list[ArmTrack], words: TaskWords, n: int, first: int, last: int
) -> tuple[list[tuple[int, int, str]], dict[int, float]]:
    """Spans between the cuts, each named after the cut that starts it and what the arms hold."""
    bounds = [0] + [c.frame for c in cuts] + [n]
    by_frame = {c.frame: c for c in cuts}
    grasps = 0
    held: dict[str, str] = {}  # arm -> object it holds
    spans: list[tuple[int, int, str]] = []
    conf: dict[int, float] = {}
    for a, b in itertools.pairwise(bounds):
        if b <= a:
            continue
        c = by_frame.get(a)
        if c is not None and c.label:
            name = c.label
        elif a == 0:
            name = "idle" if first > 0 else "reach_" + words.grasped(0)
        elif c is None:
            name = "move"
        elif c.kind == "end":
            name = "idle"
        elif c.kind == "grasp":
            others_hold = [o for arm, o in held.items() if arm != c.arm]
            obj = others_hold[0] if others_hold and not c.failed else words.grasped(grasps)
            name = f"hand_over_{obj}" if others_hold and not c.failed else f"grasp_{obj}"
            if not c.failed:
                grasps += 1
                held[c.arm] = obj
                if others_hold:
                    for arm in [x for x in held if x != c.arm]:
                        held.pop(arm)
        elif c.kind == "release":
            obj = held.pop(c.arm, words.grasped(max(0, grasps - 1)))
            name = f"release_{obj}"
        elif c.kind == "turn":
            obj = held.get(c.arm, words.grasped(max(0, grasps - 1)))
            name = f"place_{obj}" if _releases_next(cuts, a, c.arm) else f"move_{obj}"
        elif c.kind in ("onset", "start"):
            holder = c.arm if c.arm in held else next(iter(held), None)
            if c.kind == "onset" and c.arm in held:
                name = (
                    f"lift_{held[c.arm]}" if _after_kind(cuts, a, c.arm) == "grasp" else f"move_{held[c.arm]}"
                )
            elif holder is not None and c.kind == "onset":
                name = f"move_{held[holder]}"
            elif _after_kind(cuts, a, c.arm) == "release":
                name = "retreat"
            else:
                name = "reach_" + words.grasped(grasps)
        else:
            name = "move"
        if spans and spans[-1][2] == name:
            spans[-1] = (spans[-1][0], b, name)
            continue
        spans.append((a, b, name))
        if a > 0 and c is not None:
            conf[a] = c.confidence
    return spans, conf


def _after_kind(cuts: list[Cut], frame: int, arm: str) -> str | None:
    """The kind of the last gripper cut of `arm` before `frame`."""
    prev = [c for c in cuts if c.frame < frame and c.arm == arm and c.kind in ("grasp", "release")]
    return prev[-1].kind if prev else None


def _releases_next(cuts: list[Cut], frame: int, arm: str) -> bool:
    """Whether the next cut after `frame` is `arm` releasing (this course change is the placing)."""
    nxt = [c for c in cuts if c.frame > frame]
    return bool(nxt) and nxt[0].kind == "release" and nxt[0].arm == arm


def uncertainty(
    proposal: Proposal, tracks: list[ArmTrack], expected_grasps: int | None
) -> tuple[float, dict]:
    """How little the kinematics explain the episode: weak cuts, missing or surplus grasps."""
    confs = list(proposal.confidence.values())
    base = 1.0 - (0.5 * float(np.mean(confs)) + 0.5 * min(confs)) if confs else 0.9
    why: dict[str, Any] = {}
    grasps = sum(1 for t in tracks for s in t.strokes if s.kind == "close" and s.holding_after)
    if not any(t.arm.gripper is not None for t in tracks):
        base = max(base, 0.7)
        why["no_gripper"] = True
    if expected_grasps is not None and grasps < expected_grasps:
        base += 0.25
        why["grasps"] = f"the task names {expected_grasps} grasp(s), the grippers show {grasps}"
    failed = sum(1 for t in tracks for s in t.strokes if s.kind == "close" and not s.holding_after)
    if failed and grasps:
        base += 0.1
        why["empty_closings"] = failed
    return clip01(base), why
