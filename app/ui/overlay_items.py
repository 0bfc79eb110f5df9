"""The graphics items the camera overlays are drawn with: a box track's handle, trajectory
points, the time-coloured polyline, text chips.

Drawn in the frame's pixel coordinates; an item only moves on screen while dragged and
reports to its `CameraOverlay` (app/ui/overlays.py) on release, which makes the edit.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from PySide6.QtCore import QPointF, QRectF, Qt
from PySide6.QtGui import QBrush, QColor, QFont, QFontMetrics, QPainter, QPen, QTransform
from PySide6.QtWidgets import (
    QGraphicsEllipseItem,
    QGraphicsItem,
    QGraphicsObject,
    QGraphicsRectItem,
    QMenu,
)

if TYPE_CHECKING:
    from app.ui.overlays import CameraOverlay

KIND_COLORS = {
    "current": QColor(64, 200, 255),
    "final": QColor(110, 230, 120),
    "contact": QColor(255, 170, 60),
    "gripper": QColor(230, 110, 255),
}
CONTACT_COLOR = QColor(255, 80, 80)
# Where a tracker lost its target: drawn in this colour, for a person to place a keyframe.
LOST_COLOR = QColor(255, 45, 45)
HANDLE_PX = 8.0


def time_color(frac: float, alpha: int = 255) -> QColor:
    """Blue (start) through green and yellow to red (end)."""
    frac = min(max(frac, 0.0), 1.0)
    c = QColor.fromHsvF((1.0 - frac) * 0.66, 0.9, 1.0)
    c.setAlpha(alpha)
    return c


def _view_scale(item: QGraphicsItem) -> float:
    scene = item.scene()
    if scene is None or not scene.views():
        return 1.0
    return max(scene.views()[0].transform().m11(), 1e-3)


class BoxItem(QGraphicsRectItem):
    """One box track at the playhead: drag inside to move, drag a corner to resize."""

    def __init__(self, overlay: CameraOverlay, track: tuple[str, str, str]) -> None:
        super().__init__()
        self.overlay, self.track = overlay, track
        self.keyframe = False
        self.selected = False
        self.lost = False  # a tracker lost the target on this keyframe
        self.tracked = False  # a tracker placed this keyframe
        self._mode: str | None = None
        self._press = QPointF()
        self._rect0 = QRectF()
        self.setAcceptHoverEvents(True)
        self.setZValue(10)
        self.label = ChipItem(point_size=8, parent=self, margin=2)
        self._styled: tuple[bool, bool] | None = None
        self._style()

    @property
    def dragging(self) -> bool:
        return self._mode is not None

    def place(
        self, rect: QRectF, keyframe: bool, selected: bool, lost: bool = False, tracked: bool = False
    ) -> None:
        if self.dragging:
            return
        look = (keyframe, selected, lost, tracked)
        restyle = look != (self.keyframe, self.selected, self.lost, self.tracked) or self._styled is None
        self.keyframe, self.selected, self.lost, self.tracked = look
        self.setRect(rect)
        if restyle:  # pens and text only when the look changes, not on every frame
            self._style()
        self._place_label()

    def _place_label(self) -> None:
        """Above the box's top-left corner, kept inside the frame (below the box if there is no room above)."""
        r, scale = self.rect(), _view_scale(self)
        chip = self.label.boundingRect()
        scene = self.scene().sceneRect() if self.scene() is not None else QRectF(r)
        x = max(scene.left(), min(r.left(), scene.right() - chip.width() / scale))
        y = r.top() if r.top() - chip.height() / scale >= scene.top() else r.bottom() + chip.height() / scale
        self.label.setPos(x, y)

    def _style(self) -> None:
        self._styled = (self.keyframe, self.selected, self.lost, self.tracked)
        color = QColor(LOST_COLOR if self.lost else KIND_COLORS.get(self.track[2], QColor(255, 255, 255)))
        pen = QPen(color, 3.0 if self.selected or self.lost else 2.0)
        pen.setCosmetic(True)
        if self.lost:
            pen.setStyle(Qt.PenStyle.DashDotLine)
        elif not self.keyframe:
            pen.setStyle(Qt.PenStyle.DashLine)
            color.setAlpha(200)
            pen.setColor(color)
        self.setPen(pen)
        fill = QColor(color)
        fill.setAlpha(40 if self.keyframe else 18)
        self.setBrush(QBrush(fill))
        if self.lost:
            note = " · tracking lost here"
        elif not self.keyframe:
            note = " (interpolated)"
        else:
            note = " · tracked" if self.tracked else ""
        self.label.set_text(f"{self.track[1]} · {self.track[2]}{note}", color)

    def _corner(self, pos: QPointF) -> str | None:
        tol = HANDLE_PX / _view_scale(self)
        r = self.rect()
        for name, p in (
            ("tl", r.topLeft()),
            ("tr", r.topRight()),
            ("bl", r.bottomLeft()),
            ("br", r.bottomRight()),
        ):
            if abs(pos.x() - p.x()) <= tol and abs(pos.y() - p.y()) <= tol:
                return name
        return None

    def hoverMoveEvent(self, event) -> None:
        corner = self._corner(event.pos())
        if corner in ("tl", "br"):
            self.setCursor(Qt.CursorShape.SizeFDiagCursor)
        elif corner in ("tr", "bl"):
            self.setCursor(Qt.CursorShape.SizeBDiagCursor)
        else:
            self.setCursor(Qt.CursorShape.SizeAllCursor)

    def mousePressEvent(self, event) -> None:
        if event.button() != Qt.MouseButton.LeftButton:
            event.ignore()
            return
        self.overlay.select_track(self.track)
        self._mode = self._corner(event.pos()) or "move"
        self._press = event.scenePos()
        self._rect0 = QRectF(self.rect())
        event.accept()

    def mouseMoveEvent(self, event) -> None:
        if self._mode is None:
            return
        d = event.scenePos() - self._press
        r = QRectF(self._rect0)
        if self._mode == "move":
            r.translate(d)
        else:
            if "l" in self._mode:
                r.setLeft(r.left() + d.x())
            if "r" in self._mode:
                r.setRight(r.right() + d.x())
            if "t" in self._mode:
                r.setTop(r.top() + d.y())
            if "b" in self._mode:
                r.setBottom(r.bottom() + d.y())
        self.setRect(r.normalized())
        self._place_label()

    def mouseReleaseEvent(self, event) -> None:
        if self._mode is None:
            return
        self._mode = None
        if self.rect() != self._rect0:
            self.overlay.commit_box(self.track, self.rect())

    def contextMenuEvent(self, event) -> None:
        menu = QMenu()
        add = menu.addAction("Add keyframe at the playhead")
        add.setEnabled(not self.keyframe)
        delete = menu.addAction("Delete this keyframe")
        delete.setEnabled(self.keyframe)
        chosen = menu.exec(event.screenPos())
        if chosen is add:
            self.overlay.doc.add_box_keyframe(self.track)
        elif chosen is delete:
            i = self.overlay.keyframe_index(self.track)
            if i is not None:
                self.overlay.doc.delete_box(i)
        event.accept()


