"""A VLM's segments over a whole episode: windows stitched into one cover, boundaries snapped.

Long episodes are segmented in overlapping windows (core.vlm.tasks.segmentation);
`stitch_windows` joins their covers where both windows agree. `snap_boundaries`
moves boundaries onto the kinematic engine's gripper events, which a model
reading contact sheets at a few frames per second can only place roughly.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

from backend.engines.base import EpisodeJob
from core.annotations import Segment, repair_cover


def stitch_windows(
    parts: Sequence[tuple[tuple[float, float], list[Segment]]], duration: float, fps: float
) -> list[Segment]:
    """One gap-free cover of [0, duration] from per-window covers.

    Where two windows overlap, the cut goes where both put a boundary (the closest
    pair within the overlap), else at the overlap's middle; a subtask split only by
    the cut is joined again.
    """
    parts = sorted((w, segs) for w, segs in parts if segs)
    if not parts:
        return []
    # Per pair of neighbours: where the earlier window stops and the later one takes over.
    cuts: list[tuple[float, float]] = []
    for (wa, sa), (wb, sb) in itertools.pairwise(parts):
        lo, hi = wb[0], wa[1]
        mid = (lo + hi) / 2
        ba = [s.end for s in sa[:-1] if lo <= s.end <= hi]
        bb = [s.start for s in sb[1:] if lo <= s.start <= hi]
        pairs = sorted((abs(x - y), x, y) for x in ba for y in bb)
        if pairs and pairs[0][0] <= max(1.0, 0.25 * (hi - lo)):
            cuts.append((pairs[0][1], pairs[0][2]))
        else:
            cuts.append((mid, mid))
    starts = [0.0] + [c[1] for c in cuts]
    ends = [c[0] for c in cuts] + [duration]
    out: list[Segment] = []
    for (_, segs), a, b in zip(parts, starts, ends, strict=True):
        for s in segs:
            s0, s1 = max(s.start, a), min(s.end, b)
            if s1 - s0 <= 1e-6:
                continue
            if out and out[-1].name == s.name and abs(out[-1].end - s0) < 0.5:
                prev = out.pop()
                conf = _min_conf(prev.confidence, s.confidence)
                out.append(Segment(name=s.name, start=prev.start, end=s1, source=s.source, confidence=conf))
            else:
                out.append(Segment(name=s.name, start=s0, end=s1, source=s.source, confidence=s.confidence))
    return repair_cover(out, duration, fps)


def _min_conf(a: float | None, b: float | None) -> float | None:
    vals = [x for x in (a, b) if x is not None]
    return min(vals) if vals else None


def gripper_events(job: EpisodeJob) -> list[float]:
    """Times (s) where the gripper starts and finishes closing or opening, from the kinematic engine."""
    from backend.engines.kinematic import KinematicOptions, find_gripper, gripper_transitions

    ds = job.dataset
    sig = ds.signals(job.episode)
    fps = float(ds.fps)
    if len(sig) < 8:
        return []
    grip, _ = find_gripper(sig, fps, KinematicOptions().shape_threshold)
    if grip is None:
        return []
    trans, _, _ = gripper_transitions(sig.channels[grip.feature][:, grip.dim], fps, grip.confidence)
    return sorted({t.start / fps for t in trans} | {t.end / fps for t in trans})


def snap_boundaries(
    segments: list[Segment], events: Sequence[float], tolerance: float, duration: float, fps: float
) -> tuple[list[Segment], int]:
    """Move each inner boundary to the nearest gripper event within `tolerance`; keep order.

    Returns the new cover and how many boundaries moved.
    """
    if len(segments) < 2 or not events or tolerance <= 0:
        return segments, 0
    bounds = [s.end for s in segments[:-1]]
    moved = 0
    new = []
    for i, b in enumerate(bounds):
        near = min(events, key=lambda e: abs(e - b))
        lo = new[-1] if new else 0.0
        hi = bounds[i + 1] if i + 1 < len(bounds) else duration
        if abs(near - b) <= tolerance and lo < near < hi and abs(near - b) > 1e-9:
            new.append(near)
            moved += 1
        else:
            new.append(b)
    edges = [0.0, *new, duration]
    out = [
        Segment(name=s.name, start=a, end=z, source=s.source, confidence=s.confidence)
        for s, a, z in zip(segments, edges[:-1], edges[1:], strict=True)
        if z - a > 1e-6
    ]
    return repair_cover(out, duration, fps), moved
