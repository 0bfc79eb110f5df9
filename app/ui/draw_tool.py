"""Drawing on the cameras: B drags a box, T clicks a gripper point, C clicks a contact.

A tool stays on until its key is pressed again or Esc. With the box tool, a drag
on any camera draws the box; on release a small editor opens right there asking
the object's label and the box's kind (the last ones are filled in and
remembered between runs); Enter adds the box as a keyframe of that track at the
playhead, Esc drops it. The point tools place on click. Mouse events on the
cameras go to the tool while it is on, so a drag never moves an existing box.
Everything lands in the document as an undoable edit.
"""

from __future__ import annotations

from PySide6.QtCore import QEvent, QObject, QPointF, QRectF, Qt, Signal
from PySide6.QtGui import QAction, QColor, QKeySequence, QPen
from PySide6.QtWidgets import (
    QComboBox,
    QCompleter,
    QFrame,
    QGraphicsRectItem,
    QHBoxLayout,
    QLineEdit,
    QToolButton,
)

from core.annotations import BOX_KINDS

TOOLS = {
    "box": ("B", "Box tool: drag on a camera to draw a box"),
    "point": ("T", "Trajectory tool: click the gripper's fingertip centre"),
    "contact": ("C", "Contact tool: click where the gripper touches the object"),
}
# A drag shorter than this (screen pixels) is a click, not a box.
MIN_DRAG_PX = 4


class BoxEditor(QFrame):
    """The inline question after a box is drawn: label and kind, Enter to add, Esc to drop."""

    accepted = Signal(str, str)
    rejected = Signal()

    def __init__(self, parent, label: str, kind: str, labels: list[str]) -> None:
        super().__init__(parent)
        self.setObjectName("boxEditor")
        self.setFrameShape(QFrame.Shape.StyledPanel)
        self.setAutoFillBackground(True)
        row = QHBoxLayout(self)
        row.setContentsMargins(4, 3, 4, 3)
        self.label = QLineEdit(label)
        self.label.setPlaceholderText("object label")
        self.label.setMinimumWidth(140)
        self.label.selectAll()
        if labels:
            self.label.setCompleter(QCompleter(sorted(set(labels)), self))
        self.kind = QComboBox()
        self.kind.addItems(list(BOX_KINDS))
        self.kind.setCurrentText(kind if kind in BOX_KINDS else BOX_KINDS[0])
        ok = QToolButton()
        ok.setText("Add")
        ok.clicked.connect(self._accept)
        for w in (self.label, self.kind, ok):
            row.addWidget(w)
        self.label.returnPressed.connect(self._accept)
        self._done = False
        self.adjustSize()

    def _accept(self) -> None:
        if self._done:  # Enter reaches both the line edit and this frame
            return
        text = self.label.text().strip()
        if not text:
            self.label.setPlaceholderText("a label is needed")
            return
        self._done = True
        self.accepted.emit(text, self.kind.currentText())
        self.close()
        self.deleteLater()

    def keyPressEvent(self, event) -> None:
        if event.key() == Qt.Key.Key_Escape and not self._done:
            self._done = True
            self.rejected.emit()
            self.close()
            self.deleteLater()
            return
        if event.key() in (Qt.Key.Key_Return, Qt.Key.Key_Enter):
            self._accept()
            return
        super().keyPressEvent(event)


