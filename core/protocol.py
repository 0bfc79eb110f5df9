"""The wire protocol between the app (and other clients) and the backend.

msgspec Structs in tagged unions, msgpack on the wire, never pickle. Every request
carries a client-made `id` and every reply echoes it. A correction carries a UUID
and the revision it was based on: a resend is idempotent and a conflicting edit
is reported, never merged silently. Events travel on the PUB socket, one
msgpack `Event` per message, with the event kind as the ZeroMQ topic frame.

`decode_request` / `decode_reply` turn any bad input into a `ProtocolError`
carrying one of the `ERROR_CODES`, so a server can answer it and go on.
"""

from __future__ import annotations

import time
import uuid as uuidlib
from typing import Any, Literal

import msgspec

from core.annotations import ITEM_FIELDS, Box, EpisodeAnnotation
from core.errors import ProtocolError

PROTOCOL_VERSION = 1
MAX_MESSAGE_BYTES = 8 * 2**20
ANNOTATION_KINDS = ITEM_FIELDS
PATCHABLE_FIELDS = (*ITEM_FIELDS, "review", "uncertainty", "task")

ErrorCode = Literal[
    "malformed",  # not msgpack, or not a map
    "unknown_type",  # a `type` this server does not know
    "invalid",  # fields missing or of the wrong type/value
    "too_large",  # over MAX_MESSAGE_BYTES
    "version",  # protocol version mismatch
    "not_found",  # unknown dataset, episode or revision
    "forbidden",  # e.g. a dataset path escaping the configured roots
    "engine",  # the engine failed
    "busy",  # too much queued work
    "internal",  # a bug: the server logged it
]
ERROR_CODES: tuple[str, ...] = ErrorCode.__args__  # type: ignore[attr-defined]


def new_id() -> str:
    return uuidlib.uuid4().hex


class _Msg(msgspec.Struct, tag_field="type", kw_only=True, forbid_unknown_fields=False):
    # Client-made request id; replies echo it. Events use "".
    id: str = ""


# ---------------------------------------------------------------- shared structs


class ModelInfo(msgspec.Struct, kw_only=True):
    engine: str
    name: str
    version: str
    device: str = "cpu"
    kinds: list[str] = msgspec.field(default_factory=list)
    round: int | None = None
    metrics: dict[str, float] = msgspec.field(default_factory=dict)

    @property
    def tag(self) -> str:
        """'name@version': what provenance `source` fields and the store record."""
        return f"{self.name}@{self.version}"


class DatasetInfo(msgspec.Struct, kw_only=True):
    id: str
    episodes: int
    fps: float
    cameras: list[str]


class Correction(msgspec.Struct, kw_only=True):
    """A person's edit of one episode, based on a known revision.

    Either `annotation` (the whole new annotation) or `patch` (top-level fields
    of the annotation to replace, e.g. {"segments": [...]}) is set.
    """

    uuid: str
    dataset: str
    episode: int
    base_revision: int
    user: str
    annotation: EpisodeAnnotation | None = None
    patch: dict[str, Any] | None = None
    created: float = msgspec.field(default_factory=time.time)

    def __post_init__(self) -> None:
        if (self.annotation is None) == (self.patch is None):
            raise ValueError("Correction needs exactly one of 'annotation' or 'patch'")
        if self.patch is not None:
            unknown = sorted(set(self.patch) - set(PATCHABLE_FIELDS))
            if unknown:
                raise ValueError(f"Correction.patch has fields that cannot be patched: {unknown}")
        if not self.uuid or len(self.uuid) > 64:
            raise ValueError(f"Correction.uuid = {self.uuid!r}: must be 1..64 characters")
        if not self.user:
            raise ValueError("Correction.user must be non-empty")
        if self.base_revision < 0:
            raise ValueError(f"Correction.base_revision = {self.base_revision}: must be >= 0")


class RevisionInfo(msgspec.Struct, kw_only=True):
    revision: int
    author: str
    kind: Literal["model", "human"]
    created: float
    base_revision: int
    correction: str | None = None
    review: str = "unreviewed"


class QueueItem(msgspec.Struct, kw_only=True):
    dataset: str
    episode: int
    uncertainty: float
    score: float
    reason: str = ""


# ---------------------------------------------------------------- requests


class Hello(_Msg, tag="hello"):
    client: str
    protocol: int
    user: str = ""


class Ping(_Msg, tag="ping"):
    pass


class Predict(_Msg, tag="predict"):
    dataset: str
    episodes: list[int]
    kinds: list[str] = msgspec.field(default_factory=lambda: ["segments"])
    options: dict[str, Any] = msgspec.field(default_factory=dict)
    # Re-predict even if the current model already predicted the episode.
    force: bool = False


