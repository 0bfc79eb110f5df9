"""The open episode as a document: annotation, selection, playhead and the undo stack.

A pure model with Qt signals and no widgets (napari style): the player, timeline,
overlays and inspector all watch one `EpisodeDocument` and change it only through
its edit methods. Every edit is a snapshot `QUndoCommand` (the annotation and the
pending model suggestion before and after), so undo and redo are exact and an
invalid edit is refused with the model's own error message instead of half
applied. Edits are sent to the backend as whole-annotation corrections, debounced
(a drag or a burst of keystrokes becomes one correction), and flushed at once when
the person switches episodes or closes the app. The edit methods themselves (one per
gesture) are `DocumentEdits` (app/document_edits.py), the arithmetic under them core.edits.
"""

from __future__ import annotations

import getpass
import math
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QObject, QTimer, Signal
from PySide6.QtGui import QUndoStack

from app.commands import EditCommand, Selection, Snapshot
from app.document_edits import DocumentEdits
from core import edits
from core.annotations import (
    HUMAN_PREFIX,
    ITEM_FIELDS,
    EpisodeAnnotation,
    frame_at,
    replace,
    segment_index_at,
)
from core.edits import NEW_SEGMENT_NAME
from core.errors import AnnotationError

if TYPE_CHECKING:
    from core.protocol import Conflict

# Quiet time after the last edit before it is submitted: a drag or typing burst is one correction.
SUBMIT_DELAY_MS = 500
# Kinds a model suggestion can bring; accepting it replaces the ones it has.
SUGGESTION_FIELDS = ITEM_FIELDS

__all__ = ["NEW_SEGMENT_NAME", "SUBMIT_DELAY_MS", "EpisodeDocument", "Selection"]


