"""The arithmetic of a person's edits: pure functions from items to changed items.

The app's document turns each gesture (a dragged boundary, a split, a moved box) into
one of these and pushes the result as an undoable command; keeping them here, apart
from Qt, lets their invariants be tested as properties: segments stay an ordered,
gap-free cover of the episode on the frame grid, none shorter than one frame, and an
edit changes only the items it names. Every changed item is rebuilt through its
constructor (`remake`), so it is validated, and carries the editor's `source` with no
model `confidence`.

Conventions: `t` arguments of the segment edits are on the frame grid (see `snap`);
a function returns None when the edit does nothing here (the gesture is ignored) and
raises `EditRefused` when the person should be told why.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

import msgspec

from core.annotations import (
    ITEM_FIELDS,
    Box,
    Contact,
    DialogueTurn,
    EpisodeAnnotation,
    Segment,
    Trajectory,
    segment_index_at,
    snap_time,
)
from core.errors import EditRefused
from core.tracks import is_tracked, splice_trajectory, trajectory_anchor_times

# Boundaries within this of each other are the same instant (float noise of k / fps).
GRID_EPS = 1e-9
NEW_SEGMENT_NAME = "subtask"


class Edited(NamedTuple):
    """An edit's result: the new list and the index of the item to select (None: nothing)."""

    items: list
    index: int | None


# ---------------------------------------------------------------- items and values


def remake[T](item: T, **changes: Any) -> T:
    """A changed copy of an item, validated (msgspec.structs.replace would skip __post_init__)."""
    return type(item)(**{**msgspec.structs.asdict(item), **changes})


def edit_item[T](item: T, source: str, **fields: Any) -> T:
    """A person's change of an item's fields: it becomes theirs, with no model confidence."""
    return remake(item, **{**fields, "source": source, "confidence": None})


def unit(v: float) -> float:
    """A coordinate clamped into the image ([0, 1])."""
    return min(max(float(v), 0.0), 1.0)


def clamp_box(xyxy: Sequence[float]) -> tuple[float, float, float, float]:
    """A box clamped into the image with its corners ordered (a drag may cross them)."""
    x1, y1, x2, y2 = (unit(v) for v in xyxy)
    return (min(x1, x2), min(y1, y2), max(x1, x2), max(y1, y2))


def snap(t: float, duration: float, fps: float) -> float:
    """t clamped to the episode and moved to the nearest frame."""
    return snap_time(min(max(t, 0.0), duration), fps)


def content(ann: EpisodeAnnotation) -> tuple:
    """What a person edits, without revision bookkeeping."""
    return (*(getattr(ann, f) for f in ITEM_FIELDS), ann.review)


def insert_by_time[T](items: Sequence[T], item: T) -> Edited:
    """`items` (sorted by t) with `item` among them, and where it went."""
    out = sorted([*items, item], key=lambda x: x.t)  # type: ignore[attr-defined]
    return Edited(out, out.index(item))


def accepted_changes(ann: EpisodeAnnotation, suggestion: EpisodeAnnotation) -> dict[str, Any]:
    """The fields accepting a model's suggestion changes: each kind it predicted replaces ours."""
    changes: dict[str, Any] = {f: getattr(suggestion, f) for f in ITEM_FIELDS if getattr(suggestion, f)}
    changes["model"] = suggestion.model or ann.model
    changes["uncertainty"] = suggestion.uncertainty
    return changes


# ---------------------------------------------------------------- segments


def _frame(fps: float) -> float:
    return 1 / fps


def move_boundary(
    segments: Sequence[Segment], b: int, t: float, fps: float, source: str
) -> list[Segment] | None:
    """Move the boundary between segments b-1 and b to t, snapped to a frame, keeping both >= 1 frame."""
    segs = list(segments)
    if not 1 <= b < len(segs):
        return None
    lo = segs[b - 1].start + _frame(fps)
    hi = segs[b].end - _frame(fps)
    if hi < lo - GRID_EPS:
        return None
    t = min(max(snap_time(t, fps), snap_time(lo, fps)), snap_time(hi, fps))
    if abs(t - segs[b].start) < GRID_EPS:
        return None
    segs[b - 1] = edit_item(segs[b - 1], source, end=t)
    segs[b] = edit_item(segs[b], source, start=t)
    return segs


def split(segments: Sequence[Segment], t: float, fps: float, source: str) -> Edited:
    """Split the segment under t at t; both halves keep its name. Selects the second half."""
    i = segment_index_at(segments, t)
    if i is None:
        raise EditRefused("nothing to split here: there is no segment under the playhead")
    segs = list(segments)
    seg = segs[i]
    if t - seg.start < _frame(fps) - GRID_EPS or seg.end - t < _frame(fps) - GRID_EPS:
        raise EditRefused(f"split refused: {t:.3f} s is on a boundary of '{seg.name}'")
    segs[i : i + 1] = [edit_item(seg, source, end=t), edit_item(seg, source, start=t)]
    return Edited(segs, i + 1)


