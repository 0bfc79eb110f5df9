"""The conflict dialog: someone else stored the episode while the person edited it.

Both versions are shown line by line (`summarize`) with the lines that differ marked,
and the person keeps one; the other stays in the store's history. The session does
what the choice means (`ReviewSession.resolve_conflict`).
"""

from __future__ import annotations

import difflib
from typing import Any

from PySide6.QtWidgets import QDialog, QHBoxLayout, QLabel, QPlainTextEdit, QPushButton, QVBoxLayout

from core.annotations import EpisodeAnnotation


def summarize(ann: EpisodeAnnotation | None) -> list[str]:
    """A readable, line-per-item view of an annotation, for comparing two versions."""
    if ann is None:
        return ["(none)"]
    lines = [f"revision {ann.revision} · {ann.review} · model {ann.model or '-'}", "subtasks:"]
    lines += [f"  {s.start:7.3f}–{s.end:7.3f}  {s.name}" for s in ann.segments]
    lines += [
        f"boxes: {len(ann.boxes)} keyframes",
        *[f"  {b.t:6.2f}s {b.label} ({b.kind}) {tuple(round(v, 3) for v in b.xyxy)}" for b in ann.boxes[:40]],
        f"trajectories: {sum(len(t.points) for t in ann.trajectories)} points",
        f"contacts: {len(ann.contacts)}",
        *[f"  {c.t:6.2f}s ({c.x:.3f}, {c.y:.3f})" for c in ann.contacts],
        f"dialogue: {len(ann.dialogue)}",
        *[f"  {d.t:6.2f}s {d.user_prompt} -> {d.robot_utterance}" for d in ann.dialogue],
        f"qa: {len(ann.qa)}",
        *[f"  {q.t:6.2f}s {q.question} -> {q.answer}" for q in ann.qa],
    ]
    return lines


class ConflictDialog(QDialog):
    """Someone else changed the episode since this edit was based on it: show both, let the person choose."""

    def __init__(self, conflict: Any, parent=None) -> None:
        super().__init__(parent)
        self.conflict = conflict
        self.choice: str | None = None
        cur = conflict.current
        self.setWindowTitle(f"Conflict on episode {cur.episode}")
        theirs, mine = summarize(cur), summarize(conflict.yours)
        diff = difflib.ndiff(theirs, mine)
        marked_theirs, marked_mine = [], []
        for line in diff:
            code, text = line[:2], line[2:]
            if code == "  ":
                marked_theirs.append("  " + text)
                marked_mine.append("  " + text)
            elif code == "- ":
                marked_theirs.append("≠ " + text)
            elif code == "+ ":
                marked_mine.append("≠ " + text)
        lay = QVBoxLayout(self)
        lay.addWidget(
            QLabel(
                f"Episode {cur.episode} was changed to revision {cur.revision} while you edited it "
                f"(your edit was based on revision {conflict.base_revision}). Lines marked ≠ differ. "
                "Keep one version; the other stays in the history."
            )
        )
        row = QHBoxLayout()
        for title, lines in (("Theirs (stored now)", marked_theirs), ("Yours", marked_mine)):
            col = QVBoxLayout()
            col.addWidget(QLabel(f"<b>{title}</b>"))
            text = QPlainTextEdit("\n".join(lines))
            text.setReadOnly(True)
            text.setLineWrapMode(QPlainTextEdit.LineWrapMode.NoWrap)
            text.setMinimumSize(380, 320)
            col.addWidget(text)
            row.addLayout(col)
        lay.addLayout(row)
        buttons = QHBoxLayout()
        buttons.addStretch(1)
        theirs_b = QPushButton("Keep theirs")
        mine_b = QPushButton("Keep mine")
        mine_b.setDefault(True)
        theirs_b.clicked.connect(lambda: self._choose("theirs"))
        mine_b.clicked.connect(lambda: self._choose("mine"))
        buttons.addWidget(theirs_b)
        buttons.addWidget(mine_b)
        lay.addLayout(buttons)

    def _choose(self, choice: str) -> None:
        self.choice = choice
        self.accept()