class EpisodeDocument(QObject, DocumentEdits):
    """The annotation of the open episode; its edit methods are `DocumentEdits`'."""

    # A different episode (or a reloaded annotation): views rebuild everything.
    loaded = Signal()
    # The annotation or suggestion changed by an edit, undo or redo.
    changed = Signal()
    selection_changed = Signal(object)  # Selection | None
    playhead_changed = Signal(float)  # seconds, on the frame grid
    # Something the person should read: a refused edit, a submit problem.
    message = Signal(str)
    # Edits made but not yet handed to the link (debounce running), and corrections not acked.
    unsent_changed = Signal(int)
    base_revision_changed = Signal(int)
    # A person corrected (or added) a keyframe of a tracked track: ("boxes", track key, t) or
    # ("trajectories", index, t). The tracking controller re-tracks the gaps beside it.
    keyframe_corrected = Signal(object)

    def __init__(self, dataset_id: str, fps: float, link: Any = None, user: str | None = None, parent=None):
        super().__init__(parent)
        if not fps or fps <= 0 or not math.isfinite(fps):
            raise ValueError(f"EpisodeDocument: fps = {fps!r} must be > 0")
        self.dataset_id = dataset_id
        self.fps = float(fps)
        self.link = link
        self.user = user or getpass.getuser() or "annotator"
        self.undo_stack = QUndoStack(self)
        self.annotation: EpisodeAnnotation | None = None
        self.suggestion: EpisodeAnnotation | None = None
        self.base_revision = 0
        self.selection: Selection | None = None
        self.playhead = 0.0
        # True once the backend's annotation arrived (or at once without a backend): edits allowed.
        self.ready = False
        self._needs_submit = False
        # correction uuid -> the annotation it carried, until the backend acknowledges it
        self._inflight: dict[str, EpisodeAnnotation] = {}
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(SUBMIT_DELAY_MS)
        self._timer.timeout.connect(self.flush)

    # ------------------------------------------------------------ episode lifecycle

    @property
    def episode(self) -> int | None:
        return None if self.annotation is None else self.annotation.episode

    @property
    def duration(self) -> float:
        return 0.0 if self.annotation is None else self.annotation.duration

    @property
    def n_frames(self) -> int:
        return 0 if self.annotation is None else max(1, round(self.annotation.duration * self.fps))

    @property
    def frame(self) -> int:
        return frame_at(self.playhead, self.fps, self.n_frames) if self.annotation else 0

    def open_episode(self, episode: int, duration: float, task: str = "", ready: bool | None = None) -> None:
        """Switch to an episode: flush the old one's edits, show an empty annotation until the real one loads."""
        self.flush()
        self.undo_stack.clear()
        self.annotation = EpisodeAnnotation(
            dataset=self.dataset_id, episode=episode, duration=duration, fps=self.fps, task=task
        )
        self.suggestion = None
        self.base_revision = 0
        self.selection = None
        self.playhead = 0.0
        self.ready = self.link is None if ready is None else ready
        self._needs_submit = False
        self.loaded.emit()
        self.selection_changed.emit(None)
        self.playhead_changed.emit(0.0)
        self.base_revision_changed.emit(0)
        self._emit_unsent()

    def load(
        self,
        head: EpisodeAnnotation | None,
        suggestion: EpisodeAnnotation | None = None,
        keep_edits: bool = True,
    ) -> bool:
        """Take the backend's annotation of the open episode. Returns whether it replaced the annotation.

        Local edits not yet acknowledged win (`keep_edits`): the backend reports a conflict
        for them if someone else changed the episode meanwhile, and the person chooses there.
        """
        if self.annotation is None:
            return False
        if head is not None and (head.dataset, head.episode) != self.annotation.key:
            return False
        if keep_edits and self.ready and self.has_local_edits:
            if suggestion is not None and suggestion != self.suggestion:
                self.suggestion = suggestion
                self.changed.emit()
            return False
        ann = head if head is not None else self.annotation
        if head is not None and abs(head.duration - self.annotation.duration) * self.fps > 1.0:
            self.message.emit(
                f"episode {head.episode}: the stored annotation lasts {head.duration:.3f} s but the video "
                f"{self.annotation.duration:.3f} s; shown as stored"
            )
        self.undo_stack.clear()
        self.annotation = ann
        self.suggestion = suggestion
        self.base_revision = head.revision if head is not None else 0
        self.ready = True
        self._needs_submit = False
        if self.selection is not None and not self._valid(self.selection):
            self.selection = None
            self.selection_changed.emit(None)
        self.loaded.emit()
        self.base_revision_changed.emit(self.base_revision)
        self._emit_unsent()
        return True

    @property
    def has_local_edits(self) -> bool:
        """Edits of the open episode the backend has not acknowledged (waiting to be sent, or in flight)."""
        ep = self.episode
        return self._needs_submit or any(a.episode == ep for a in self._inflight.values())

    @property
    def needs_submit(self) -> bool:
        """Edits made and not yet handed to the link (the debounce is running, or the journal failed)."""
        return self._needs_submit

    @property
    def unsent(self) -> int:
        """Edits waiting for the debounce plus corrections (of any episode) not acknowledged yet."""
        return int(self._needs_submit) + len(self._inflight)

    def _emit_unsent(self) -> None:
        self.unsent_changed.emit(self.unsent)

    # ------------------------------------------------------------ submitting

    def flush(self) -> str | None:
        """Submit the current annotation now if it has unsubmitted edits; returns the correction uuid."""
        self._timer.stop()
        if not self._needs_submit or self.annotation is None:
            return None
        if self.link is None:  # local mode: the undo stack is the only record
            return None
        try:
            uuid = self.link.submit(self.annotation, self.base_revision)
        except Exception as exc:  # the journal could not be written: keep the edit, say so, retry later
            self.message.emit(f"could not save the correction: {exc}; it will be retried")
            self._timer.start()
            return None
        self._needs_submit = False
        if uuid:
            self._inflight[uuid] = self.annotation
        self._emit_unsent()
        return uuid

    def on_acked(self, uuid: str, revision: int) -> None:
        """BackendLink.correction_acked: our correction became `revision`."""
        sent = self._inflight.pop(uuid, None)
        if sent is None:
            return
        if self.annotation is not None and sent.key == self.annotation.key and revision > self.base_revision:
            self.base_revision = revision
            self.base_revision_changed.emit(revision)
            if (
                not self.has_local_edits
                and edits.content(sent) != edits.content(self.annotation)
                and self.link is not None
            ):
                # The episode was reopened before this edit was stored: what is shown predates it.
                self.link.request_annotation(self.dataset_id, sent.episode)
        self._emit_unsent()

    def on_rejected(self, uuid: str, reason: str) -> None:
        if self._inflight.pop(uuid, None) is not None:
            self.message.emit(f"the backend refused an edit: {reason}")
            self._emit_unsent()

    def owns(self, uuid: str) -> bool:
        return uuid in self._inflight

    def resolve_conflict(self, conflict: Conflict, keep: str, new_uuid: str | None) -> None:
        """After the person chose in the conflict dialog: 'theirs' loads their version, 'mine' keeps ours."""
        ours = self._inflight.pop(conflict.uuid, None)
        current = conflict.current
        if keep == "mine" and new_uuid:
            self._inflight[new_uuid] = ours or conflict.yours or current
        if self.annotation is None or current.key != self.annotation.key:
            self._emit_unsent()
            return
        if keep == "theirs":
            # The link drops our correction and the later ones chained on it: so does the window.
            for uuid in [u for u, a in self._inflight.items() if a.key == current.key]:
                del self._inflight[uuid]
            self._needs_submit = False
            self.load(current, self.suggestion, keep_edits=False)
        else:
            self.base_revision = max(self.base_revision, current.revision)
            self.base_revision_changed.emit(self.base_revision)
        self._emit_unsent()

    # ------------------------------------------------------------ selection and playhead

    def _valid(self, sel: Selection) -> bool:
        if self.annotation is None or sel.kind not in SUGGESTION_FIELDS:
            return False
        items = getattr(self.annotation, sel.kind)
        if not 0 <= sel.index < len(items):
            return False
        return sel.kind != "trajectories" or sel.sub < len(items[sel.index].points)

    def select(self, kind: str | None, index: int = -1, sub: int = -1) -> None:
        sel = None if kind is None else Selection(kind, index, sub)
        if sel is not None and not self._valid(sel):
            sel = None
        if sel != self.selection:
            self.selection = sel
            self.selection_changed.emit(sel)

    def selected_item(self) -> Any:
        if self.selection is None or not self._valid(self.selection):
            return None
        return getattr(self.annotation, self.selection.kind)[self.selection.index]

    def set_playhead(self, t: float) -> None:
        """Move the playhead to the frame shown at t (clamped to the episode)."""
        if self.annotation is None:
            return
        t = frame_at(t, self.fps, self.n_frames) / self.fps
        if t != self.playhead:
            self.playhead = t
            self.playhead_changed.emit(t)

    def set_frame(self, index: int) -> None:
        self.set_playhead(min(max(index, 0), self.n_frames - 1) / self.fps)

    def step(self, frames: int) -> None:
        self.set_frame(self.frame + frames)

    def segment_index(self, t: float | None = None) -> int | None:
        if self.annotation is None:
            return None
        return segment_index_at(self.annotation.segments, self.playhead if t is None else t)

    def jump_segment(self, direction: int) -> None:
        """Up/down: to the start of the previous or next segment."""
        if self.annotation is None:
            return
        target = edits.jump_target(self.annotation.segments, self.playhead, self.fps, direction)
        if target is None:
            return
        self.set_playhead(target)
        i = self.segment_index()
        if i is not None:
            self.select("segments", i)

    # ------------------------------------------------------------ edit plumbing

    def _apply(self, state: Snapshot, selection: Selection | None) -> None:
        self.annotation, self.suggestion = state
        self._needs_submit = True
        self.changed.emit()
        sel = selection if selection is not None and self._valid(selection) else None
        if sel != self.selection:
            self.selection = sel
            self.selection_changed.emit(sel)
        if self.link is not None:
            self._timer.start()
        self._emit_unsent()

    def _human(self) -> str:
        return HUMAN_PREFIX + self.user

    def _edit(
        self,
        text: str,
        merge_key: tuple | None = None,
        selection: Selection | None = None,
        suggestion: Any = ...,
        **changes: Any,
    ) -> bool:
        """Validate the changed annotation and push it as one undoable command."""
        if self.annotation is None:
            return False
        if not self.ready:
            self.message.emit("the episode's annotation is still loading; try again in a moment")
            return False
        if "review" not in changes and self.annotation.review == "unreviewed":
            changes["review"] = "in_review"
        try:
            new = replace(self.annotation, **changes)
        except AnnotationError as exc:
            self.message.emit(f"{text} refused: {exc}")
            return False
        after_sugg = self.suggestion if suggestion is ... else suggestion
        before = Snapshot(self.annotation, self.suggestion)
        after = Snapshot(new, after_sugg)
        if after == before:
            return False
        self.undo_stack.push(
            EditCommand(self, text, before, after, selection or self.selection, merge_key=merge_key)
        )
        return True

    def _snap(self, t: float) -> float:
        return edits.snap(t, self.duration, self.fps)
