"""Kinematic events as anchors: where a person's boundary sits, in terms the robot can find again.

A reviewer cuts at something that happened: the right gripper started closing,
the left arm set off, the carried peg changed course. DTW brings each accepted
boundary to about the right place in a new episode; the boundary's anchor (the
event of the same kind, on the same arm, nearest to it in the accepted episode,
and how far from it the person cut) then puts it exactly where that event happens
in the new episode. A boundary with no event near it keeps the DTW position.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from backend.engines.kinematic.arms import find_arms
from backend.engines.kinematic.events import ArmTrack, track_arms
from core.dataset import EpisodeSignals

# A boundary this close to an event (seconds) is anchored to it.
ANCHOR_WITHIN = 0.35
# In the new episode the same event is looked for this far (seconds) around the DTW position.
SEARCH_WITHIN = 1.0
PRIORITY = {"start": 4, "end": 4, "close": 3, "open": 3, "onset": 2, "offset": 1, "turn": 0}
GRIPPER = ("close", "open")
MOTION = ("onset", "offset", "turn")


@dataclass(frozen=True)
class Event:
    frame: int
    kind: str  # close, open, onset, offset, turn, start (of all motion), end (of all motion)
    arm: str
    detail: str = ""  # close: "holds", "miss" (opens again to try anew) or "empty"; open: "held" or "free"

    def same_as(self, other: Event) -> bool:
        return (self.kind, self.arm, self.detail) == (other.kind, other.arm, other.detail)


def after_gripper(ev: Event, events: list[Event]) -> tuple[Event, int] | None:
    """For a motion event: the arm's last gripper event before it, and how many motion events of
    the same kind the arm had in between (the lift is the first onset after the grasp)."""
    grip = [e for e in events if e.arm == ev.arm and e.kind in GRIPPER and e.frame <= ev.frame]
    if not grip:
        return None
    g = grip[-1]
    between = sum(1 for e in events if e.same_as(ev) and g.frame <= e.frame < ev.frame)
    return g, between


def events_of(tracks: list[ArmTrack]) -> list[Event]:
    """Every kinematic event of an episode, sorted by frame."""
    out: list[Event] = []
    first, last = None, None
    for t in tracks:
        n = len(t.moving)
        for k, s in enumerate(t.strokes):
            if s.kind == "close":
                # Closing on nothing and later holding something: a grasp that missed. Closing
                # on nothing for good (back at rest) is just closing.
                later_hold = any(x.kind == "close" and x.holding_after for x in t.strokes[k + 1 :])
                detail = "holds" if s.holding_after else ("miss" if later_hold else "empty")
            else:
                detail = "held" if s.holding_before else "free"
            out.append(Event(s.start, s.kind, t.name, detail))
            first = s.start if first is None else min(first, s.start)
            last = s.end if last is None else max(last, s.end)
        for a, b, mv in t.runs():
            if not mv:
                continue
            if a > 0:
                out.append(Event(a, "onset", t.name))
            if b < n:
                out.append(Event(b, "offset", t.name))
            first = a if first is None else min(first, a)
            last = b if last is None else max(last, b)
        out += [Event(k, "turn", t.name) for k in t.turns]
    if first is not None and first > 0:
        out.append(Event(first, "start", ""))
    if last is not None:
        out.append(Event(last, "end", ""))
    return sorted(out, key=lambda e: (e.frame, -PRIORITY[e.kind]))


@dataclass
class Kinematics:
    """What the zero-shot analysis makes of one episode: its events, and the cuts it would make."""

    events: list[Event]
    cuts: list[int]
    spans: list[tuple[int, int, str]] = field(default_factory=list)  # (start, end, zero-shot name)


def episode_kinematics(sig: EpisodeSignals, fps: float, task: str = "", threshold: float = 0.4) -> Kinematics:
    """Events and zero-shot cuts of one episode (arms found as the zero-shot engine finds them)."""
    from backend.engines.kinematic.naming import task_words
    from backend.engines.kinematic.segmenter import propose

    if len(sig) < 8:
        return Kinematics([], [], [(0, len(sig), "idle")])
    arms, _ = find_arms(sig, fps, threshold)
    tracks = track_arms(arms, fps)
    spans = propose(tracks, task_words(task), len(sig), fps).spans
    return Kinematics(events_of(tracks), [a for a, _, _ in spans[1:]], spans)


def anchor(frame: int, events: list[Event], fps: float) -> tuple[Event, int] | None:
    """The event a boundary at `frame` sits at, and the boundary's offset from it."""
    near = [e for e in events if abs(e.frame - frame) <= ANCHOR_WITHIN * fps]
    if not near:
        return None
    # The nearest event; a stronger kind only breaks near-ties (a frame or so).
    best = min(near, key=lambda e: (abs(e.frame - frame) - 0.01 * fps * PRIORITY[e.kind], e.frame))
    return best, frame - best.frame


