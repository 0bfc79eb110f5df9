"""The app's side of the backend: the client loop on a worker QThread, its notes as Qt signals.

`BackendLink` lives on the GUI thread and only journals and posts commands; its
worker runs `client.loop.LinkLoop` (a zmq DEALER for requests matched to replies
by id, a SUB on the backend's events: heartbeats tell alive, busy or dead) on its
own QThread. Corrections go through the local `Journal` first: `submit` returns
only once the edit is on disk, the loop sends whatever is unacknowledged whenever
the backend is reachable (again), and marks each one acknowledged when the backend
says it is durable. A dead backend, a garbled reply or a conflict becomes a
signal; nothing here raises into the GUI's event loop. The protocol itself
(handshake, resend, liveness) is `client/`, without Qt.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Literal

from PySide6.QtCore import QObject, QThread, Signal

from app.link.journal import Journal, JournalError
from client.keys import ClientKeys
from client.loop import LinkLoop, Mailbox
from client.messages import Command, LinkState, Note, Pump, Read, Stop
from client.session import LinkTiming
from core.annotations import EpisodeAnnotation
from core.protocol import (
    CancelTrack,
    Conflict,
    GetAnnotation,
    GetModel,
    GetQueue,
    ListEpisodes,
    ModelInfo,
    Predict,
    Track,
    TrackAnchor,
    Welcome,
    new_id,
)

__all__ = ["BackendLink", "LinkState", "LinkTiming"]


class _Worker(QObject):
    """Runs the loop on the link's QThread; every note crosses to the GUI thread as one signal."""

    note = Signal(object)  # client.messages.Note

    def __init__(self, loop: LinkLoop) -> None:
        super().__init__()
        self.loop = loop

    def run(self) -> None:
        self.loop.run(self.note.emit)


