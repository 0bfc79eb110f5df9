"""The annotation data model: what a person reviews and what exports carry.

One `EpisodeAnnotation` per (dataset, episode). Times are seconds from the episode
start; image coordinates are normalized to [0, 1] of the original camera frame.
Every item carries its provenance (`source`, `confidence`). Structs validate in
`__post_init__`, which msgspec also runs when decoding, so a bad value is caught
wherever it enters: a model's answer, a wire message, a file.
"""

from __future__ import annotations

import bisect
import itertools
import math
from collections.abc import Iterable, Sequence
from typing import Any, Literal, get_args

import msgspec

from core.errors import AnnotationError

BoxKind = Literal["current", "final", "contact", "gripper"]
ReviewState = Literal["unreviewed", "in_review", "accepted"]
ScenarioType = Literal[
    "specific_object", "negative_task", "situated_correction", "implicit_request", "constraint_based"
]
ResponseType = Literal["confirmation", "clarification", "acknowledgment", "constraint_acknowledgment"]
QAKind = Literal["choice", "open"]

BOX_KINDS: tuple[str, ...] = get_args(BoxKind)
REVIEW_STATES: tuple[str, ...] = get_args(ReviewState)
SCENARIO_TYPES: tuple[str, ...] = get_args(ScenarioType)
RESPONSE_TYPES: tuple[str, ...] = get_args(ResponseType)
QA_KINDS: tuple[str, ...] = get_args(QAKind)

# Boundaries closer than this are the same instant (well under a frame at 1 kHz).
TIME_EPS = 1e-6
# A cover may miss the episode's end by up to this much (float32 timestamps, rounding).
COVER_TOLERANCE = 1e-3

HUMAN_PREFIX = "human:"


def _fail(owner: str, field: str, value: Any, why: str) -> None:
    raise AnnotationError(f"{owner}.{field} = {value!r}: {why}")


def _check_finite(owner: str, field: str, value: float) -> None:
    if not isinstance(value, int | float) or isinstance(value, bool) or not math.isfinite(value):
        _fail(owner, field, value, "must be a finite number")


def _check_time(owner: str, field: str, t: float) -> None:
    _check_finite(owner, field, t)
    if t < 0:
        _fail(owner, field, t, "must be >= 0 (seconds from the episode start)")


def _check_unit(owner: str, field: str, v: float) -> None:
    _check_finite(owner, field, v)
    if not 0.0 <= v <= 1.0:
        _fail(owner, field, v, "must be in [0, 1] (normalized image coordinates)")


