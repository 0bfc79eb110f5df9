"""A review session: the open dataset's document wired to the backend link, with no widgets.

What happens when the backend speaks lives here, apart from how the window shows it:
an annotation arrives (the document loads it; none stored yet: ask the engine for a
first proposal), a correction is acknowledged or refused, someone else changes the
open episode (reload it unless the person has edits of their own), a prediction is
ready (reload), a conflict arrives (the window asks the person, then `resolve_conflict`),
the backend comes back (ask again for what is missing). The window connects views to
this object's signals; a test can drive it with a real link and no window at all.
With `link=None` the session is local: edits live in the document's undo stack only.
"""

from __future__ import annotations

from typing import Any

from PySide6.QtCore import QObject, QTimer, Signal

from app.document import EpisodeDocument
from core.dataset import Dataset
from core.errors import RoboAnnotateError

# Episode-list refreshes after bursts of backend events (predictions, others' edits) are one request.
EPISODES_DELAY_MS = 400
# Backend states from which "alive" means: ask again for what did not arrive.
_RECONNECTED_FROM = ("connecting", "dead")


class ReviewSession(QObject):
    """One dataset under review: its document, the link, and what each backend event does."""

    # "local", "connecting", "alive", "busy" or "dead", after the session reacted to it.
    state_changed = Signal(str)
    model_changed = Signal(object)  # core.protocol.ModelInfo
    # Episode -> (revision, review, uncertainty or None): what the episode browser shows.
    status_changed = Signal(object)
    episode_opened = Signal(int)
    # A prediction's progress (done, total) and the engine's word on it ("" if none).
    predict_progress = Signal(int, int, str)
    # Someone changed an episode under the person's edit: ask them, then call resolve_conflict.
    conflict_arrived = Signal(object)  # core.protocol.Conflict
    # Something the person should read.
    message = Signal(str)
    # The count of unsaved edits may have changed (see `unsent_status`).
    unsent_changed = Signal()

    def __init__(
        self, dataset: Dataset, dataset_id: str, link: Any = None, user: str | None = None, parent=None
    ) -> None:
        super().__init__(parent)
        self.dataset, self.dataset_id, self.link = dataset, dataset_id, link
        # A link the caller already started may be past "connecting": start from what it knows.
        self.backend_state = "local" if link is None else str(getattr(link, "state", "connecting"))
        self.doc = EpisodeDocument(
            dataset_id, dataset.fps, link, user=user or getattr(link, "user", None), parent=self
        )
        self.predict_requested: set[int] = set()
        self._episodes_timer = QTimer(self)
        self._episodes_timer.setSingleShot(True)
        self._episodes_timer.setInterval(EPISODES_DELAY_MS)
        self._episodes_timer.timeout.connect(self.request_episodes)
        self.doc.unsent_changed.connect(self.unsent_changed)
        self.doc.undo_stack.indexChanged.connect(self.unsent_changed)
        self.doc.changed.connect(self._on_doc_changed)
        self.doc.base_revision_changed.connect(self._on_doc_changed)
        if link is not None:
            self._connect(link)

    @property
    def model(self) -> Any:
        """The backend's model info, if the link knows it yet."""
        return None if self.link is None else getattr(self.link, "model", None)

    def _connect(self, link: Any) -> None:
        link.state_changed.connect(self.set_state)
        link.model_changed.connect(self.model_changed)
        link.pending_changed.connect(self.unsent_changed)
        link.episodes_loaded.connect(self._on_episodes)
        link.annotation_loaded.connect(self._on_annotation)
        link.correction_acked.connect(self._on_acked)
        link.conflict.connect(self.conflict_arrived)
        link.rejected.connect(self._on_rejected)
        link.predict_progress.connect(self._on_progress)
        link.prediction_ready.connect(self._on_prediction_ready)
        link.episode_changed.connect(self._on_episode_changed)
        link.queue_loaded.connect(self._on_queue)
        link.error.connect(self.message)

    # ------------------------------------------------------------ what the person asks

    def open_episode(self, episode: int) -> bool:
        """Show an episode: flush the open one's edits, load this one's annotation from the backend."""
        try:
            info = self.dataset.episode(episode)
        except RoboAnnotateError as exc:
            self.message.emit(str(exc))
            return False
        self.doc.open_episode(episode, info.duration, info.task)
        self.episode_opened.emit(episode)
        if self.link is not None:
            self.link.request_annotation(self.dataset_id, episode)
        self.unsent_changed.emit()
        return True

    def request_episodes(self) -> None:
        if self.link is not None:
            self.link.request_episodes(self.dataset_id)

    def request_queue(self) -> bool:
        """Ask the backend for its review queue (the answer opens the next episode); False if it
        cannot answer now, and the caller picks the next episode itself."""
        if self.link is None or self.backend_state not in ("alive", "busy"):
            return False
        self.link.request_queue(self.dataset_id, 20)
        return True

    def predict(self, episodes: list[int | None], force: bool = False) -> bool:
        eps = [e for e in episodes if e is not None]
        if self.link is None:
            self.message.emit(
                "predictions need a backend: start with robo-annotate open DATASET (it starts one)"
            )
            return False
        if not eps:
            self.message.emit("select episodes in the browser first")
            return False
        self.predict_requested.update(eps)
        self.link.predict(self.dataset_id, eps, force)
        self.predict_progress.emit(0, len(eps), "")
        return True

    def resolve_conflict(self, conflict: Any, keep: str) -> None:
        """The person chose in a conflict: 'mine' resubmits ours on top, 'theirs' loads theirs."""
        new_uuid = self.link.resolve_conflict(conflict, keep) if self.link is not None else None
        self.doc.resolve_conflict(conflict, keep, new_uuid)
        self.unsent_changed.emit()

    def unsent_status(self) -> tuple[str, bool]:
        """The status bar's words on unsaved edits, and whether there are any."""
        if self.link is None:
            n = self.doc.undo_stack.index()
            return (f"local only: {n} edit{'s' * (n != 1)} not saved" if n else "local only"), n > 0
        n = int(getattr(self.link, "pending", 0)) + int(self.doc.needs_submit)
        return (f"{n} unsent correction{'s' * (n != 1)}" if n else "all corrections saved"), n > 0

    # ------------------------------------------------------------ what the backend says

    def set_state(self, state: str) -> None:
        was = self.backend_state
        self.backend_state = state
        if self.link is not None and state == "alive" and was in _RECONNECTED_FROM:
            self.request_episodes()
            if self.doc.episode is not None and not self.doc.ready:
                self.link.request_annotation(self.dataset_id, self.doc.episode)
        self.state_changed.emit(state)
        if state == "dead":
            self.message.emit(
                "the backend is not reachable: edits are kept in the journal and sent when it is back"
            )

    def _on_episodes(self, dataset: str, status: dict) -> None:
        if dataset != self.dataset_id:
            return
        clean = {
            int(ep): (int(rev), str(review), None if unc is None or unc < 0 else float(unc))
            for ep, (rev, review, unc) in status.items()
        }
        self.status_changed.emit(clean)

    def _on_annotation(self, dataset: str, episode: int, head: Any, suggestion: Any) -> None:
        if dataset != self.dataset_id:
            return
        if head is not None:
            self.status_changed.emit({episode: (head.revision, head.review, head.uncertainty)})
        if episode != self.doc.episode:
            return
        self.doc.load(head, suggestion)
        if head is None and episode not in self.predict_requested and self.link is not None:
            self.predict([episode])  # nothing stored yet: ask the engine for a first proposal

    def _on_doc_changed(self, *_args) -> None:
        ann = self.doc.annotation
        if ann is not None and self.doc.ready:
            self.status_changed.emit({ann.episode: (self.doc.base_revision, ann.review, ann.uncertainty)})
        self.unsent_changed.emit()

    def _on_acked(self, uuid: str, revision: int) -> None:
        self.doc.on_acked(uuid, revision)
        self.unsent_changed.emit()

    def _on_rejected(self, uuid: str, reason: str) -> None:
        self.doc.on_rejected(uuid, reason)
        self.message.emit(f"an edit was refused by the backend: {reason}")
        self.unsent_changed.emit()

    def _on_progress(self, dataset: str, done: int, total: int, message: str) -> None:
        if dataset == self.dataset_id:
            self.predict_progress.emit(done, total, message)

    def _on_prediction_ready(self, dataset: str, episode: int) -> None:
        if dataset != self.dataset_id:
            return
        if episode == self.doc.episode and self.link is not None:
            self.link.request_annotation(dataset, episode)
        self._episodes_timer.start()

    def _on_episode_changed(self, dataset: str, episode: int, revision: int, author: str) -> None:
        if dataset != self.dataset_id:
            return
        self._episodes_timer.start()
        if episode == self.doc.episode and revision > self.doc.base_revision and not self.doc.has_local_edits:
            self.link.request_annotation(dataset, episode)
            self.message.emit(f"episode {episode} was changed by {author}; reloaded")

    def _on_queue(self, items: list) -> None:
        for item in items:
            if item.dataset == self.dataset_id and item.episode != self.doc.episode:
                self.open_episode(item.episode)
                return
        self.message.emit("the review queue has nothing else for this dataset")
