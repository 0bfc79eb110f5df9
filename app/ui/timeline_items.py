"""The pieces the timeline is drawn with: segment bars, frame-snapped lines, track rows, the
inline rename editor.

In pyqtgraph's view coordinates (x: seconds, y: 0..1 of a row); the `Timeline`
(app/ui/timeline.py) builds its rows from them and turns their signals into edits.
"""

from __future__ import annotations

import hashlib

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QPointF, QRectF, Qt, Signal
from PySide6.QtGui import QColor, QFont, QFontMetrics, QPainter, QPen
from PySide6.QtWidgets import QLineEdit, QWidget

from core.annotations import snap_time

AXIS_WIDTH = 78


def segment_color(name: str, alpha: int = 200) -> QColor:
    """A stable colour per subtask name, so 'grasp' looks the same in every episode."""
    h = int(hashlib.md5(name.encode()).hexdigest()[:6], 16)
    c = QColor.fromHsv(h % 360, 120 + (h >> 9) % 60, 170 + (h >> 15) % 50)
    c.setAlpha(alpha)
    return c


class SnapLine(pg.InfiniteLine):
    """A vertical line whose position always sits on the frame grid."""

    def __init__(self, fps: float, **kwargs) -> None:
        self.fps = fps
        super().__init__(angle=90, **kwargs)

    def setPos(self, pos) -> None:
        if isinstance(pos, QPointF):
            pos = pos.x()
        elif isinstance(pos, list | tuple | np.ndarray) and np.ndim(pos):
            pos = pos[0]
        super().setPos(snap_time(float(pos), self.fps))


class SegmentBars(pg.GraphicsObject):
    """Coloured spans with their names, drawn in view coordinates (x: seconds, y: 0..1)."""

    clicked = Signal(float, bool)  # time, double click
    context = Signal(float, object)  # time, screen position

    def __init__(self) -> None:
        super().__init__()
        self.segments: list[tuple[str, float, float, bool]] = []  # name, start, end, is_human
        self.selected: int | None = None
        self.duration = 1.0
        self.font = QFont()
        self.font.setPointSize(9)

    def set_segments(self, segments, duration: float, selected: int | None) -> None:
        self.prepareGeometryChange()
        self.segments = [(s.name, s.start, s.end, s.is_human) for s in segments]
        self.duration = max(duration, 1e-6)
        self.selected = selected
        self.update()

    def boundingRect(self) -> QRectF:
        return QRectF(0, 0, self.duration, 1)

    def paint(self, painter: QPainter, _option, _widget=None) -> None:
        tr = painter.transform()
        painter.save()
        painter.resetTransform()
        painter.setFont(self.font)
        fm = QFontMetrics(self.font)
        for i, (name, a, b, human) in enumerate(self.segments):
            r = tr.mapRect(QRectF(a, 0.08, b - a, 0.84))
            painter.fillRect(r, segment_color(name))
            if i == self.selected:
                pen = QPen(QColor(255, 255, 255), 2)
                painter.setPen(pen)
                painter.drawRect(r.adjusted(1, 1, -1, -1))
            if human:  # a person touched it: a small mark in the corner
                painter.fillRect(QRectF(r.left() + 2, r.top() + 2, 5, 5), QColor(255, 255, 255, 200))
            if r.width() > 14:
                painter.setPen(QColor(15, 15, 18))
                text = fm.elidedText(name, Qt.TextElideMode.ElideRight, int(r.width()) - 6)
                painter.drawText(r.adjusted(3, 0, -3, 0), Qt.AlignmentFlag.AlignCenter, text)
        painter.restore()

    def mouseClickEvent(self, ev) -> None:
        t = ev.pos().x()
        if ev.button() == Qt.MouseButton.LeftButton:
            ev.accept()
            self.clicked.emit(t, ev.double())
        elif ev.button() == Qt.MouseButton.RightButton:
            ev.accept()
            self.context.emit(t, ev.screenPos().toPoint())


def track_plot(label: str, ticks: list[tuple[float, str]]) -> pg.PlotItem:
    plot = pg.PlotItem()
    plot.setMenuEnabled(False)
    plot.hideButtons()
    plot.setMouseEnabled(x=True, y=False)
    plot.setYRange(0, 1, padding=0)
    plot.hideAxis("bottom")
    left = plot.getAxis("left")
    left.setWidth(AXIS_WIDTH)
    left.setTicks([ticks, []])
    left.setStyle(tickLength=0)
    plot.getViewBox().setLimits(yMin=0, yMax=1)
    return plot


class InlineEdit(QLineEdit):
    """A one-line editor over a segment: Return commits, Esc or a click elsewhere cancels."""

    committed = Signal(str)

    def __init__(self, text: str, parent: QWidget) -> None:
        super().__init__(text, parent)
        self._done = False
        self.returnPressed.connect(self._commit)

    def _commit(self) -> None:
        if not self._done:
            self._done = True
            self.committed.emit(self.text())
            self.hide()
            self.deleteLater()

    def keyPressEvent(self, event) -> None:
        if event.key() == Qt.Key.Key_Escape:
            self._done = True
            self.hide()
            self.deleteLater()
            return
        super().keyPressEvent(event)

    def focusOutEvent(self, event) -> None:
        super().focusOutEvent(event)
        if not self._done:
            self._done = True
            self.hide()
            self.deleteLater()