def ordinal(ev: Event, events: list[Event]) -> int:
    """How many events like `ev` (kind, arm, detail) come before it."""
    return sum(1 for e in events if e.same_as(ev) and e.frame < ev.frame)


def snap(
    j: int,
    found: tuple[Event, int],
    events: list[Event],
    lo: int,
    hi: int,
    fps: float,
    rank: int | None = None,
    context: tuple[Event, int] | None = None,
    context_rank: int | None = None,
) -> int | None:
    """Where the anchored boundary goes in the new episode: at the same event, plus the offset;
    None when the new episode has no such event near.

    Gripper events are matched by rank (the second grasp that holds is the second grasp that
    holds, however differently the two episodes are timed); motion events, which come and go
    with every hesitation, by nearness to the DTW position `j`.
    """
    ev, offset = found
    same = [e for e in events if e.same_as(ev)]
    far = 3 * SEARCH_WITHIN * fps
    if ev.kind in GRIPPER and rank is not None and rank < len(same):
        e = same[rank]
        if abs(e.frame + offset - j) <= far and lo < e.frame + offset < hi:
            return e.frame + offset
    if ev.kind in MOTION and context is not None and context[1] == 0:
        # The first onset (offset, turn) after a gripper event is the same motion here: find that
        # gripper event by rank, then the first such motion event after it.
        g, _ = context
        g_rank = context_rank if context_rank is not None else 0
        grips = [e for e in events if e.same_as(g)]
        if g_rank < len(grips):
            g_here = grips[g_rank]
            nxt = [e for e in same if e.frame >= g_here.frame]
            if nxt and abs(nxt[0].frame + offset - j) <= far and lo < nxt[0].frame + offset < hi:
                return nxt[0].frame + offset
    r = SEARCH_WITHIN * fps
    cands = [e for e in same if abs(e.frame + offset - j) <= r and lo < e.frame + offset < hi]
    if not cands:
        return None
    return min(cands, key=lambda e: abs(e.frame + offset - j)).frame + offset


def missed_grasps(ex_events: list[Event], tgt_events: list[Event]) -> tuple[list[Event], list[Event]]:
    """Grasps that closed on nothing in one episode and not in the other: (the exemplar's extra
    ones, the target's extra ones), matched per arm by rank."""

    def empty(events: list[Event], arm: str) -> list[Event]:
        return [e for e in events if e.kind == "close" and e.detail == "miss" and e.arm == arm]

    arms = {e.arm for e in ex_events + tgt_events if e.kind == "close"}
    ex_extra, tgt_extra = [], []
    for arm in sorted(arms):
        a, b = empty(ex_events, arm), empty(tgt_events, arm)
        ex_extra += a[len(b) :]
        tgt_extra += b[len(a) :]
    return ex_extra, tgt_extra


def next_event(
    events: list[Event], after: int, kind: str, arm: str, detail: str | None = None
) -> Event | None:
    return next(
        (
            e
            for e in events
            if e.frame > after and e.kind == kind and e.arm == arm and (detail is None or e.detail == detail)
        ),
        None,
    )