def _check_choice(owner: str, field: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        _fail(owner, field, value, f"must be one of {', '.join(allowed)}")


def _check_text(owner: str, field: str, value: str) -> None:
    if not isinstance(value, str) or not value.strip():
        _fail(owner, field, value, "must be a non-empty string")


class Provenance(msgspec.Struct, kw_only=True):
    """Who proposed an item: `source` is 'model@version' or 'human:<user>'."""

    source: str = ""
    confidence: float | None = None

    def _check_provenance(self, owner: str) -> None:
        if self.confidence is not None:
            _check_finite(owner, "confidence", self.confidence)
            if not 0.0 <= self.confidence <= 1.0:
                _fail(owner, "confidence", self.confidence, "must be in [0, 1]")

    @property
    def is_human(self) -> bool:
        return self.source.startswith(HUMAN_PREFIX)


class Segment(Provenance, kw_only=True):
    """A subtask span [start, end) in seconds."""

    name: str
    start: float
    end: float
    # How the arm moves in this span, in the robot's frame ("lift the cup 10 cm"), where an
    # engine or a person said so; "" if nobody did (lerobot's `motion` style).
    motion: str = ""

    def __post_init__(self) -> None:
        _check_text("Segment", "name", self.name)
        _check_time("Segment", "start", self.start)
        _check_time("Segment", "end", self.end)
        if self.end <= self.start:
            _fail("Segment", "end", self.end, f"must be after start ({self.start})")
        self._check_provenance("Segment")

    @property
    def duration(self) -> float:
        return self.end - self.start

    def contains(self, t: float) -> bool:
        return self.start <= t < self.end


class Box(Provenance, kw_only=True):
    """A box keyframe at time t on one camera; between keyframes values interpolate."""

    t: float
    camera: str
    label: str
    kind: BoxKind
    xyxy: tuple[float, float, float, float]
    # A tracker lost the target at t: `xyxy` is its last good box, shown flagged for a person to fix.
    lost: bool = False

    def __post_init__(self) -> None:
        _check_time("Box", "t", self.t)
        _check_text("Box", "camera", self.camera)
        _check_choice("Box", "kind", self.kind, BOX_KINDS)
        if len(self.xyxy) != 4:
            _fail("Box", "xyxy", self.xyxy, "must have 4 values (x1, y1, x2, y2)")
        for i, v in enumerate(self.xyxy):
            _check_unit("Box", f"xyxy[{i}]", v)
        x1, y1, x2, y2 = self.xyxy
        if x2 < x1 or y2 < y1:
            _fail("Box", "xyxy", self.xyxy, "needs x1 <= x2 and y1 <= y2")
        self._check_provenance("Box")

    @property
    def track_key(self) -> tuple[str, str, str]:
        return (self.camera, self.label, self.kind)


class Trajectory(Provenance, kw_only=True):
    """The gripper's path in one camera's image: points (t, x, y), t non-decreasing."""

    camera: str
    points: list[tuple[float, float, float]] = msgspec.field(default_factory=list)
    # Times of the points a person placed (a tracker filled the others); empty: all of a
    # human trajectory's points are a person's, none of a model's.
    anchors: list[float] = msgspec.field(default_factory=list)
    # Times where a tracker lost the gripper (no point there; a person should place one).
    lost: list[float] = msgspec.field(default_factory=list)

    def __post_init__(self) -> None:
        _check_text("Trajectory", "camera", self.camera)
        for name in ("anchors", "lost"):
            for i, t in enumerate(getattr(self, name)):
                _check_time("Trajectory", f"{name}[{i}]", t)
        last = -math.inf
        for i, p in enumerate(self.points):
            if len(p) != 3:
                _fail("Trajectory", f"points[{i}]", p, "must be (t, x, y)")
            t, x, y = p
            _check_time("Trajectory", f"points[{i}].t", t)
            _check_unit("Trajectory", f"points[{i}].x", x)
            _check_unit("Trajectory", f"points[{i}].y", y)
            if t < last:
                _fail("Trajectory", f"points[{i}].t", t, f"must not be before the previous point ({last})")
            last = t
        self._check_provenance("Trajectory")


class Contact(Provenance, kw_only=True):
    """Where the gripper touches the object, at time t on one camera."""

    t: float
    camera: str
    x: float
    y: float

    def __post_init__(self) -> None:
        _check_time("Contact", "t", self.t)
        _check_text("Contact", "camera", self.camera)
        _check_unit("Contact", "x", self.x)
        _check_unit("Contact", "y", self.y)
        self._check_provenance("Contact")


class DialogueTurn(Provenance, kw_only=True):
    """A user prompt and the robot's reply for one skill, anchored at time t."""

    t: float
    skill: str
    user_prompt: str
    robot_utterance: str
    scenario_type: ScenarioType = "specific_object"
    response_type: ResponseType = "confirmation"

    def __post_init__(self) -> None:
        _check_time("DialogueTurn", "t", self.t)
        _check_text("DialogueTurn", "skill", self.skill)
        _check_text("DialogueTurn", "user_prompt", self.user_prompt)
        _check_text("DialogueTurn", "robot_utterance", self.robot_utterance)
        _check_choice("DialogueTurn", "scenario_type", self.scenario_type, SCENARIO_TYPES)
        _check_choice("DialogueTurn", "response_type", self.response_type, RESPONSE_TYPES)
        self._check_provenance("DialogueTurn")


class QA(Provenance, kw_only=True):
    """A question about the episode at time t on one camera; `choices` for kind 'choice'."""

    t: float
    camera: str
    question: str
    answer: str
    kind: QAKind = "open"
    choices: list[str] = msgspec.field(default_factory=list)

    def __post_init__(self) -> None:
        _check_time("QA", "t", self.t)
        _check_text("QA", "camera", self.camera)
        _check_text("QA", "question", self.question)
        _check_text("QA", "answer", self.answer)
        _check_choice("QA", "kind", self.kind, QA_KINDS)
        if self.kind == "choice":
            if len(self.choices) < 2:
                _fail("QA", "choices", self.choices, "a choice question needs at least two choices")
            if self.answer not in self.choices:
                _fail("QA", "answer", self.answer, f"must be one of the choices {self.choices}")
        self._check_provenance("QA")


# The item kinds of an episode: the EpisodeAnnotation fields that hold lists of items. The one
# definition; the protocol, the engines and the app import it.
ITEM_FIELDS: tuple[str, ...] = ("segments", "boxes", "trajectories", "contacts", "dialogue", "qa")
# The item kinds that sit on one camera's image (their items have a `camera`).
CAMERA_FIELDS: tuple[str, ...] = ("boxes", "trajectories", "contacts", "qa")


class EpisodeAnnotation(msgspec.Struct, kw_only=True):
    """All annotations of one episode at one revision (0 = never stored)."""

    dataset: str
    episode: int
    duration: float
    fps: float
    task: str = ""
    # Other phrasings of `task` (lerobot's `task_aug` style: training rotates through them).
    task_aug: list[str] = msgspec.field(default_factory=list)
    revision: int = 0
    segments: list[Segment] = msgspec.field(default_factory=list)
    boxes: list[Box] = msgspec.field(default_factory=list)
    trajectories: list[Trajectory] = msgspec.field(default_factory=list)
    contacts: list[Contact] = msgspec.field(default_factory=list)
    dialogue: list[DialogueTurn] = msgspec.field(default_factory=list)
    qa: list[QA] = msgspec.field(default_factory=list)
    review: ReviewState = "unreviewed"
    uncertainty: float | None = None
    # The model (name@version) whose prediction this annotation started from.
    model: str = ""
    # Where that prediction came from, for the reviewer (e.g. "aligned to episodes 3 and 7").
    origin: str = ""

    def __post_init__(self) -> None:
        _check_text("EpisodeAnnotation", "dataset", self.dataset)
        if not isinstance(self.episode, int) or self.episode < 0:
            _fail("EpisodeAnnotation", "episode", self.episode, "must be an integer >= 0")
        _check_finite("EpisodeAnnotation", "duration", self.duration)
        if self.duration <= 0:
            _fail("EpisodeAnnotation", "duration", self.duration, "must be > 0 seconds")
        _check_finite("EpisodeAnnotation", "fps", self.fps)
        if self.fps <= 0:
            _fail("EpisodeAnnotation", "fps", self.fps, "must be > 0")
        if self.revision < 0:
            _fail("EpisodeAnnotation", "revision", self.revision, "must be >= 0")
        _check_choice("EpisodeAnnotation", "review", self.review, REVIEW_STATES)
        if self.uncertainty is not None:
            _check_finite("EpisodeAnnotation", "uncertainty", self.uncertainty)
            if not 0.0 <= self.uncertainty <= 1.0:
                _fail("EpisodeAnnotation", "uncertainty", self.uncertainty, "must be in [0, 1]")
        for i, text in enumerate(self.task_aug):
            _check_text("EpisodeAnnotation", f"task_aug[{i}]", text)
        self._check_segments_cover()
        limit = self.duration + COVER_TOLERANCE
        for name in ("boxes", "contacts", "dialogue", "qa"):
            for i, item in enumerate(getattr(self, name)):
                if item.t > limit:
                    _fail(
                        "EpisodeAnnotation",
                        f"{name}[{i}].t",
                        item.t,
                        f"is after the episode's end ({self.duration})",
                    )

    def _check_segments_cover(self) -> None:
        if not self.segments:
            return
        first = self.segments[0]
        if first.start > COVER_TOLERANCE:
            _fail(
                "EpisodeAnnotation", "segments[0].start", first.start, "must be 0: segments cover the episode"
            )
        for i in range(1, len(self.segments)):
            prev, cur = self.segments[i - 1], self.segments[i]
            if abs(cur.start - prev.end) > COVER_TOLERANCE:
                why = "overlaps" if cur.start < prev.end else "leaves a gap after"
                _fail(
                    "EpisodeAnnotation",
                    f"segments[{i}].start",
                    cur.start,
                    f"{why} segments[{i - 1}] (end {prev.end}): segments must be ordered and gap-free",
                )
        last = self.segments[-1]
        if abs(last.end - self.duration) > COVER_TOLERANCE:
            _fail(
                "EpisodeAnnotation",
                f"segments[{len(self.segments) - 1}].end",
                last.end,
                f"must equal the episode duration ({self.duration})",
            )

    @property
    def key(self) -> tuple[str, int]:
        return (self.dataset, self.episode)

    @property
    def n_frames(self) -> int:
        return round(self.duration * self.fps)


# ---------------------------------------------------------------- encoding

_json_encoder = msgspec.json.Encoder()
_json_decoder = msgspec.json.Decoder(EpisodeAnnotation)


def annotation_to_json(ann: EpisodeAnnotation) -> bytes:
    return _json_encoder.encode(ann)


def annotation_from_json(data: bytes | str, *, where: str = "annotation") -> EpisodeAnnotation:
    """Decode and validate; errors name `where` and the offending field path."""
    try:
        return _json_decoder.decode(data)
    except (msgspec.ValidationError, msgspec.DecodeError) as exc:
        raise AnnotationError(f"{where}: {exc}") from exc


def convert_annotation(obj: Any, *, where: str = "annotation") -> EpisodeAnnotation:
    """Validate a plain dict (e.g. a patched annotation) into an `EpisodeAnnotation`."""
    try:
        return msgspec.convert(obj, EpisodeAnnotation)
    except msgspec.ValidationError as exc:
        raise AnnotationError(f"{where}: {exc}") from exc


def replace(ann: EpisodeAnnotation, **changes: Any) -> EpisodeAnnotation:
    """A validated copy with `changes` applied (msgspec.structs.replace skips __post_init__)."""
    new = msgspec.structs.replace(ann, **changes)
    new.__post_init__()
    return new


# ---------------------------------------------------------------- time helpers


def frame_time(index: int, fps: float) -> float:
    """Time of frame `index` on the dataset's grid."""
    return index / fps


def frame_at(t: float, fps: float, n_frames: int | None = None) -> int:
    """The frame shown at time t: the last frame whose time is <= t (within float noise)."""
    i = math.floor(t * fps + 1e-6)
    if n_frames is not None:
        i = min(max(i, 0), n_frames - 1)
    return max(i, 0)


def snap_time(t: float, fps: float) -> float:
    """The nearest time on the frame grid."""
    return round(t * fps) / fps


# ---------------------------------------------------------------- segments


def segment_index_at(segments: Sequence[Segment], t: float) -> int | None:
    """Index of the segment with start <= t < end; t at the last segment's end maps to it.

    Segments must be ordered (as `EpisodeAnnotation` guarantees).
    """
    if not segments:
        return None
    starts = [s.start for s in segments]
    i = bisect.bisect_right(starts, t + TIME_EPS) - 1
    if i < 0:
        return None
    if t < segments[i].end - TIME_EPS:
        return i
    if i == len(segments) - 1 and t <= segments[i].end + COVER_TOLERANCE:
        return i
    return None


def segment_at(segments: Sequence[Segment], t: float) -> Segment | None:
    i = segment_index_at(segments, t)
    return None if i is None else segments[i]


def repair_cover(segments: Iterable[Segment], duration: float, fps: float | None = None) -> list[Segment]:
    """Turn any set of spans into an ordered, gap-free cover of [0, duration].

    Overlaps and gaps are split at their midpoint, the first span is stretched to 0
    and the last to `duration`; with `fps`, inner boundaries snap to the frame grid.
    Spans that end up empty are dropped. Used to repair model output.
    """
    spans = sorted(
        ((max(0.0, s.start), min(duration, s.end), s) for s in segments),
        key=lambda x: (x[0], x[1]),
    )
    spans = [x for x in spans if x[1] - x[0] > TIME_EPS]
    if not spans:
        return []
    bounds = [0.0]
    for (_, end_prev, _), (start_next, _, _) in itertools.pairwise(spans):
        b = (end_prev + start_next) / 2.0
        if fps:
            b = snap_time(b, fps)
        bounds.append(min(max(b, bounds[-1]), duration))
    bounds.append(duration)
    out: list[Segment] = []
    for (_, _, seg), start, end in zip(spans, bounds[:-1], bounds[1:], strict=True):
        if end - start <= TIME_EPS:
            continue
        if out and abs(out[-1].end - start) > TIME_EPS:
            start = out[-1].end
        out.append(msgspec.structs.replace(seg, start=start, end=end))
    if out:
        out[0] = msgspec.structs.replace(out[0], start=0.0)
        out[-1] = msgspec.structs.replace(out[-1], end=duration)
    return out


# ---------------------------------------------------------------- boxes and tracks


def box_tracks(boxes: Iterable[Box]) -> dict[tuple[str, str, str], list[Box]]:
    """Keyframes grouped by (camera, label, kind), each sorted by time."""
    tracks: dict[tuple[str, str, str], list[Box]] = {}
    for b in boxes:
        tracks.setdefault(b.track_key, []).append(b)
    for frames in tracks.values():
        frames.sort(key=lambda b: b.t)
    return tracks


def interpolate_box(
    keyframes: Sequence[Box], t: float
) -> tuple[tuple[float, float, float, float], bool] | None:
    """The box of a track at time t and whether t is on a keyframe.

    Linear between the surrounding keyframes; held at the first and last one.
    `keyframes` must be one track sorted by time (see `box_tracks`).
    """
    if not keyframes:
        return None
    times = [k.t for k in keyframes]
    i = bisect.bisect_left(times, t - TIME_EPS)
    if i < len(keyframes) and abs(keyframes[i].t - t) <= TIME_EPS:
        return keyframes[i].xyxy, True
    if i == 0:
        return keyframes[0].xyxy, False
    if i == len(keyframes):
        return keyframes[-1].xyxy, False
    a, b = keyframes[i - 1], keyframes[i]
    w = (t - a.t) / (b.t - a.t)
    xyxy = tuple(pa + w * (pb - pa) for pa, pb in zip(a.xyxy, b.xyxy, strict=True))
    return xyxy, False  # type: ignore[return-value]


def interpolate_point(points: Sequence[tuple[float, float, float]], t: float) -> tuple[float, float] | None:
    """A trajectory's (x, y) at time t, linear between points, held at the ends."""
    if not points:
        return None
    times = [p[0] for p in points]
    i = bisect.bisect_left(times, t)
    if i == 0:
        return points[0][1], points[0][2]
    if i == len(points):
        return points[-1][1], points[-1][2]
    (ta, xa, ya), (tb, xb, yb) = points[i - 1], points[i]
    w = 0.0 if tb == ta else (t - ta) / (tb - ta)
    return xa + w * (xb - xa), ya + w * (yb - ya)