class GetAnnotation(_Msg, tag="get_annotation"):
    dataset: str
    episode: int
    revision: int | None = None


class GetHistory(_Msg, tag="get_history"):
    dataset: str
    episode: int


class Submit(_Msg, tag="submit"):
    correction: Correction


class GetQueue(_Msg, tag="get_queue"):
    dataset: str | None = None
    limit: int = 20


class GetModel(_Msg, tag="get_model"):
    pass


class ReloadModel(_Msg, tag="reload_model"):
    path: str
    version: str = ""
    # Re-predict unreviewed episodes with the new model and re-rank the queue.
    repredict: bool = True


class ListEpisodes(_Msg, tag="list_episodes"):
    dataset: str


class TrackAnchor(msgspec.Struct, kw_only=True):
    """A keyframe a person placed: seconds, and a box (x1, y1, x2, y2) or point (x, y), normalized."""

    t: float
    value: list[float]


class Track(_Msg, tag="track"):
    """Track one box track or one gripper trajectory of one camera from its person-placed keyframes.

    Gap i lies between anchors[i-1] and anchors[i] (gap 0 before the first, gap len(anchors)
    after the last); `gaps` picks which to track (None: all). Replies: Accepted (frames to
    track), Progress, then one TrackResult. CancelTrack stops it; what was tracked comes back.
    """

    dataset: str
    episode: int
    camera: str
    target: Literal["box", "point"]
    anchors: list[TrackAnchor]
    gaps: list[int] | None = None
    label: str = ""  # the box's label (also SAM3's text prompt)
    kind: str = "current"  # the box's kind
    engine: str = ""  # "" = the server's tracker (cpu unless it was started with another)
    tolerance_px: float = 2.0  # keyframes where interpolation would be off by more


class CancelTrack(_Msg, tag="cancel_track"):
    target: str  # the id of the Track request to stop


Request = (
    Hello
    | Ping
    | Predict
    | GetAnnotation
    | GetHistory
    | Submit
    | GetQueue
    | GetModel
    | ReloadModel
    | ListEpisodes
    | Track
    | CancelTrack
)


# ---------------------------------------------------------------- replies


class Welcome(_Msg, tag="welcome"):
    protocol: int
    server: str
    model: ModelInfo
    datasets: list[DatasetInfo]
    heartbeat_s: float
    events: str = ""  # the PUB endpoint


class Pong(_Msg, tag="pong"):
    time: float
    busy: int  # engine jobs queued or running


class Accepted(_Msg, tag="accepted"):
    """A predict request was queued; Progress and PredictResult follow."""

    total: int
    skipped: list[int] = msgspec.field(default_factory=list)


class Progress(_Msg, tag="progress"):
    done: int
    total: int
    episode: int | None = None
    message: str = ""


class PredictResult(_Msg, tag="predict_result"):
    dataset: str
    episode: int
    status: Literal["ok", "unparseable", "error"]
    model: str
    annotation: EpisodeAnnotation | None = None
    revision: int | None = None
    raw: str = ""
    error: str = ""
    notes: dict[str, Any] = msgspec.field(default_factory=dict)


class PredictDone(_Msg, tag="predict_done"):
    ok: int
    failed: int
    skipped: int = 0


class AnnotationReply(_Msg, tag="annotation"):
    dataset: str
    episode: int
    annotation: EpisodeAnnotation | None
    # A model prediction made after a person edited the episode: offered for review, not applied.
    suggestion: EpisodeAnnotation | None = None


class HistoryReply(_Msg, tag="history"):
    dataset: str
    episode: int
    revisions: list[RevisionInfo]


class Ack(_Msg, tag="ack"):
    """The correction is durable on disk as `revision` (or was already: duplicate)."""

    uuid: str
    revision: int
    duplicate: bool = False


class Conflict(_Msg, tag="conflict"):
    """The correction was based on `base_revision` but the episode is at `current.revision`."""

    uuid: str
    base_revision: int
    current: EpisodeAnnotation
    yours: EpisodeAnnotation | None


class QueueReply(_Msg, tag="queue"):
    items: list[QueueItem]


class ModelReply(_Msg, tag="model"):
    model: ModelInfo


class EpisodesReply(_Msg, tag="episodes"):
    dataset: str
    # (episode, revision or 0, review state, uncertainty or -1)
    episodes: list[tuple[int, int, str, float]]


