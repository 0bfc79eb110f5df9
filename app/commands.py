"""The document's undo commands: every edit is two snapshots, so undo and redo are exact.

A snapshot is the annotation and the pending model suggestion (accepting or rejecting a
suggestion is an edit too). Commands of the same gesture in a row (`merge_key`: one
boundary dragged, one box nudged) merge into one undo step.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple

from PySide6.QtGui import QUndoCommand

from core.annotations import EpisodeAnnotation

if TYPE_CHECKING:
    from app.document import EpisodeDocument


class Selection(NamedTuple):
    """The item a person selected: a field of the annotation, an index in it, a sub-index (a trajectory point)."""

    kind: str
    index: int
    sub: int = -1


class Snapshot(NamedTuple):
    annotation: EpisodeAnnotation
    suggestion: EpisodeAnnotation | None


class EditCommand(QUndoCommand):
    """One edit as two snapshots. Commands with the same `merge_key` in a row merge (a nudge series)."""

    def __init__(
        self,
        doc: EpisodeDocument,
        text: str,
        before: Snapshot,
        after: Snapshot,
        selection: Selection | None,
        merge_key: tuple | None = None,
    ) -> None:
        super().__init__(text)
        self.doc, self.before, self.after = doc, before, after
        self.selection_after = selection
        self.selection_before = doc.selection
        self.merge_key = merge_key

    def id(self) -> int:
        return 1 if self.merge_key is not None else -1

    def mergeWith(self, other: QUndoCommand) -> bool:
        if not isinstance(other, EditCommand) or other.merge_key != self.merge_key:
            return False
        self.after = other.after
        self.selection_after = other.selection_after
        return True

    def redo(self) -> None:
        self.doc._apply(self.after, self.selection_after)

    def undo(self) -> None:
        self.doc._apply(self.before, self.selection_before)