def merge_with_next(segments: Sequence[Segment], i: int | None, source: str) -> Edited:
    """Segment i takes the time of the one after it (and keeps its own name)."""
    segs = list(segments)
    if i is None or not 0 <= i < len(segs) - 1:
        raise EditRefused("merge needs a segment with a next one")
    a, b = segs[i], segs[i + 1]
    segs[i : i + 2] = [edit_item(a, source, end=b.end)]
    return Edited(segs, i)


def rename(segments: Sequence[Segment], i: int, name: str, source: str) -> Edited | None:
    """Segment i named `name` (stripped); None if there is no segment i or the name is the same."""
    segs = list(segments)
    if not 0 <= i < len(segs):
        return None
    name = name.strip()
    if not name:
        raise EditRefused("a subtask name cannot be empty")
    if name == segs[i].name:
        return None
    segs[i] = edit_item(segs[i], source, name=name)
    return Edited(segs, i)


def insert(
    segments: Sequence[Segment],
    t: float,
    fps: float,
    duration: float,
    source: str,
    name: str = NEW_SEGMENT_NAME,
    length: float = 1.0,
) -> Edited | None:
    """A new segment from t for `length` seconds, cut out of the one under it (at the very end:
    its last frames). With no segments, the new one covers the episode."""
    segs = list(segments)
    if not segs:
        return Edited([Segment(name=name, start=0.0, end=duration, source=source)], 0)
    i = segment_index_at(segs, t)
    if i is None:
        return None
    seg = segs[i]
    frame = _frame(fps)
    if seg.end - t < frame - GRID_EPS:  # at the very end: take the last frames instead
        t = snap_time(max(seg.start, seg.end - length), fps)
    end = min(snap(t + max(length, frame), duration, fps), seg.end)
    if end - t < frame - GRID_EPS:
        return None
    pieces = []
    if t - seg.start > GRID_EPS:
        pieces.append(remake(seg, end=t))
    pieces.append(Segment(name=name, start=t, end=end, source=source))
    if seg.end - end > GRID_EPS:
        pieces.append(remake(seg, start=end))
    segs[i : i + 1] = pieces
    return Edited(segs, i + (1 if t - seg.start > GRID_EPS else 0))


def delete(segments: Sequence[Segment], i: int, source: str) -> Edited:
    """Remove segment i; the previous one (or the next, for the first) takes its time."""
    segs = list(segments)
    if not 0 <= i < len(segs):
        raise EditRefused(f"there is no segment {i} to delete ({len(segs)} segments)")
    gone = segs[i]
    if len(segs) == 1:
        return Edited([], None)
    if i > 0:
        segs[i - 1] = edit_item(segs[i - 1], source, end=gone.end)
        del segs[i]
        return Edited(segs, i - 1)
    segs[1] = edit_item(segs[1], source, start=0.0)
    del segs[0]
    return Edited(segs, 0)


def jump_target(segments: Sequence[Segment], playhead: float, fps: float, direction: int) -> float | None:
    """Up/down: the start of the previous or next segment from the playhead (the end after the last)."""
    if not segments:
        return None
    starts = [s.start for s in segments]
    eps = 0.5 / fps
    if direction > 0:
        later = [s for s in starts if s > playhead + eps]
        return later[0] if later else segments[-1].end
    earlier = [s for s in starts if s < playhead - eps]
    return earlier[-1] if earlier else 0.0


# ---------------------------------------------------------------- boxes


def track_is_tracked(boxes: Sequence[Box], track: tuple[str, str, str]) -> bool:
    """A box track a tracker filled (so a person's correction of it is re-tracked)."""
    return any(b.track_key == track and (is_tracked(b.source) or b.lost) for b in boxes)


def set_keyframe(
    boxes: Sequence[Box],
    track: tuple[str, str, str],
    t: float,
    xyxy: Sequence[float],
    fps: float,
    source: str,
) -> tuple[list[Box], int, bool]:
    """A track's box at t set to `xyxy` (clamped): the keyframe within half a frame of t changes,
    else one is added. Returns the boxes, the keyframe's index and whether it was added."""
    xyxy = clamp_box(xyxy)
    out = list(boxes)
    for i, b in enumerate(out):
        if b.track_key == track and abs(b.t - t) < 0.5 / fps:
            out[i] = remake(b, xyxy=xyxy, source=source, confidence=None, lost=False)
            return out, i, False
    camera, label, kind = track
    out.append(Box(t=t, camera=camera, label=label, kind=kind, xyxy=xyxy, source=source))
    return out, len(out) - 1, True