class TrackResult(_Msg, tag="track_result"):
    """A finished (or stopped) track: keyframes that replace the tracker's items in `spans`.

    status: ok; partial (the target was lost or a frame could not be read: everything up to
    there is here, `lost` says where); cancelled (what was tracked before the cancel); error
    (nothing tracked, `error` says why).
    """

    dataset: str
    episode: int
    camera: str
    target: Literal["box", "point"]
    status: Literal["ok", "partial", "cancelled", "error"]
    engine: str = ""
    spans: list[tuple[float, float]] = msgspec.field(default_factory=list)
    boxes: list[Box] = msgspec.field(default_factory=list)
    points: list[tuple[float, float, float]] = msgspec.field(default_factory=list)
    lost: list[float] = msgspec.field(default_factory=list)
    frames: int = 0
    seconds: float = 0.0
    error: str = ""
    notes: list[str] = msgspec.field(default_factory=list)


class Cancelled(_Msg, tag="cancelled"):
    """Answer to CancelTrack: whether that track was still running (its TrackResult follows)."""

    target: str
    found: bool


class Error(_Msg, tag="error"):
    code: ErrorCode
    message: str


Reply = (
    Welcome
    | Pong
    | Accepted
    | Progress
    | PredictResult
    | PredictDone
    | AnnotationReply
    | HistoryReply
    | Ack
    | Conflict
    | QueueReply
    | ModelReply
    | EpisodesReply
    | TrackResult
    | Cancelled
    | Error
)


# ---------------------------------------------------------------- events


EventKind = Literal["prediction_ready", "episode_changed", "model_reloaded", "heartbeat"]


class Event(msgspec.Struct, kw_only=True):
    kind: EventKind
    time: float
    dataset: str = ""
    episode: int = -1
    revision: int = 0
    author: str = ""
    model: str = ""
    busy: int = 0


# ---------------------------------------------------------------- codec

_encoder = msgspec.msgpack.Encoder()
_request_decoder = msgspec.msgpack.Decoder(Request)
_reply_decoder = msgspec.msgpack.Decoder(Reply)
_event_decoder = msgspec.msgpack.Decoder(Event)
_REQUEST_TAGS = {cls.__struct_config__.tag for cls in Request.__args__}  # type: ignore[attr-defined]
_REPLY_TAGS = {cls.__struct_config__.tag for cls in Reply.__args__}  # type: ignore[attr-defined]


class WireError(ProtocolError):
    """A message that cannot be decoded; `code` is one of ERROR_CODES, `id` echoes the request if known."""

    def __init__(self, code: str, message: str, msg_id: str = "") -> None:
        super().__init__(message)
        self.code = code
        self.id = msg_id


def encode(msg: msgspec.Struct) -> bytes:
    return _encoder.encode(msg)


def _diagnose(data: bytes, exc: Exception, tags: set[str], what: str) -> WireError:
    """Say precisely why a message failed: not msgpack, unknown type, or bad fields."""
    try:
        raw = msgspec.msgpack.decode(data)
    except (msgspec.DecodeError, ValueError):  # ValueError: e.g. a str that is not UTF-8
        return WireError("malformed", f"{what} is not valid msgpack ({exc})")
    if not isinstance(raw, dict):
        return WireError("malformed", f"{what} must be a msgpack map, got {type(raw).__name__}")
    msg_id = raw.get("id") if isinstance(raw.get("id"), str) else ""
    kind = raw.get("type")
    if kind not in tags:
        return WireError(
            "unknown_type", f"{what} has unknown type {kind!r}; known: {', '.join(sorted(tags))}", msg_id
        )
    return WireError("invalid", f"{what} '{kind}' is invalid: {exc}", msg_id)


def _check_size(data: bytes, limit: int, what: str) -> None:
    if len(data) > limit:
        raise WireError("too_large", f"{what} of {len(data)} bytes is over the {limit}-byte limit")


def decode_request(data: bytes, limit: int = MAX_MESSAGE_BYTES) -> Request:
    _check_size(data, limit, "request")
    try:
        return _request_decoder.decode(data)
    except (msgspec.DecodeError, msgspec.ValidationError, ValueError) as exc:
        raise _diagnose(data, exc, _REQUEST_TAGS, "request") from exc


def decode_reply(data: bytes, limit: int = 4 * MAX_MESSAGE_BYTES) -> Reply:
    _check_size(data, limit, "reply")
    try:
        return _reply_decoder.decode(data)
    except (msgspec.DecodeError, msgspec.ValidationError, ValueError) as exc:
        raise _diagnose(data, exc, _REPLY_TAGS, "reply") from exc


def decode_event(data: bytes) -> Event:
    try:
        return _event_decoder.decode(data)
    except (msgspec.DecodeError, msgspec.ValidationError, ValueError) as exc:
        raise WireError("malformed", f"event is invalid: {exc}") from exc