class HandleItem(QGraphicsEllipseItem):
    """A small draggable point (a trajectory point or a contact); reports the drop."""

    def __init__(
        self,
        color: QColor,
        on_drop: Callable[[QPointF], None],
        on_press: Callable[[], None],
        radius: float = 5,
    ) -> None:
        super().__init__(-radius, -radius, 2 * radius, 2 * radius)
        self.on_drop, self.on_press = on_drop, on_press
        self.setFlag(QGraphicsItem.GraphicsItemFlag.ItemIgnoresTransformations)
        self.setFlag(QGraphicsItem.GraphicsItemFlag.ItemIsMovable)
        self.setCursor(Qt.CursorShape.PointingHandCursor)
        pen = QPen(QColor(20, 20, 20), 1.2)
        self.setPen(pen)
        self.setBrush(color)
        self.setZValue(30)
        self._start = QPointF()
        self.dragging = False

    def mousePressEvent(self, event) -> None:
        self._start = self.pos()
        self.dragging = True
        self.on_press()
        super().mousePressEvent(event)

    def mouseReleaseEvent(self, event) -> None:
        super().mouseReleaseEvent(event)
        self.dragging = False
        if self.pos() != self._start:
            self.on_drop(self.pos())


class TrajectoryItem(QGraphicsObject):
    """A gripper path: segments coloured by time and the current position at the playhead."""

    def __init__(self, points: list[tuple[float, float, float]], duration: float, size: tuple[float, float]):
        super().__init__()
        self.points, self.duration, self.size = points, max(duration, 1e-6), size
        self.setZValue(5)
        self.setAcceptedMouseButtons(Qt.MouseButton.NoButton)  # the handles are what is edited
        w, h = size
        xs = [p[1] * w for p in points] or [0.0]
        ys = [p[2] * h for p in points] or [0.0]
        self._bounds = QRectF(min(xs) - 4, min(ys) - 4, max(xs) - min(xs) + 8, max(ys) - min(ys) + 8)

    def boundingRect(self) -> QRectF:
        return self._bounds

    def paint(self, painter: QPainter, _option, _widget=None) -> None:
        w, h = self.size
        pen = QPen()
        pen.setCosmetic(True)
        pen.setWidthF(2.5)
        pen.setCapStyle(Qt.PenCapStyle.RoundCap)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        for (t0, x0, y0), (_t1, x1, y1) in zip(self.points, self.points[1:], strict=False):
            pen.setColor(time_color(t0 / self.duration, 230))
            painter.setPen(pen)
            painter.drawLine(QPointF(x0 * w, y0 * h), QPointF(x1 * w, y1 * h))


