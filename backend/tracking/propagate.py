"""The propagation loop: from the keyframes a person placed, forwards and backwards, until lost.

A track's person-placed keyframes (anchors) cut the episode into gaps. A gap
between two anchors is tracked from both ends (forwards from the left one,
backwards from the right one) and the two runs are blended linearly in time, so
the track meets each anchor exactly and each run is trusted most near its own
anchor; a gap at either end of the episode is tracked from its one anchor. A run
stops at the first frame its tracker loses the target (that frame is flagged),
at a frame that cannot be decoded (the error is kept, and so is everything
tracked before it), or when the caller cancels; what was tracked is kept. A run
whose tracker bridged a frame on its last motion (`Step.guessed`) is trusted after
it only where the run from the other anchor did not reach: from two keyframes,
box mean IoU on the seed-2 demos (`bench/tracking.py --keyframes 2 --seed 2`,
single-ee / single-joint / bimanual) was 0.853 / 0.768 / 0.794 with both runs
blended there and is 0.853 / 0.790 / 0.797.

Frames come from a `FrameSource`: `EpisodeFrames` decodes one camera of an
episode (forwards with one decoder, backwards in chunks decoded forwards, so
long-GOP videos do not seek once per frame).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import numpy as np

from backend.tracking.base import TargetInfo, TrackEngine, TrackingError, check_value
from core.dataset import Dataset
from core.errors import RoboAnnotateError, VideoError
from core.video import FrameReader

# Frames decoded at a time when travelling backwards.
BACKWARD_CHUNK = 32


class FrameSource:
    """Frames of one camera of one episode, in either direction (RGB uint8)."""

    width: int
    height: int
    length: int
    name: str = "frames"

    def forward(self, start: int, stop: int) -> Iterator[tuple[int, np.ndarray]]:
        """Frames start, start+1, ..., stop-1."""
        raise NotImplementedError

    def backward(self, start: int, stop: int) -> Iterator[tuple[int, np.ndarray]]:
        """Frames start, start-1, ..., stop+1."""
        raise NotImplementedError

    def frame(self, index: int) -> np.ndarray:
        return next(self.forward(index, index + 1))[1]


class ArrayFrames(FrameSource):
    """Frames already in memory (evaluation, benchmarks, tests)."""

    def __init__(self, frames: np.ndarray | list[np.ndarray], name: str = "frames") -> None:
        self.frames = frames
        self.length = len(frames)
        self.height, self.width = np.asarray(frames[0]).shape[:2]
        self.name = name

    def forward(self, start: int, stop: int) -> Iterator[tuple[int, np.ndarray]]:
        for i in range(max(start, 0), min(stop, self.length)):
            yield i, np.asarray(self.frames[i])

    def backward(self, start: int, stop: int) -> Iterator[tuple[int, np.ndarray]]:
        for i in range(min(start, self.length - 1), max(stop, -1), -1):
            yield i, np.asarray(self.frames[i])


class EpisodeFrames(FrameSource):
    """One camera of one episode of a dataset, decoded on demand."""

    def __init__(
        self, dataset: Dataset, episode: int, camera: str, reader: FrameReader | None = None
    ) -> None:
        if camera not in dataset.cameras:
            raise TrackingError(
                f"{dataset.root}: episode {episode} has no camera '{camera}' "
                f"(cameras: {', '.join(dataset.cameras) or 'none'})"
            )
        self.ref = dataset.video(episode, camera)
        self.length = self.ref.length
        self.height, self.width = dataset.camera_shape(camera)
        self.reader = reader or FrameReader(cache_bytes=0)
        self.name = f"episode {episode}, camera '{camera}'"

    def forward(self, start: int, stop: int) -> Iterator[tuple[int, np.ndarray]]:
        yield from self.reader.iter_frames(self.ref, max(start, 0), min(stop, self.length))

    def backward(self, start: int, stop: int) -> Iterator[tuple[int, np.ndarray]]:
        hi = min(start, self.length - 1)
        lo_limit = max(stop + 1, 0)
        while hi >= lo_limit:
            lo = max(lo_limit, hi - BACKWARD_CHUNK + 1)
            try:
                chunk = list(self.reader.iter_frames(self.ref, lo, hi + 1))
            except VideoError:
                # A damaged frame in this chunk: take the frames after it one by one, newest
                # first, so everything up to the damage is still tracked, then report it.
                for i in range(hi, lo - 1, -1):
                    yield i, self.reader.frame(self.ref, i)
                return
            yield from reversed(chunk)
            hi = lo - 1


@dataclass(frozen=True)
class Anchor:
    """A keyframe a person placed: its frame and the target there, in pixels."""

    frame: int
    value: tuple[float, ...]


@dataclass
class Run:
    """One direction of travel from one anchor."""

    frames: list[int] = field(default_factory=list)
    values: list[tuple[float, ...]] = field(default_factory=list)
    confidence: list[float] = field(default_factory=list)
    guessed: list[bool] = field(default_factory=list)  # bridged on the last motion alone
    lost_at: int | None = None  # the frame where the tracker lost the target
    reason: str = ""
    error: str = ""  # a frame could not be read
    cancelled: bool = False


@dataclass
class GapTrack:
    """A gap's frames (strictly between its anchors), their values, and what went wrong."""

    frames: list[int] = field(default_factory=list)
    values: list[tuple[float, ...]] = field(default_factory=list)
    lost: list[int] = field(default_factory=list)
    lost_values: list[tuple[float, ...]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    reasons: list[str] = field(default_factory=list)
    cancelled: bool = False


@dataclass
class Progress:
    """Shared between the runs of one request: frames done of frames to do, and the clocks."""

    total: int = 0
    done: int = 0
    track_s: float = 0.0  # time inside the trackers
    decode_s: float = 0.0  # time waiting for frames
    callback: Callable[[int, int], None] | None = None

    def step(self) -> None:
        self.done += 1
        if self.callback is not None:
            self.callback(self.done, self.total)


def run_direction(
    engine: TrackEngine,
    kind: str,
    source: FrameSource,
    anchor: Anchor,
    stop: int,
    direction: int,
    target: TargetInfo | None = None,
    cancel: threading.Event | None = None,
    progress: Progress | None = None,
) -> Run:
    """Track from `anchor` towards `stop` (exclusive), one frame at a time, until lost.

    A bad target (a box outside the frame, of no size) raises TrackingError before any
    work; a frame that cannot be read ends the run with `error` set and keeps the rest.
    """
    run = Run()
    progress = progress or Progress()
    frames = source.forward(anchor.frame, stop) if direction > 0 else source.backward(anchor.frame, stop)
    index = anchor.frame
    try:
        t0 = time.perf_counter()
        index, first = next(frames)
        progress.decode_s += time.perf_counter() - t0
    except StopIteration:
        return run
    except RoboAnnotateError as exc:
        run.error = f"{source.name}: the keyframe's frame {anchor.frame} cannot be read: {exc}"
        return run
    value = check_value(
        kind, anchor.value, first.shape[1], first.shape[0], f"the keyframe at frame {anchor.frame}"
    )
    tracker = engine.tracker(kind, target)
    try:
        t0 = time.perf_counter()
        tracker.start(first, value)
        progress.track_s += time.perf_counter() - t0
        while True:
            if cancel is not None and cancel.is_set():
                run.cancelled = True
                return run
            t0 = time.perf_counter()
            try:
                index, frame = next(frames)
            except StopIteration:
                return run
            except RoboAnnotateError as exc:
                run.error = f"{source.name}: stopped before frame {index + direction}: {exc}"
                return run
            t1 = time.perf_counter()
            step = tracker.update(frame)
            t2 = time.perf_counter()
            progress.decode_s += t1 - t0
            progress.track_s += t2 - t1
            progress.step()
            if step.lost:
                # Frames the tracker bridged on its last motion alone just before the loss
                # were guesses: the run ends at the last frame it followed.
                lost_at = index
                while run.guessed and run.guessed[-1]:
                    run.guessed.pop()
                    lost_at = run.frames.pop()
                    run.values.pop()
                    run.confidence.pop()
                run.lost_at, run.reason = lost_at, step.reason
                return run
            run.frames.append(index)
            run.values.append(tuple(float(v) for v in step.value))
            run.confidence.append(float(step.confidence))
            run.guessed.append(step.guessed)
    finally:
        tracker.close()


def _agreement(kind: str, a: tuple[float, ...], b: tuple[float, ...], scale: float) -> float:
    """How well two runs agree on a frame, in [0, 1]: box IoU, or 1 - distance / scale for points."""
    if kind == "box":
        ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
        iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
        inter = ix * iy
        union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
        return inter / union if union > 0 else 0.0
    return max(0.0, 1.0 - float(np.hypot(a[0] - b[0], a[1] - b[1])) / scale)


# The runs must agree at least this well somewhere for one to hand over to the other there.
HANDOVER_AGREEMENT = 0.6


def _trusted(run: Run, other: Run) -> Run:
    """`run` without what it tracked after its first bridged frame, where `other` has those frames.

    A tracker that had to bridge a frame may have come back on something else; where the
    run from the gap's other anchor reached, that one is trusted there instead, as if this
    run had stopped at the bridged frame.
    """
    if True not in run.guessed:
        return run
    first = run.guessed.index(True)
    theirs = set(other.frames)
    keep = [i for i in range(len(run.frames)) if i < first or run.frames[i] not in theirs]
    return Run(
        frames=[run.frames[i] for i in keep],
        values=[run.values[i] for i in keep],
        confidence=[run.confidence[i] for i in keep],
        guessed=[run.guessed[i] for i in keep],
    )


def _blend(
    fwd: Run, bwd: Run, lo: int, hi: int, kind: str = "box", scale: float = 50.0
) -> tuple[list[int], list[tuple[float, ...]]]:
    """One track over (lo, hi) from the forward run (from lo) and the backward run (from hi).

    Each run is right near its own anchor and may drift away from it. Where the two agree
    best, the forward run hands over to the backward one: both are trusted up to where they
    meet. If they never agree (one drifted early), they are blended linearly in time. Where
    only one reached, it alone is used.
    """
    a = dict(zip(fwd.frames, fwd.values, strict=True))
    b = dict(zip(bwd.frames, bwd.values, strict=True))
    both = [f for f in range(lo + 1, hi) if f in a and f in b]
    handover = None
    if both:
        mid = (lo + hi) / 2
        score = {f: _agreement(kind, a[f], b[f], scale) for f in both}
        best = max(both, key=lambda f: (round(score[f], 2), -abs(f - mid)))
        if score[best] >= HANDOVER_AGREEMENT:
            handover = best
    frames, values = [], []
    span = max(hi - lo, 1)
    for f in range(lo + 1, hi):
        va, vb = a.get(f), b.get(f)
        if va is not None and vb is not None:
            if handover is not None:
                values.append(va if f < handover else vb)
            else:
                w = (f - lo) / span
                values.append(tuple((1 - w) * x + w * y for x, y in zip(va, vb, strict=True)))
        elif va is not None or vb is not None:
            values.append(va if va is not None else vb)  # type: ignore[arg-type]
        else:
            continue
        frames.append(f)
    return frames, values


def gap_frames(left: Anchor | None, right: Anchor | None, length: int) -> tuple[int, int]:
    """The open interval (lo, hi) of frames a gap covers (lo = -1 / hi = length at the episode's ends)."""
    lo = left.frame if left is not None else -1
    hi = right.frame if right is not None else length
    return lo, hi


def track_gap(
    engine: TrackEngine,
    kind: str,
    source: FrameSource,
    left: Anchor | None,
    right: Anchor | None,
    target: TargetInfo | None = None,
    cancel: threading.Event | None = None,
    progress: Progress | None = None,
) -> GapTrack:
    """Track the frames strictly between two anchors (either may be None: an episode end)."""
    if left is None and right is None:
        raise TrackingError("a gap needs at least one keyframe to track from")
    lo, hi = gap_frames(left, right, source.length)
    out = GapTrack()
    if hi - lo < 2:
        return out
    fwd = run_direction(engine, kind, source, left, hi, +1, target, cancel, progress) if left else Run()
    bwd = Run()
    if right is not None and not fwd.cancelled:
        bwd = run_direction(engine, kind, source, right, lo, -1, target, cancel, progress)
    scale = 0.05 * max(source.width, source.height)  # points agree within 5% of the frame
    out.frames, out.values = _blend(_trusted(fwd, bwd), _trusted(bwd, fwd), lo, hi, kind, scale)
    out.cancelled = fwd.cancelled or bwd.cancelled
    covered = set(out.frames)
    for run, anchor in ((fwd, left), (bwd, right)):
        if run.error:
            out.errors.append(run.error)
        if run.lost_at is not None and run.lost_at not in covered and lo < run.lost_at < hi:
            out.lost.append(run.lost_at)
            out.lost_values.append(run.values[-1] if run.values else anchor.value)  # type: ignore[union-attr]
            out.reasons.append(f"frame {run.lost_at}: {run.reason}")
    return out


def frames_to_track(left: Anchor | None, right: Anchor | None, length: int) -> int:
    """How many tracker steps a gap costs (both directions when both anchors exist)."""
    lo, hi = gap_frames(left, right, length)
    inner = max(hi - lo - 1, 0)
    return inner * (int(left is not None) + int(right is not None))
