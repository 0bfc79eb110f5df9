"""What passes between the app's link and the client loop: commands in, notes out.

A `Note` names the BackendLink signal it becomes and carries that signal's
arguments, so the Qt adapter dispatches every note in one place and the loop
itself stays free of Qt.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, get_args

import msgspec

LinkState = Literal["connecting", "alive", "busy", "dead"]

NoteKind = Literal[
    "state_changed",  # state: LinkState
    "model_changed",  # core.protocol.ModelInfo
    "pending_changed",  # corrections journaled but not yet acknowledged
    "episodes_loaded",  # dataset id, {episode: (revision, review, uncertainty)}
    "annotation_loaded",  # dataset, episode, head | None, suggestion | None
    "correction_acked",  # correction uuid, the revision it became
    "conflict",  # core.protocol.Conflict
    "rejected",  # uuid, reason
    "predict_progress",  # dataset, done, total, message
    "prediction_ready",  # dataset, episode
    "episode_changed",  # dataset, episode, revision, author
    "queue_loaded",  # list[core.protocol.QueueItem]
    "error",  # one actionable sentence
    "connected",  # core.protocol.Welcome
    "track_progress",  # track request id, frames done, frames to do
    "track_finished",  # core.protocol.TrackResult
]
NOTE_KINDS: tuple[str, ...] = get_args(NoteKind)


@dataclass(frozen=True)
class Note:
    """Something the person (or the GUI) should hear about: `kind` and its arguments."""

    kind: NoteKind
    args: tuple = ()


Notify = Callable[[Note], None]


@dataclass(frozen=True)
class Pump:
    """Send whatever journaled corrections can go now."""


@dataclass(frozen=True)
class Read:
    """Send a read (or a predict, a track) and report its replies; `what` says it in a few words."""

    msg: msgspec.Struct
    what: str


@dataclass(frozen=True)
class Stop:
    """End the loop; unsent corrections stay in the journal."""


Command = Pump | Read | Stop


@dataclass
class Request:
    """A request on the current connection, until its last reply."""

    msg: msgspec.Struct
    what: str  # a few words for messages: "loading episode 3 of demo"
    uuid: str = ""  # submits: the correction
    sent: float = 0.0  # 0: not (yet or again) sent on the current connection
    total: int = 0  # predicts: episodes accepted
