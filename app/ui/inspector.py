"""The inspector: the episode's review state, the model's suggestion, and the selected item's fields.

It shows what is selected anywhere (timeline, overlays, marker track) and edits it
through the document, so every change here is undoable like any other. Text
fields commit when editing finishes (Enter or leaving the field), choices at once.
"""

from __future__ import annotations

from PySide6.QtCore import QSize, Qt, Signal
from PySide6.QtWidgets import (
    QComboBox,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QPushButton,
    QScrollArea,
    QSizePolicy,
    QStackedWidget,
    QVBoxLayout,
    QWidget,
)

from app.document import EpisodeDocument
from core.annotations import BOX_KINDS, ITEM_FIELDS, QA_KINDS, RESPONSE_TYPES, SCENARIO_TYPES

REVIEW_TEXT = {"unreviewed": "not reviewed", "in_review": "in review", "accepted": "accepted ✓"}


class _TextBox(QPlainTextEdit):
    """A multi-line field that commits when it loses focus."""

    committed = Signal()

    def __init__(self) -> None:
        super().__init__()
        self.setTabChangesFocus(True)
        self.setFixedHeight(58)

    def focusOutEvent(self, event) -> None:
        super().focusOutEvent(event)
        self.committed.emit()

    def set(self, text: str) -> None:
        if self.toPlainText() != text:
            self.blockSignals(True)
            self.setPlainText(text)
            self.blockSignals(False)


def _set_line(edit: QLineEdit, text: str) -> None:
    if edit.text() != text and not edit.hasFocus():
        edit.setText(text)


def _set_combo(combo: QComboBox, value: str) -> None:
    combo.blockSignals(True)
    combo.setCurrentIndex(max(combo.findText(value), 0))
    combo.blockSignals(False)


def _combo(values) -> QComboBox:
    box = QComboBox()
    box.addItems(list(values))
    # As wide as the dock allows, not as wide as the longest type name: a narrow dock
    # must not push the panel past its right edge.
    box.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
    box.setMinimumContentsLength(8)
    return box


def _source(item) -> str:
    conf = "" if item.confidence is None else f"  (confidence {item.confidence:.2f})"
    return (item.source or "unknown") + conf


