"""One track request, from anchors in annotation units to keyframes in annotation units.

The app's Track command, `robo-backend track` and `robo-backend evaluate --track`
all run this: anchors (seconds, normalized coordinates) become pixels on the
camera's frames, each requested gap is tracked (`propagate.track_gap`), and the
dense result becomes sparse keyframes (`keyframes.sparsify`) with the tracker's
provenance, plus the spans they replace and the frames where the target was lost.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from backend.tracking.base import TargetInfo, TrackEngine, TrackingError
from backend.tracking.keyframes import DEFAULT_TOLERANCE_PX, sparsify
from backend.tracking.propagate import Anchor, FrameSource, Progress, frames_to_track, gap_frames, track_gap
from core.annotations import BOX_KINDS, Box
from core.tracks import gap_spans


@dataclass(frozen=True)
class TrackJob:
    """What to track: one box track or one trajectory on one camera, and which gaps."""

    kind: Literal["box", "point"]
    camera: str
    fps: float
    # (t, normalized value) of every keyframe a person placed on this track
    anchors: list[tuple[float, tuple[float, ...]]]
    # which gaps (0 = before the first anchor, len(anchors) = after the last); None: all
    gaps: list[int] | None = None
    label: str = ""
    box_kind: str = "current"
    task: str = ""
    tolerance_px: float = DEFAULT_TOLERANCE_PX

    def __post_init__(self) -> None:
        if self.kind not in ("box", "point"):
            raise TrackingError(f"track.target = {self.kind!r}: must be 'box' or 'point'")
        if not self.anchors:
            raise TrackingError("a track needs at least one keyframe a person placed")
        if self.kind == "box":
            if self.box_kind not in BOX_KINDS:
                raise TrackingError(f"track.kind = {self.box_kind!r}: must be one of {', '.join(BOX_KINDS)}")
            if not self.label.strip():
                raise TrackingError("a box track needs the object's label")
        width = 4 if self.kind == "box" else 2
        for i, (t, v) in enumerate(self.anchors):
            if not np.isfinite(t) or t < 0:
                raise TrackingError(f"track.anchors[{i}].t = {t!r}: must be a time >= 0")
            if len(v) != width or not all(np.isfinite(v)):
                raise TrackingError(
                    f"track.anchors[{i}].value = {list(v)}: a {self.kind} needs {width} finite numbers"
                )
            if self.kind == "box":
                x1, y1, x2, y2 = v
                if x2 <= x1 or y2 <= y1:
                    raise TrackingError(
                        f"track.anchors[{i}].value = {list(v)}: the box has no size (needs x1 < x2 and y1 < y2)"
                    )
                if x2 <= 0 or y2 <= 0 or x1 >= 1 or y1 >= 1:
                    raise TrackingError(
                        f"track.anchors[{i}].value = {list(v)}: the box is outside the frame (coordinates are 0..1)"
                    )
            elif not all(0.0 <= c <= 1.0 for c in v):
                raise TrackingError(
                    f"track.anchors[{i}].value = {list(v)}: the point is outside the frame (coordinates are 0..1)"
                )
        if self.gaps is not None:
            bad = [g for g in self.gaps if not 0 <= g <= len(self.anchors)]
            if bad:
                raise TrackingError(f"track.gaps = {bad}: there are gaps 0..{len(self.anchors)} only")
        if self.tolerance_px < 0:
            raise TrackingError(f"track.tolerance_px = {self.tolerance_px}: must be >= 0")


@dataclass
class TrackOutcome:
    """The track as annotation items, and how it went."""

    status: Literal["ok", "partial", "cancelled"]
    engine: str
    # open time intervals whose tracker items this result replaces (one per gap tracked)
    spans: list[tuple[float, float]] = field(default_factory=list)
    boxes: list[Box] = field(default_factory=list)
    points: list[tuple[float, float, float]] = field(default_factory=list)
    lost: list[float] = field(default_factory=list)
    frames: int = 0
    track_s: float = 0.0
    decode_s: float = 0.0
    errors: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def frames_per_s(self) -> float:
        return self.frames / self.track_s if self.track_s > 0 else 0.0


def _pixels(value: tuple[float, ...], w: int, h: int) -> tuple[float, ...]:
    scale = (w, h, w, h) if len(value) == 4 else (w, h)
    return tuple(float(v) * s for v, s in zip(value, scale, strict=True))


def _unit(value: tuple[float, ...], w: int, h: int) -> tuple[float, ...]:
    scale = (w, h, w, h) if len(value) == 4 else (w, h)
    return tuple(min(max(float(v) / s, 0.0), 1.0) for v, s in zip(value, scale, strict=True))


def total_frames(job: TrackJob, length: int) -> int:
    """Tracker steps the job will take at most (for progress bars)."""
    anchors = _anchors(job, length, 1, 1)
    return sum(
        frames_to_track(anchors[g - 1] if g > 0 else None, anchors[g] if g < len(anchors) else None, length)
        for g in _gap_list(job, len(anchors))
    )


def _anchors(job: TrackJob, length: int, w: int, h: int) -> list[Anchor]:
    by_frame: dict[int, Anchor] = {}
    for t, v in sorted(job.anchors, key=lambda a: a[0]):
        f = round(t * job.fps)
        if not 0 <= f < length:
            raise TrackingError(
                f"the keyframe at {t:.3f} s (frame {f}) is outside the video's {length} frames"
            )
        by_frame[f] = Anchor(f, _pixels(tuple(v), w, h))
    return [by_frame[f] for f in sorted(by_frame)]


def _gap_list(job: TrackJob, n: int) -> list[int]:
    gaps = range(n + 1) if job.gaps is None else sorted(set(job.gaps))
    return [g for g in gaps if g <= n]


def run_track(
    job: TrackJob,
    engine: TrackEngine,
    source: FrameSource,
    cancel: threading.Event | None = None,
    on_progress: Callable[[int, int], None] | None = None,
) -> TrackOutcome:
    """Track the job's gaps on `source` (the job's camera); never raises for a frame that breaks."""
    w, h = source.width, source.height
    anchors = _anchors(job, source.length, w, h)
    gaps = _gap_list(job, len(anchors))
    progress = Progress(callback=on_progress)
    progress.total = sum(
        frames_to_track(
            anchors[g - 1] if g > 0 else None, anchors[g] if g < len(anchors) else None, source.length
        )
        for g in gaps
    )
    duration = source.length / job.fps
    spans_all = gap_spans([a.frame / job.fps for a in anchors], duration)
    out = TrackOutcome(status="ok", engine=engine.tag)
    target = TargetInfo(label=job.label, task=job.task)
    for g in gaps:
        left = anchors[g - 1] if g > 0 else None
        right = anchors[g] if g < len(anchors) else None
        lo, hi = gap_frames(left, right, source.length)
        if hi - lo < 2:
            continue  # no frame between the anchors (or before the first one at frame 0)
        gap = track_gap(engine, job.kind, source, left, right, target, cancel, progress)
        out.spans.append(spans_all[g])
        out.errors += gap.errors
        out.notes += gap.reasons
        out.frames += len(gap.frames)
        # Keyframes: the sparse set over the gap with both anchors as fixed ends, so the
        # interpolation from the anchor into the gap is what is checked too.
        frames = [a.frame for a in (left,) if a] + gap.frames + [a.frame for a in (right,) if a]
        values = [a.value for a in (left,) if a] + gap.values + [a.value for a in (right,) if a]
        keep = sparsify(frames, values, job.kind, job.tolerance_px)
        inner = [i for i in keep if (left is None or i > 0) and (right is None or i < len(frames) - 1)]
        for i in inner:
            t = frames[i] / job.fps
            v = _unit(values[i], w, h)
            if job.kind == "box":
                out.boxes.append(_box(job, t, v, engine.source))
            else:
                out.points.append((t, v[0], v[1]))
        for f, v in zip(gap.lost, gap.lost_values, strict=True):
            t = f / job.fps
            if job.kind == "box":
                out.boxes.append(_box(job, t, _unit(v, w, h), engine.source, lost=True))
            out.lost.append(t)
        if gap.cancelled:
            out.status = "cancelled"
            break
    out.track_s, out.decode_s = progress.track_s, progress.decode_s
    if out.status == "ok" and (out.errors or out.lost):
        out.status = "partial"
    out.boxes.sort(key=lambda b: b.t)
    out.points.sort(key=lambda p: p[0])
    return out


def _box(job: TrackJob, t: float, v: tuple[float, ...], source: str, lost: bool = False) -> Box:
    x1, y1, x2, y2 = v
    return Box(
        t=t,
        camera=job.camera,
        label=job.label,
        kind=job.box_kind,  # type: ignore[arg-type]
        xyxy=(min(x1, x2), min(y1, y2), max(x1, x2), max(y1, y2)),
        source=source,
        lost=lost,
    )