class BackendLink(QObject):
    """All backend I/O on its own QThread (zmq DEALER + SUB); the GUI only calls methods and listens to signals.

    Every method is non-blocking (except `submit`'s fsync) and safe to call from the GUI thread.
    """

    state_changed = Signal(str)  # "connecting" | "alive" | "busy" | "dead"
    model_changed = Signal(object)  # core.protocol.ModelInfo
    pending_changed = Signal(int)  # corrections journaled but not yet acknowledged
    episodes_loaded = Signal(str, object)  # dataset id, {episode: (revision, review, uncertainty)}
    annotation_loaded = Signal(str, int, object, object)  # dataset, episode, head | None, suggestion | None
    correction_acked = Signal(str, int)  # correction uuid, the revision it became
    conflict = Signal(object)  # core.protocol.Conflict (current = theirs, yours = ours)
    rejected = Signal(str, str)  # uuid, reason (never sent again; its journal row stays)
    predict_progress = Signal(str, int, int, str)  # dataset, done, total, message
    prediction_ready = Signal(str, int)  # dataset, episode: call request_annotation to fetch it
    episode_changed = Signal(str, int, int, str)  # dataset, episode, revision, author (someone else's edit)
    queue_loaded = Signal(list)  # list[core.protocol.QueueItem], best first
    error = Signal(str)  # one actionable sentence for the status bar
    connected = Signal(object)  # core.protocol.Welcome, on every (re)connection
    track_progress = Signal(str, int, int)  # track request id, frames done, frames to do
    track_finished = Signal(object)  # core.protocol.TrackResult (status "error" if it was refused)

    def __init__(
        self,
        endpoint: str,
        journal_dir: Path,
        user: str,
        curve_dir: Path | None = None,
        parent: QObject | None = None,
        *,
        timing: LinkTiming | None = None,
    ) -> None:
        super().__init__(parent)
        if "://" not in endpoint:
            raise ValueError(f"endpoint = {endpoint!r}: must look like tcp://127.0.0.1:5555")
        if not user:
            raise ValueError("user must be non-empty: corrections are signed with it")
        self.endpoint = endpoint
        self.user = user
        keys = ClientKeys.from_dir(curve_dir, user) if curve_dir is not None else None
        self.journal = Journal(journal_dir)
        self.journal.requeue_conflicts()
        self.state: str = "connecting"
        self.model: ModelInfo | None = None
        self.welcome: Welcome | None = None
        self._mailbox = Mailbox()
        self._closed = False
        self._started = False
        self._thread = QThread()
        self._thread.setObjectName("backend-link")
        loop = LinkLoop(endpoint, self.journal, user, keys, timing or LinkTiming(), self._mailbox)
        self._worker = _Worker(loop)
        self._worker.moveToThread(self._thread)
        self._thread.started.connect(self._worker.run)
        self._worker.note.connect(self._on_note)

    # ------------------------------------------------------------ lifecycle

    def start(self) -> None:
        """Start the worker (once; later calls do nothing). Connect to the signals first."""
        if self._started:
            return
        self._started = True
        self._thread.start()
        self.pending_changed.emit(self.pending)
        if self.journal.recovered:
            self.error.emit(self.journal.recovered)

    def close(self) -> None:
        """Stop the worker thread; unsent corrections stay in the journal for the next start."""
        if self._closed:
            return
        if self._thread.isRunning():
            self._mailbox.post(Stop())
            deadline = time.monotonic() + 10
            while self._thread.isRunning() and time.monotonic() < deadline:
                self._thread.quit()
                self._thread.wait(50)
        self._closed = True
        self._mailbox.close()
        # The journal stays open: an edit submitted while the window closes is still journaled
        # (and sent by the next link); the connection closes with this object.

    def _post(self, cmd: Command) -> None:
        if not self._closed:
            self._mailbox.post(cmd)

    def _on_note(self, note: Note) -> None:
        """Every note of the worker, on the GUI thread: keep the link's own view, then the signal."""
        if note.kind == "state_changed":
            (self.state,) = note.args
        elif note.kind == "connected":
            (self.welcome,) = note.args
            self.model = self.welcome.model
        getattr(self, note.kind).emit(*note.args)

    # ------------------------------------------------------------ API

    @property
    def pending(self) -> int:
        return self.journal.count_unacked()

    def submit(self, annotation: EpisodeAnnotation, base_revision: int) -> str:
        """Journal the edit durably (fsync) and return its correction uuid; it is sent now or after a reconnect."""
        try:
            entry = self.journal.append(annotation, base_revision, self.user)
        except JournalError as exc:
            self.error.emit(f"The edit could not be saved locally: {exc}")
            raise
        self._post(Pump())
        self.pending_changed.emit(self.pending)
        return entry.uuid

    def resolve_conflict(self, conflict: Conflict, keep: Literal["theirs", "mine"]) -> str | None:
        """The person's choice: keep theirs (drop ours, and our later edits of the episode chained on it)
        or mine (resubmit ours on their revision; later edits follow it)."""
        if keep not in ("theirs", "mine"):
            raise ValueError(f"keep = {keep!r}: must be 'theirs' or 'mine'")
        entry = self.journal.get(conflict.uuid)
        new_uuid = None
        if keep == "theirs":
            self.journal.drop(conflict.uuid)
        else:
            ours = (entry.annotation if entry is not None else None) or conflict.yours
            if ours is None:
                self.error.emit(
                    "Your version of the conflicting edit is not available any more; kept theirs."
                )
                self.journal.drop(conflict.uuid)
            elif entry is None:
                new_uuid = self.journal.append(ours, conflict.current.revision, self.user).uuid
            else:
                new_uuid = self.journal.supersede(
                    conflict.uuid, ours, conflict.current.revision, self.user
                ).uuid
        self._post(Pump())
        self.pending_changed.emit(self.pending)
        return new_uuid

    def request_annotation(self, dataset: str, episode: int) -> None:
        self._read(
            GetAnnotation(id=new_id(), dataset=dataset, episode=episode),
            f"loading {dataset} episode {episode}",
        )

    def predict(self, dataset: str, episodes: list[int], force: bool = False) -> None:
        # kinds left empty: the worker fills in everything the backend's model predicts.
        msg = Predict(id=new_id(), dataset=dataset, episodes=list(episodes), kinds=[], force=force)
        self._read(msg, f"predicting {len(episodes)} episode(s) of {dataset}")

    def request_queue(self, dataset: str | None = None, limit: int = 50) -> None:
        self._read(GetQueue(id=new_id(), dataset=dataset, limit=limit), "loading the review queue")

    def request_episodes(self, dataset: str) -> None:
        self._read(ListEpisodes(id=new_id(), dataset=dataset), f"listing the episodes of {dataset}")

    def request_model(self) -> None:
        self._read(GetModel(id=new_id()), "reading the model's details")

    def track(
        self,
        dataset: str,
        episode: int,
        camera: str,
        target: str,
        anchors: list[tuple[float, tuple[float, ...]]],
        gaps: list[int] | None = None,
        label: str = "",
        kind: str = "current",
    ) -> str:
        """Ask the backend to track; returns the request id (track_progress / track_finished carry it)."""
        msg = Track(
            id=new_id(),
            dataset=dataset,
            episode=episode,
            camera=camera,
            target=target,  # type: ignore[arg-type]
            anchors=[TrackAnchor(t=t, value=[float(v) for v in value]) for t, value in anchors],
            gaps=gaps,
            label=label,
            kind=kind,
        )
        self._read(msg, f"tracking on {camera} in episode {episode}")
        return msg.id

    def cancel_track(self, request_id: str) -> None:
        self._read(CancelTrack(id=new_id(), target=request_id), "cancelling a track")

    def _read(self, msg: Any, what: str) -> None:
        self._post(Read(msg, what))
