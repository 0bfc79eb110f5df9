"""Tracks in the annotation: which keyframes a person placed, which gaps a tracker filled, splicing.

A box track is the keyframes of one (camera, label, kind); a trajectory is one
gripper's points on one camera. The keyframes a person placed are the anchors
(boxes: a human `source` and not `lost`; trajectory points: the times in
`Trajectory.anchors`, or every point of a human trajectory that never had
any). Anchors cut the episode into gaps: gap i lies strictly between anchor i-1
and anchor i (gap 0 before the first, gap n after the last). A tracker fills a
gap; splicing its result replaces whatever a tracker or model left in that gap
and never touches an anchor, so re-tracking is repeatable and loses nothing a
person placed. Pure functions on the data model: the app and the backend share them.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Sequence

import msgspec

from core.annotations import TIME_EPS, Box, Trajectory

TRACKER_PREFIX = "tracker:"


def is_tracked(source: str) -> bool:
    """Provenance of an item a tracker made."""
    return source.startswith(TRACKER_PREFIX)


def box_anchors(boxes: Iterable[Box], track: tuple[str, str, str]) -> list[Box]:
    """The person-placed keyframes of one box track, by time."""
    return sorted((b for b in boxes if b.track_key == track and b.is_human and not b.lost), key=lambda b: b.t)


def trajectory_anchor_times(traj: Trajectory) -> list[float]:
    """Times of the points a person placed on a trajectory (see the module docstring)."""
    if traj.anchors:
        return sorted(traj.anchors)
    return [p[0] for p in traj.points] if traj.is_human else []


def anchor_points(traj: Trajectory) -> list[tuple[float, float, float]]:
    """The person-placed points of a trajectory, by time."""
    times = trajectory_anchor_times(traj)
    return [p for p in traj.points if any(abs(p[0] - t) <= TIME_EPS for t in times)]


def gap_spans(anchor_times: Sequence[float], duration: float) -> list[tuple[float, float]]:
    """The open time interval of every gap: (-1, t0), (t0, t1), ..., (t_last, duration + 1)."""
    edges = [-1.0, *sorted(anchor_times), duration + 1.0]
    return list(itertools.pairwise(edges))


def _inside(t: float, span: tuple[float, float]) -> bool:
    return span[0] + TIME_EPS < t < span[1] - TIME_EPS


def untracked_gaps(
    anchor_times: Sequence[float], tracked_times: Iterable[float], duration: float, fps: float
) -> list[int]:
    """Gaps that still need a tracker: at least one frame inside, and no tracked item in them."""
    if not anchor_times:
        return []
    spans = gap_spans(anchor_times, duration)
    n_frames = round(duration * fps)
    tracked = list(tracked_times)
    todo = []
    for i, (lo, hi) in enumerate(spans):
        first = max(0, round(lo * fps) + 1) if lo >= 0 else 0
        last = min(n_frames - 1, round(hi * fps) - 1) if hi <= duration else n_frames - 1
        if last < first:
            continue
        if not any(_inside(t, (lo, hi)) for t in tracked):
            todo.append(i)
    return todo


def box_tracked_times(boxes: Iterable[Box], track: tuple[str, str, str]) -> list[float]:
    return [b.t for b in boxes if b.track_key == track and (is_tracked(b.source) or b.lost)]


def trajectory_tracked_times(traj: Trajectory) -> list[float]:
    anchors = trajectory_anchor_times(traj)
    pts = [p[0] for p in traj.points if not any(abs(p[0] - t) <= TIME_EPS for t in anchors)]
    return pts + list(traj.lost)


def splice_boxes(
    boxes: Sequence[Box],
    track: tuple[str, str, str],
    spans: Sequence[tuple[float, float]],
    new: Sequence[Box],
) -> list[Box]:
    """`boxes` with the track's non-anchor keyframes inside `spans` replaced by `new`."""
    kept = [
        b
        for b in boxes
        if b.track_key != track or (b.is_human and not b.lost) or not any(_inside(b.t, s) for s in spans)
    ]
    return kept + list(new)


def splice_trajectory(
    traj: Trajectory,
    spans: Sequence[tuple[float, float]],
    points: Sequence[tuple[float, float, float]],
    lost: Sequence[float],
) -> Trajectory:
    """The trajectory with its non-anchor points (and lost marks) inside `spans` replaced.

    The anchors are made explicit first, so the person's points stay the person's.
    """
    anchors = trajectory_anchor_times(traj)

    def is_anchor(t: float) -> bool:
        return any(abs(t - a) <= TIME_EPS for a in anchors)

    keep = [p for p in traj.points if is_anchor(p[0]) or not any(_inside(p[0], s) for s in spans)]
    taken = {round(p[0] / TIME_EPS) for p in keep}
    fresh = [p for p in points if round(p[0] / TIME_EPS) not in taken and not is_anchor(p[0])]
    old_lost = [t for t in traj.lost if not any(_inside(t, s) for s in spans)]
    merged = sorted([*keep, *fresh], key=lambda p: p[0])
    new = msgspec.structs.replace(
        traj, points=merged, anchors=sorted(anchors), lost=sorted({*old_lost, *lost})
    )
    new.__post_init__()
    return new