def promote_keyframe(
    boxes: Sequence[Box], track: tuple[str, str, str], t: float, fps: float, source: str
) -> list[Box]:
    """The track's keyframe at t (within half a frame) made a person's, if it was not."""
    out = list(boxes)
    for i, b in enumerate(out):
        if b.track_key == track and abs(b.t - t) < 0.5 / fps and not b.is_human:
            out[i] = remake(b, source=source, confidence=None, lost=False)
    return out


# ---------------------------------------------------------------- trajectories and contacts


def trajectory_is_tracked(traj: Trajectory) -> bool:
    """A trajectory a tracker filled (so a person's correction of it is re-tracked)."""
    return is_tracked(traj.source) or bool(traj.lost)


def move_point(traj: Trajectory, pi: int, x: float, y: float, source: str) -> Trajectory:
    """Point pi moved to (x, y) (clamped) and made a person's; the others keep what they were.
    A tracked trajectory keeps the tracker as its source: its anchors say what is the person's."""
    if not 0 <= pi < len(traj.points):
        raise EditRefused(f"the trajectory has no point {pi} ({len(traj.points)} points)")
    points = list(traj.points)
    t = points[pi][0]
    points[pi] = (t, unit(x), unit(y))
    anchors = sorted({*trajectory_anchor_times(traj), t})
    keep_source = traj.source if trajectory_is_tracked(traj) else source
    return remake(traj, points=points, anchors=anchors, source=keep_source, confidence=None)


def place_point(traj: Trajectory, t: float, x: float, y: float, fps: float) -> tuple[Trajectory, int]:
    """A point a person placed at t: it replaces any point (and lost mark) within half a frame of
    t and becomes an anchor. Returns the trajectory and the point's index."""
    eps = 0.5 / fps
    points = [p for p in traj.points if abs(p[0] - t) >= eps] + [(t, unit(x), unit(y))]
    points.sort(key=lambda p: p[0])
    anchors = sorted({*(a for a in trajectory_anchor_times(traj) if abs(a - t) >= eps), t})
    lost = [lt for lt in traj.lost if abs(lt - t) >= eps]
    new = remake(traj, points=points, anchors=anchors, lost=lost, confidence=None)
    return new, next(i for i, p in enumerate(points) if p[0] == t)


def new_trajectory(camera: str, t: float, x: float, y: float, source: str) -> Trajectory:
    return Trajectory(camera=camera, points=[(t, unit(x), unit(y))], anchors=[t], source=source)


def pick_trajectory(trajectories: Sequence[Trajectory], camera: str, selected: int | None) -> int | None:
    """Which trajectory a new point of `camera` goes on: the selected one if it is that camera's,
    else the camera's first, else None (a new one)."""
    if selected is not None and 0 <= selected < len(trajectories) and trajectories[selected].camera == camera:
        return selected
    return next((i for i, tr in enumerate(trajectories) if tr.camera == camera), None)


def retrack(
    traj: Trajectory,
    spans: Sequence[tuple[float, float]],
    points: Sequence[tuple[float, float, float]],
    lost: Sequence[float],
    promote: float | None = None,
    source: str = "",
) -> Trajectory:
    """A tracker's points in place of the trajectory's tracked points in `spans`; `promote` (the
    time the track started from) becomes an anchor, `source` (the tracker) the trajectory's."""
    anchors = trajectory_anchor_times(traj)
    if promote is not None:
        anchors = sorted({*anchors, promote})
    traj = remake(traj, anchors=anchors, source=source or traj.source, confidence=None)
    return splice_trajectory(traj, spans, points, lost)


def move_contact(contact: Contact, x: float, y: float, source: str) -> Contact:
    return edit_item(contact, source, x=unit(x), y=unit(y))


def new_contact(camera: str, t: float, x: float, y: float, source: str) -> Contact:
    return Contact(t=t, camera=camera, x=unit(x), y=unit(y), source=source)


# ---------------------------------------------------------------- dialogue


def new_dialogue_turn(segments: Sequence[Segment], t: float, source: str) -> DialogueTurn:
    """A turn at t for the skill of the segment under it, with placeholder words to edit."""
    i = segment_index_at(segments, t)
    skill = segments[i].name if i is not None else NEW_SEGMENT_NAME
    return DialogueTurn(
        t=t, skill=skill, user_prompt=f"please {skill}", robot_utterance=f"OK, I will {skill}.", source=source
    )