class Inspector(QScrollArea):
    """Episode, suggestion and selected-item panels stacked in one scrollable dock."""

    def __init__(self, doc: EpisodeDocument, cameras: list[str], parent=None) -> None:
        super().__init__(parent)
        self.doc, self.cameras = doc, cameras
        self.setWidgetResizable(True)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        body = QWidget()
        lay = QVBoxLayout(body)
        lay.setContentsMargins(8, 8, 8, 8)
        lay.addWidget(self._episode_box())
        lay.addWidget(self._suggestion_box())
        lay.addWidget(self._item_box())
        lay.addWidget(self._add_box())
        lay.addStretch(1)
        self.setWidget(body)
        doc.loaded.connect(self.refresh)
        doc.changed.connect(self.refresh)
        doc.selection_changed.connect(lambda _s: self.refresh())
        doc.base_revision_changed.connect(lambda _r: self.refresh())
        self.refresh()

    def minimumSizeHint(self) -> QSize:
        """Never narrower than the panels need: with no horizontal scroll bar, a narrower dock
        would cut off their right edge (buttons, fields)."""
        hint = super().minimumSizeHint()
        body = self.widget().minimumSizeHint().width() if self.widget() is not None else 0
        extra = 2 * self.frameWidth() + self.verticalScrollBar().sizeHint().width()
        return QSize(max(hint.width(), body + extra), hint.height())

    # ------------------------------------------------------------ panels

    def _episode_box(self) -> QGroupBox:
        box = QGroupBox("Episode")
        form = QFormLayout(box)
        self.ep_title = QLabel("")
        self.ep_title.setWordWrap(True)
        self.ep_title.setObjectName("episodeTitle")
        self.ep_review = QLabel("")
        self.ep_review.setWordWrap(True)
        self.ep_model = QLabel("")
        self.ep_model.setWordWrap(True)
        self.ep_revision = QLabel("")
        self.accept_button = QPushButton("Accept episode")
        self.accept_button.setObjectName("acceptButton")
        self.accept_button.setToolTip(
            "Mark the whole episode as reviewed and correct (exports take accepted ones)"
        )
        self.accept_button.clicked.connect(self.doc.accept_episode)
        form.addRow(self.ep_title)
        form.addRow("Review", self.ep_review)
        form.addRow("Model", self.ep_model)
        form.addRow("Revision", self.ep_revision)
        form.addRow(self.accept_button)
        return box

    def _suggestion_box(self) -> QGroupBox:
        box = QGroupBox("Model suggestion")
        lay = QVBoxLayout(box)
        self.sugg_text = QLabel("")
        self.sugg_text.setWordWrap(True)
        row = QHBoxLayout()
        self.sugg_accept = QPushButton("Accept suggestion")
        self.sugg_accept.clicked.connect(self.doc.accept_suggestion)
        self.sugg_reject = QPushButton("Reject")
        self.sugg_reject.clicked.connect(self.doc.reject_suggestion)
        row.addWidget(self.sugg_accept)
        row.addWidget(self.sugg_reject)
        lay.addWidget(self.sugg_text)
        lay.addLayout(row)
        self.sugg_box = box
        return box

    def _item_box(self) -> QGroupBox:
        box = QGroupBox("Selected")
        self.item_box = box
        lay = QVBoxLayout(box)
        self.pages = QStackedWidget()
        self.pages.currentChanged.connect(self._fit_page)
        lay.addWidget(self.pages)

        none = QLabel(
            "Click a subtask on the timeline, a box or point on a camera, or a dialogue/QA marker to edit it."
        )
        none.setWordWrap(True)
        none.setObjectName("hint")
        self.page_none = self._page(none)

        w = QWidget()
        f = QFormLayout(w)
        self.seg_name = QLineEdit()
        self.seg_name.setPlaceholderText("subtask name")
        self.seg_name.editingFinished.connect(self._commit_segment)
        self.seg_span = QLabel("")
        self.seg_source = QLabel("")
        self.seg_source.setWordWrap(True)
        buttons = QHBoxLayout()
        for text, slot in (
            ("Split", lambda: self.doc.split_segment()),
            ("Merge next", lambda: self.doc.merge_with_next()),
            ("Delete", lambda: self.doc.delete_segment()),
        ):
            b = QPushButton(text)
            b.clicked.connect(slot)
            buttons.addWidget(b)
        f.addRow("Name", self.seg_name)
        f.addRow("Span", self.seg_span)
        f.addRow("Source", self.seg_source)
        f.addRow(buttons)
        self.page_segment = self._page(w)

        w = QWidget()
        f = QFormLayout(w)
        self.box_label = QLineEdit()
        self.box_label.editingFinished.connect(self._commit_box)
        self.box_kind = _combo(BOX_KINDS)
        self.box_kind.activated.connect(lambda _i: self._commit_box())
        self.box_info = QLabel("")
        self.box_info.setWordWrap(True)
        delete = QPushButton("Delete keyframe")
        delete.clicked.connect(lambda: self._delete("boxes"))
        f.addRow("Label", self.box_label)
        f.addRow("Kind", self.box_kind)
        f.addRow(self.box_info)
        f.addRow(delete)
        self.page_box = self._page(w)

        w = QWidget()
        f = QFormLayout(w)
        self.dlg_skill = QLineEdit()
        self.dlg_skill.editingFinished.connect(self._commit_dialogue)
        self.dlg_user = _TextBox()
        self.dlg_user.committed.connect(self._commit_dialogue)
        self.dlg_robot = _TextBox()
        self.dlg_robot.committed.connect(self._commit_dialogue)
        self.dlg_scenario = _combo(SCENARIO_TYPES)
        self.dlg_scenario.activated.connect(lambda _i: self._commit_dialogue())
        self.dlg_response = _combo(RESPONSE_TYPES)
        self.dlg_response.activated.connect(lambda _i: self._commit_dialogue())
        self.dlg_info = QLabel("")
        delete = QPushButton("Delete turn")
        delete.clicked.connect(lambda: self._delete("dialogue"))
        f.addRow("Skill", self.dlg_skill)
        f.addRow("User", self.dlg_user)
        f.addRow("Robot", self.dlg_robot)
        f.addRow("Scenario", self.dlg_scenario)
        f.addRow("Response", self.dlg_response)
        f.addRow(self.dlg_info)
        f.addRow(delete)
        self.page_dialogue = self._page(w)

        w = QWidget()
        f = QFormLayout(w)
        self.qa_question = _TextBox()
        self.qa_question.committed.connect(self._commit_qa)
        self.qa_answer = QLineEdit()
        self.qa_answer.editingFinished.connect(self._commit_qa)
        self.qa_kind = _combo(QA_KINDS)
        self.qa_kind.activated.connect(lambda _i: self._commit_qa())
        self.qa_choices = QLineEdit()
        self.qa_choices.setPlaceholderText("choices, separated by ;")
        self.qa_choices.editingFinished.connect(self._commit_qa)
        self.qa_info = QLabel("")
        delete = QPushButton("Delete question")
        delete.clicked.connect(lambda: self._delete("qa"))
        f.addRow("Question", self.qa_question)
        f.addRow("Answer", self.qa_answer)
        f.addRow("Kind", self.qa_kind)
        f.addRow("Choices", self.qa_choices)
        f.addRow(self.qa_info)
        f.addRow(delete)
        self.page_qa = self._page(w)

        w = QWidget()
        f = QFormLayout(w)
        self.point_info = QLabel("")
        self.point_info.setWordWrap(True)
        self.point_delete = QPushButton("Delete contact")
        self.point_delete.clicked.connect(lambda: self._delete("contacts"))
        f.addRow(self.point_info)
        f.addRow(self.point_delete)
        self.page_point = self._page(w)
        return box

    def _add_box(self) -> QGroupBox:
        box = QGroupBox("Add at the playhead")
        lay = QHBoxLayout(box)
        dlg = QPushButton("Dialogue turn")
        dlg.clicked.connect(lambda: self.doc.add_dialogue())
        qa = QPushButton("Question")
        qa.clicked.connect(lambda: self.doc.add_qa(self.cameras[0] if self.cameras else "camera"))
        lay.addWidget(dlg)
        lay.addWidget(qa)
        return box

    def _page(self, widget: QWidget) -> int:
        return self.pages.addWidget(widget)

    def _show_page(self, index: int) -> None:
        self.pages.setCurrentIndex(index)
        self._fit_page(index)

    def _fit_page(self, index: int) -> None:
        """A stack is as big as its biggest page; let only the shown one count (height and width)."""
        for i in range(self.pages.count()):
            policy = QSizePolicy.Policy.Preferred if i == index else QSizePolicy.Policy.Ignored
            self.pages.widget(i).setSizePolicy(policy, policy)
        # Tell the layouts, which size the stack to its container (adjustSize() would size it to
        # the page's own hint and let a wide page stick out of the panel).
        self.pages.updateGeometry()
        self.updateGeometry()  # the dock re-reads minimumSizeHint

    # ------------------------------------------------------------ refresh

    def refresh(self) -> None:
        ann = self.doc.annotation
        if ann is None:
            self.ep_title.setText("no episode open")
            self.sugg_box.hide()
            self._show_page(self.page_none)
            return
        title = f"<b>Episode {ann.episode}</b>"
        if ann.task:
            title += f"<br>{ann.task}"
        self.ep_title.setText(title)
        unc = "" if ann.uncertainty is None else f"   uncertainty {ann.uncertainty:.2f}"
        self.ep_review.setText(REVIEW_TEXT.get(ann.review, ann.review) + unc)
        # Where the proposal came from, in words: "aligned to episodes 3 and 7".
        self.ep_model.setText((ann.model or "—") + (f"\n{ann.origin}" if ann.origin else ""))
        pending = "" if not self.doc.has_local_edits else "   (edits unsent)"
        loading = "" if self.doc.ready else "   loading…"
        self.ep_revision.setText(f"{self.doc.base_revision}{pending}{loading}")
        self.accept_button.setEnabled(ann.review != "accepted" and self.doc.ready)
        sugg = self.doc.suggestion
        self.sugg_box.setVisible(sugg is not None)
        if sugg is not None:
            kinds = ", ".join(f"{len(getattr(sugg, k))} {k}" for k in ITEM_FIELDS if getattr(sugg, k))
            origin = f" ({sugg.origin})" if sugg.origin else ""
            self.sugg_text.setText(
                f"{sugg.model or 'the model'}{origin} predicted {kinds or 'nothing'} after this episode was edited. "
                "Accepting replaces those kinds here; both are undoable."
            )
        self._refresh_item()

    def _refresh_item(self) -> None:
        sel = self.doc.selection
        item = self.doc.selected_item()
        if sel is None or item is None:
            self.item_box.setTitle("Selected")
            self._show_page(self.page_none)
            return
        if sel.kind == "segments":
            self.item_box.setTitle(f"Subtask {sel.index + 1} of {len(self.doc.annotation.segments)}")
            _set_line(self.seg_name, item.name)
            frames = round(item.duration * self.doc.fps)
            self.seg_span.setText(f"{item.start:.3f} – {item.end:.3f} s  ({frames} frames)")
            self.seg_source.setText(_source(item))
            self._show_page(self.page_segment)
        elif sel.kind == "boxes":
            self.item_box.setTitle("Box keyframe")
            _set_line(self.box_label, item.label)
            _set_combo(self.box_kind, item.kind)
            x1, y1, x2, y2 = item.xyxy
            self.box_info.setText(
                f"{item.camera.rsplit('.', 1)[-1]} at {item.t:.3f} s\n"
                f"({x1:.3f}, {y1:.3f}) – ({x2:.3f}, {y2:.3f})\n{_source(item)}"
            )
            self._show_page(self.page_box)
        elif sel.kind == "dialogue":
            self.item_box.setTitle(f"Dialogue turn at {item.t:.2f} s")
            _set_line(self.dlg_skill, item.skill)
            self.dlg_user.set(item.user_prompt)
            self.dlg_robot.set(item.robot_utterance)
            _set_combo(self.dlg_scenario, item.scenario_type)
            _set_combo(self.dlg_response, item.response_type)
            self.dlg_info.setText(_source(item))
            self._show_page(self.page_dialogue)
        elif sel.kind == "qa":
            self.item_box.setTitle(f"Question at {item.t:.2f} s")
            self.qa_question.set(item.question)
            _set_line(self.qa_answer, item.answer)
            _set_combo(self.qa_kind, item.kind)
            _set_line(self.qa_choices, "; ".join(item.choices))
            self.qa_info.setText(f"{item.camera.rsplit('.', 1)[-1]} · {_source(item)}")
            self._show_page(self.page_qa)
        elif sel.kind == "contacts":
            self.item_box.setTitle("Contact point")
            self.point_info.setText(
                f"{item.camera.rsplit('.', 1)[-1]} at {item.t:.3f} s: ({item.x:.3f}, {item.y:.3f})\n"
                f"{_source(item)}\nDrag it on the camera view to move it."
            )
            self.point_delete.show()
            self._show_page(self.page_point)
        elif sel.kind == "trajectories":
            t, x, y = item.points[sel.sub] if 0 <= sel.sub < len(item.points) else (0.0, 0.0, 0.0)
            self.item_box.setTitle("Trajectory point")
            self.point_info.setText(
                f"{item.camera.rsplit('.', 1)[-1]} at {t:.3f} s: ({x:.3f}, {y:.3f})\n{_source(item)}\n"
                "Drag it on the camera view to correct it."
            )
            self.point_delete.hide()
            self._show_page(self.page_point)

    # ------------------------------------------------------------ commits

    def _index(self, kind: str) -> int | None:
        sel = self.doc.selection
        return sel.index if sel is not None and sel.kind == kind else None

    def _commit_segment(self) -> None:
        i = self._index("segments")
        if i is not None:
            self.doc.rename_segment(i, self.seg_name.text())

    def _commit_box(self) -> None:
        i = self._index("boxes")
        if i is None:
            return
        box = self.doc.annotation.boxes[i]
        label, kind = self.box_label.text().strip(), self.box_kind.currentText()
        if (label, kind) != (box.label, box.kind):
            self.doc.edit_box(i, label=label, kind=kind)

    def _commit_dialogue(self) -> None:
        i = self._index("dialogue")
        if i is None:
            return
        turn = self.doc.annotation.dialogue[i]
        fields = {
            "skill": self.dlg_skill.text().strip(),
            "user_prompt": self.dlg_user.toPlainText().strip(),
            "robot_utterance": self.dlg_robot.toPlainText().strip(),
            "scenario_type": self.dlg_scenario.currentText(),
            "response_type": self.dlg_response.currentText(),
        }
        if any(getattr(turn, k) != v for k, v in fields.items()):
            self.doc.edit_dialogue(i, **fields)

    def _commit_qa(self) -> None:
        i = self._index("qa")
        if i is None:
            return
        qa = self.doc.annotation.qa[i]
        choices = [c.strip() for c in self.qa_choices.text().split(";") if c.strip()]
        fields = {
            "question": self.qa_question.toPlainText().strip(),
            "answer": self.qa_answer.text().strip(),
            "kind": self.qa_kind.currentText(),
            "choices": choices,
        }
        if any(getattr(qa, k) != v for k, v in fields.items()):
            self.doc.edit_qa(i, **fields)

    def _delete(self, kind: str) -> None:
        i = self._index(kind)
        if i is None:
            return
        {
            "boxes": self.doc.delete_box,
            "dialogue": self.doc.delete_dialogue,
            "qa": self.doc.delete_qa,
            "contacts": self.doc.delete_contact,
        }[kind](i)