class DrawTool(QObject):
    """The box / point / contact tools over every camera view of a MainWindow."""

    mode_changed = Signal(str)  # "" when no tool is on

    def __init__(self, window, settings) -> None:
        super().__init__(window)
        self.win = window
        self.doc = window.doc
        self.settings = settings
        self.mode = ""
        self.last_label = str(settings.value("draw/label", ""))
        self.last_kind = str(settings.value("draw/kind", BOX_KINDS[0]))
        self.editor: BoxEditor | None = None
        self._rubber: QGraphicsRectItem | None = None
        self._start: QPointF | None = None
        self._press_screen = QPointF()
        self._view = None
        self.views = {view.viewport(): view for view in window.player.views.values()}
        for viewport in self.views:
            viewport.installEventFilter(self)

    def add_actions(self, menu) -> None:
        self.actions: dict[str, QAction] = {}
        for mode, (key, tip) in TOOLS.items():
            act = QAction(tip.split(":")[0], self.win, checkable=True)
            act.setShortcut(QKeySequence(key))
            act.setShortcutContext(Qt.ShortcutContext.WindowShortcut)
            act.setStatusTip(tip)
            act.triggered.connect(lambda _c=False, m=mode: self.toggle(m))
            menu.addAction(act)
            self.win.addAction(act)
            self.actions[mode] = act
        # Esc is the window's only while a tool is on and no editor is open (editors keep their Esc).
        self.stop_action = QAction("Stop drawing", self.win)
        self.stop_action.setShortcut(QKeySequence("Esc"))
        self.stop_action.setShortcutContext(Qt.ShortcutContext.WindowShortcut)
        self.stop_action.setEnabled(False)
        self.stop_action.triggered.connect(lambda _c=False: self.set_mode(""))
        menu.addAction(self.stop_action)
        self.win.addAction(self.stop_action)

    def _update_stop(self) -> None:
        if hasattr(self, "stop_action"):
            self.stop_action.setEnabled(bool(self.mode) and self.editor is None)

    def toggle(self, mode: str) -> None:
        self.set_mode("" if self.mode == mode else mode)

    def set_mode(self, mode: str) -> None:
        if mode and mode not in TOOLS:
            raise ValueError(f"no drawing tool '{mode}' (tools: {', '.join(TOOLS)})")
        self._drop_rubber()
        if not mode and self.editor is not None:
            self.editor.close()
            self.editor.deleteLater()
            self.editor = None
        self.mode = mode
        cursor = Qt.CursorShape.CrossCursor if mode else Qt.CursorShape.ArrowCursor
        for viewport in self.views:
            viewport.setCursor(cursor)
        for m, act in getattr(self, "actions", {}).items():
            act.setChecked(m == mode)
        if mode:
            self.win.show_message(TOOLS[mode][1] + f" ({TOOLS[mode][0]} or Esc to stop)")
        self._update_stop()
        self.mode_changed.emit(mode)

    # ------------------------------------------------------------ mouse

    def eventFilter(self, obj, event) -> bool:
        if not self.mode or obj not in self.views:
            return False
        kind = event.type()
        if kind not in (QEvent.Type.MouseButtonPress, QEvent.Type.MouseMove, QEvent.Type.MouseButtonRelease):
            return False
        view = self.views[obj]
        if kind == QEvent.Type.MouseButtonPress:
            if event.button() != Qt.MouseButton.LeftButton:
                return False
            self._press(view, event.position())
        elif kind == QEvent.Type.MouseMove:
            if self._start is None:
                return True
            self._move(view, event.position())
        else:
            if event.button() != Qt.MouseButton.LeftButton or self._start is None:
                return True
            self._release(view, event.position())
        return True

    def _unit(self, view, scene: QPointF) -> tuple[float, float]:
        r = view.scene().sceneRect()
        return scene.x() / r.width(), scene.y() / r.height()

    def _press(self, view, pos: QPointF) -> None:
        scene = view.mapToScene(pos.toPoint())
        x, y = self._unit(view, scene)
        if not (0 <= x <= 1 and 0 <= y <= 1) or self.doc.annotation is None:
            return
        if self.mode == "point":
            self.doc.add_trajectory_point(view.camera, x, y)
            return
        if self.mode == "contact":
            self.doc.add_contact(view.camera, x, y)
            return
        self._view, self._start, self._press_screen = view, scene, pos
        self._rubber = QGraphicsRectItem(QRectF(scene, scene))
        pen = QPen(QColor(255, 255, 255), 1.5, Qt.PenStyle.DashLine)
        pen.setCosmetic(True)
        self._rubber.setPen(pen)
        self._rubber.setZValue(100)
        view.scene().addItem(self._rubber)

    def _move(self, view, pos: QPointF) -> None:
        if self._rubber is not None and view is self._view:
            self._rubber.setRect(QRectF(self._start, self._clamped(view, pos)).normalized())

    def _clamped(self, view, pos: QPointF) -> QPointF:
        p = view.mapToScene(pos.toPoint())
        r = view.scene().sceneRect()
        return QPointF(min(max(p.x(), r.left()), r.right()), min(max(p.y(), r.top()), r.bottom()))

    def _release(self, view, pos: QPointF) -> None:
        start, self._start = self._start, None
        if view is not self._view or start is None:
            self._drop_rubber()
            return
        if (pos - self._press_screen).manhattanLength() < MIN_DRAG_PX:
            self._drop_rubber()
            self.win.show_message("drag to draw a box (a click places nothing with the box tool)")
            return
        rect = QRectF(start, self._clamped(view, pos)).normalized()
        self._rubber.setRect(rect)
        self._ask(view, rect)

    def _drop_rubber(self) -> None:
        if self._rubber is not None and self._rubber.scene() is not None:
            self._rubber.scene().removeItem(self._rubber)
        self._rubber = None
        self._start = None

    # ------------------------------------------------------------ label and kind

    def _ask(self, view, rect: QRectF) -> None:
        if self.editor is not None:
            self.editor.close()
        labels = [b.label for b in (self.doc.annotation.boxes if self.doc.annotation else [])]
        editor = BoxEditor(view, self.last_label, self.last_kind, labels)
        corner = view.mapFromScene(rect.bottomLeft())
        x = min(max(corner.x(), 0), max(view.width() - editor.width(), 0))
        y = min(max(corner.y() + 4, 0), max(view.height() - editor.height(), 0))
        editor.move(x, y)
        (x1, y1), (x2, y2) = self._unit(view, rect.topLeft()), self._unit(view, rect.bottomRight())
        editor.accepted.connect(lambda label, kind: self._add(view.camera, label, kind, (x1, y1, x2, y2)))
        editor.rejected.connect(self._drop_rubber)
        editor.destroyed.connect(self._editor_gone)
        editor.show()
        editor.label.setFocus()
        self.editor = editor
        self._editor_view = view
        self._update_stop()

    def _editor_gone(self, _obj=None) -> None:
        self.editor = None
        self._update_stop()
        # The keys (B, T, C, Esc, Ctrl+T) belong to the window again, not to a widget that is gone.
        view = getattr(self, "_editor_view", None)
        if view is not None:
            view.window().activateWindow()  # a label completer's popup may have taken it
            view.setFocus(Qt.FocusReason.OtherFocusReason)

    def _add(self, camera: str, label: str, kind: str, xyxy: tuple[float, float, float, float]) -> None:
        self._drop_rubber()
        self.last_label, self.last_kind = label, kind
        self.settings.setValue("draw/label", label)
        self.settings.setValue("draw/kind", kind)
        self.doc.add_box(camera, label, kind, xyxy)
