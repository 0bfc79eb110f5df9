"""What the annotation looks like on the video, and the handles to edit it there.

One `CameraOverlay` per camera view draws, in the frame's pixel coordinates:
boxes by kind (solid at a keyframe, dashed where interpolated between keyframes),
the gripper trajectory as a polyline coloured by time (blue at the start, red at
the end) with draggable points near the playhead, contact points, and the name of
the subtask under the playhead. Each layer can be switched off. Drags only move
the item on screen; the edit goes to the document on release, as one undoable
command, and the overlay then redraws from the document. The graphics items it draws
with are app/ui/overlay_items.py.
"""

from __future__ import annotations

import bisect

from PySide6.QtCore import QObject, QPointF, QRectF, Qt, Signal
from PySide6.QtGui import QColor, QPen
from PySide6.QtWidgets import (
    QGraphicsEllipseItem,
    QGraphicsItem,
    QInputDialog,
    QMenu,
)

from app.document import EpisodeDocument
from app.ui.overlay_items import (
    CONTACT_COLOR,
    LOST_COLOR,
    BoxItem,
    HandleItem,
    NameItem,
    TrajectoryItem,
    time_color,
)
from core.annotations import BOX_KINDS, TIME_EPS, box_tracks, interpolate_box, interpolate_point
from core.tracks import is_tracked

LAYERS = ("boxes", "trajectory", "contacts", "subtask")
LAYER_TITLES = {
    "boxes": "Boxes",
    "trajectory": "Gripper trajectory",
    "contacts": "Contact points",
    "subtask": "Subtask name",
}
# Trajectory points this close to the playhead (seconds) get a draggable handle.
HANDLE_WINDOW_S = 0.35
# Contacts this close to the playhead are drawn at full strength.
CONTACT_WINDOW_S = 0.25


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