class ChipItem(QGraphicsItem):
    """Text on a dark rounded chip that stays the same size at any zoom, drawn just above its position."""

    def __init__(
        self, point_size: int = 11, color: QColor | None = None, parent=None, margin: int = 14
    ) -> None:
        super().__init__(parent)
        self.text = ""
        self.color = QColor(255, 255, 255) if color is None else QColor(color)
        self.margin = margin
        self.setFlag(QGraphicsItem.GraphicsItemFlag.ItemIgnoresTransformations)
        self.setZValue(40)
        self.font = QFont()
        self.font.setPointSize(point_size)
        self.font.setBold(True)

    def set_text(self, text: str, color: QColor | None = None) -> None:
        if text != self.text or (color is not None and color != self.color):
            self.prepareGeometryChange()
            self.text = text
            if color is not None:
                self.color = QColor(color)
            self.update()

    def boundingRect(self) -> QRectF:
        fm = QFontMetrics(self.font)
        pad = max(4, fm.height() // 4)
        return QRectF(
            0, -fm.height() - self.margin, fm.horizontalAdvance(self.text) + 4 * pad, fm.height() + pad
        )

    def paint(self, painter: QPainter, _option, _widget=None) -> None:
        if not self.text:
            return
        r = self.boundingRect()
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(QColor(0, 0, 0, 170))
        painter.drawRoundedRect(r, 4, 4)
        painter.setPen(self.color)
        painter.setFont(self.font)
        painter.drawText(r, Qt.AlignmentFlag.AlignCenter, self.text)


class NameItem(ChipItem):
    """The subtask under the playhead, in the frame's bottom-left corner."""

    def __init__(self) -> None:
        super().__init__(point_size=11, margin=6)
        self.setTransform(QTransform.fromTranslate(6, 0))  # screen pixels off the frame's corner
