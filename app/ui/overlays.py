"""What the annotation looks like on the video, and the handles to edit it there.

One `CameraOverlay` per camera view draws, in the frame's pixel coordinates:
boxes by kind (solid at a keyframe, dashed where interpolated between keyframes),
the gripper trajectory as a polyline coloured by time (blue at the start, red at
the end) with draggable points near the playhead, contact points, and the name of
the subtask under the playhead. Each layer can be switched off. Drags only move
the item on screen; the edit goes to the document on release, as one undoable
command, and the overlay then redraws from the document.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable

from PySide6.QtCore import QObject, QPointF, QRectF, Qt, Signal
from PySide6.QtGui import QBrush, QColor, QFont, QFontMetrics, QPainter, QPen, QTransform
from PySide6.QtWidgets import (
    QGraphicsEllipseItem,
    QGraphicsItem,
    QGraphicsObject,
    QGraphicsRectItem,
    QInputDialog,
    QMenu,
)

from app.document import EpisodeDocument
from core.annotations import BOX_KINDS, TIME_EPS, box_tracks, interpolate_box, interpolate_point
from core.tracks import is_tracked

LAYERS = ("boxes", "trajectory", "contacts", "subtask")
LAYER_TITLES = {
    "boxes": "Boxes",
    "trajectory": "Gripper trajectory",
    "contacts": "Contact points",
    "subtask": "Subtask name",
}
KIND_COLORS = {
    "current": QColor(64, 200, 255),
    "final": QColor(110, 230, 120),
    "contact": QColor(255, 170, 60),
    "gripper": QColor(230, 110, 255),
}
CONTACT_COLOR = QColor(255, 80, 80)
# Where a tracker lost its target: drawn in this colour, for a person to place a keyframe.
LOST_COLOR = QColor(255, 45, 45)
# Trajectory points this close to the playhead (seconds) get a draggable handle.
HANDLE_WINDOW_S = 0.35
# Contacts this close to the playhead are drawn at full strength.
CONTACT_WINDOW_S = 0.25
HANDLE_PX = 8.0


class LayerToggles(QObject):
    """Which overlay layers are shown; shared by every camera view."""

    changed = Signal()

    def __init__(self, parent=None) -> None:
        super().__init__(parent)
        self.shown = dict.fromkeys(LAYERS, True)

    def set(self, layer: str, on: bool) -> None:
        if self.shown.get(layer) != on:
            self.shown[layer] = on
            self.changed.emit()

    def __getitem__(self, layer: str) -> bool:
        return self.shown[layer]


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


class CameraOverlay(QObject):
    """Draws the document's items of one camera into a camera view's scene and edits them."""

    def __init__(self, view, doc: EpisodeDocument, layers: LayerToggles) -> None:
        super().__init__(view)
        self.view, self.doc, self.layers = view, doc, layers
        self.camera: str = view.camera
        self.scene = view.scene()
        self.boxes: dict[tuple[str, str, str], BoxItem] = {}
        self.trajectories: list[TrajectoryItem] = []
        self.traj_handles: list[list[HandleItem]] = []
        self._handle_times: list[list[float]] = []  # per trajectory, its points' times (sorted)
        self._handle_shown: list[tuple[int, int]] = []  # per trajectory, the handles now visible
        self.traj_markers: list[QGraphicsEllipseItem] = []
        self.lost_marks: list[tuple[float, QGraphicsEllipseItem]] = []  # (time, mark) where tracking stopped
        self.contacts: list[tuple[int, HandleItem]] = []
        self.name_item = NameItem()
        self.scene.addItem(self.name_item)
        self._tracks: dict[tuple[str, str, str], list] = {}
        doc.loaded.connect(self.rebuild)
        doc.changed.connect(self.rebuild)
        doc.playhead_changed.connect(self.update_time)
        doc.selection_changed.connect(lambda _s: self.update_time())
        layers.changed.connect(self.rebuild)
        self.scene.sceneRectChanged.connect(lambda _r: self.rebuild())
        view.setContextMenuPolicy(Qt.ContextMenuPolicy.DefaultContextMenu)
        self.rebuild()

    # ------------------------------------------------------------ geometry

    @property
    def size(self) -> tuple[float, float]:
        r = self.scene.sceneRect()
        return r.width(), r.height()

    def _to_scene(self, xyxy) -> QRectF:
        w, h = self.size
        x1, y1, x2, y2 = xyxy
        return QRectF(QPointF(x1 * w, y1 * h), QPointF(x2 * w, y2 * h))

    def _to_unit(self, p: QPointF) -> tuple[float, float]:
        w, h = self.size
        return p.x() / w, p.y() / h

    # ------------------------------------------------------------ building

    def _clear(self) -> None:
        for item in [
            *self.boxes.values(),
            *self.trajectories,
            *self.traj_markers,
            *(m for _t, m in self.lost_marks),
        ]:
            self.scene.removeItem(item)
        self.lost_marks.clear()
        for handles in self.traj_handles:
            for hnd in handles:
                self.scene.removeItem(hnd)
        for _i, hnd in self.contacts:
            self.scene.removeItem(hnd)
        self.boxes.clear()
        self.trajectories.clear()
        self.traj_handles.clear()
        self._handle_times.clear()
        self._handle_shown.clear()
        self.traj_markers.clear()
        self.contacts.clear()

    def _busy(self) -> bool:
        """A drag is under way: redrawing now would yank the item from under the mouse."""
        return any(b.dragging for b in self.boxes.values()) or any(
            h.dragging for hs in self.traj_handles for h in hs
        )

    def rebuild(self) -> None:
        if self._busy():
            return
        self._clear()
        ann = self.doc.annotation
        if ann is None:
            self.name_item.set_text("")
            return
        w, h = self.size
        self._tracks = {k: v for k, v in box_tracks(ann.boxes).items() if k[0] == self.camera}
        if self.layers["boxes"]:
            for track in self._tracks:
                item = BoxItem(self, track)
                self.scene.addItem(item)
                self.boxes[track] = item
        if self.layers["trajectory"]:
            for ti, traj in enumerate(ann.trajectories):
                if traj.camera != self.camera or not traj.points:
                    continue
                item = TrajectoryItem(traj.points, ann.duration, (w, h))
                self.scene.addItem(item)
                self.trajectories.append(item)
                handles = []
                for pi, (t, x, y) in enumerate(traj.points):
                    hnd = HandleItem(
                        time_color(t / ann.duration),
                        on_drop=lambda p, ti=ti, pi=pi: self._drop_point(ti, pi, p),
                        on_press=lambda ti=ti, pi=pi: self.doc.select("trajectories", ti, pi),
                        radius=4,
                    )
                    hnd.setPos(x * w, y * h)
                    hnd.setData(0, t)
                    hnd.setToolTip(f"gripper at {t:.2f} s: drag to correct")
                    self.scene.addItem(hnd)
                    handles.append(hnd)
                self.traj_handles.append(handles)
                self._handle_times.append([p[0] for p in traj.points])
                self._handle_shown.append((0, len(handles)))
                marker = QGraphicsEllipseItem(-7, -7, 14, 14)
                marker.setFlag(QGraphicsItem.GraphicsItemFlag.ItemIgnoresTransformations)
                marker.setPen(QPen(QColor(255, 255, 255), 2))
                marker.setBrush(Qt.BrushStyle.NoBrush)
                marker.setZValue(35)
                marker.setData(0, ti)
                self.scene.addItem(marker)
                self.traj_markers.append(marker)
                for lt in traj.lost:
                    pos = interpolate_point(traj.points, lt)
                    mark = QGraphicsEllipseItem(-9, -9, 18, 18)
                    mark.setFlag(QGraphicsItem.GraphicsItemFlag.ItemIgnoresTransformations)
                    pen = QPen(LOST_COLOR, 2.5, Qt.PenStyle.DashLine)
                    mark.setPen(pen)
                    mark.setBrush(Qt.BrushStyle.NoBrush)
                    mark.setZValue(36)
                    mark.setToolTip(f"the tracker lost the gripper at {lt:.2f} s: place a point there (T)")
                    if pos is not None:
                        mark.setPos(pos[0] * w, pos[1] * h)
                    self.scene.addItem(mark)
                    self.lost_marks.append((lt, mark))
        if self.layers["contacts"]:
            for ci, c in enumerate(ann.contacts):
                if c.camera != self.camera:
                    continue
                hnd = HandleItem(
                    CONTACT_COLOR,
                    on_drop=lambda p, ci=ci: self.doc.move_contact(ci, *self._to_unit(p)),
                    on_press=lambda ci=ci: self.doc.select("contacts", ci),
                    radius=6,
                )
                hnd.setPos(c.x * w, c.y * h)
                hnd.setToolTip(f"contact at {c.t:.2f} s: drag to move")
                self.scene.addItem(hnd)
                self.contacts.append((ci, hnd))
        self.update_time()

    def _drop_point(self, ti: int, pi: int, p: QPointF) -> None:
        self.doc.move_trajectory_point(ti, pi, *self._to_unit(p))

    # ------------------------------------------------------------ time

    def update_time(self) -> None:
        ann = self.doc.annotation
        if ann is None:
            return
        t = self.doc.playhead
        sel = self.doc.selection
        selected_box = (
            ann.boxes[sel.index] if sel and sel.kind == "boxes" and sel.index < len(ann.boxes) else None
        )
        for track, item in self.boxes.items():
            frames = self._tracks[track]
            at = interpolate_box(frames, t)
            if at is None:
                item.hide()
                continue
            item.show()
            kf = next((b for b in frames if abs(b.t - t) <= TIME_EPS), None) if at[1] else None
            item.place(
                self._to_scene(at[0]),
                at[1],
                selected_box is not None and selected_box.track_key == track,
                lost=kf is not None and kf.lost,
                tracked=kf is not None and is_tracked(kf.source),
            )
        for k, handles in enumerate(self.traj_handles):
            times = self._handle_times[k]
            lo = bisect.bisect_left(times, t - HANDLE_WINDOW_S - 1e-9)
            hi = bisect.bisect_right(times, t + HANDLE_WINDOW_S + 1e-9)
            old_lo, old_hi = self._handle_shown[k]
            for i in range(old_lo, old_hi):  # only the handles entering or leaving the window change
                if not lo <= i < hi:
                    handles[i].setVisible(False)
            for i in range(lo, hi):
                handles[i].setVisible(True)
                # Where points pile up (a pause), the one at the playhead is on top.
                handles[i].setZValue(30 - abs(times[i] - t))
            self._handle_shown[k] = (lo, hi)
        for marker in self.traj_markers:
            traj = ann.trajectories[marker.data(0)]
            pos = interpolate_point(traj.points, t)
            if pos is not None:
                w, h = self.size
                marker.setPos(pos[0] * w, pos[1] * h)
        for lt, mark in self.lost_marks:
            mark.setVisible(abs(lt - t) <= HANDLE_WINDOW_S)
        for ci, hnd in self.contacts:
            near = abs(ann.contacts[ci].t - t) <= CONTACT_WINDOW_S
            hnd.setOpacity(1.0 if near else 0.35)
            hnd.setScale(1.4 if near else 1.0)
            # Only a contact at (about) this time is editable; a faded one must not steal a box drag.
            hnd.setAcceptedMouseButtons(Qt.MouseButton.LeftButton if near else Qt.MouseButton.NoButton)
        if self.layers["subtask"]:
            i = self.doc.segment_index()
            self.name_item.set_text(ann.segments[i].name if i is not None else "")
        else:
            self.name_item.set_text("")
        self.name_item.setPos(0, self.size[1])

    # ------------------------------------------------------------ edits

    def keyframe_index(self, track: tuple[str, str, str]) -> int | None:
        """Index in annotation.boxes of the track's keyframe at the playhead, if there is one."""
        ann = self.doc.annotation
        for i, b in enumerate(ann.boxes if ann else []):
            if b.track_key == track and abs(b.t - self.doc.playhead) < 0.5 / self.doc.fps:
                return i
        return None

    def select_track(self, track: tuple[str, str, str]) -> None:
        """Select the keyframe at the playhead, else the track's nearest keyframe."""
        ann = self.doc.annotation
        if ann is None:
            return
        candidates = [
            (abs(b.t - self.doc.playhead), i) for i, b in enumerate(ann.boxes) if b.track_key == track
        ]
        if candidates:
            self.doc.select("boxes", min(candidates)[1])

    def commit_box(self, track: tuple[str, str, str], rect: QRectF) -> None:
        (x1, y1), (x2, y2) = self._to_unit(rect.topLeft()), self._to_unit(rect.bottomRight())
        if not self.doc.set_box(track, (x1, y1, x2, y2)):
            self.rebuild()  # refused: put the box back where the document says

    def context_menu(self, scene_pos: QPointF, screen_pos) -> None:
        """The view's right-click menu on empty frame area: new box or contact here."""
        x, y = self._to_unit(scene_pos)
        if not (0 <= x <= 1 and 0 <= y <= 1) or self.doc.annotation is None:
            return
        menu = QMenu()
        add_box = menu.addAction("New box here…")
        add_contact = menu.addAction("Contact point here")
        chosen = menu.exec(screen_pos)
        if chosen is add_contact:
            self.doc.add_contact(self.camera, x, y)
        elif chosen is add_box:
            label, ok = QInputDialog.getText(self.view, "New box", "Object label:")
            if not ok or not label.strip():
                return
            kind, ok = QInputDialog.getItem(self.view, "New box", "Kind:", list(BOX_KINDS), 0, False)
            if ok:
                self.doc.add_box(self.camera, label.strip(), kind, (x - 0.08, y - 0.08, x + 0.08, y + 0.08))
