"""The timeline: subtask track, dialogue/QA markers and state/action plots (pyqtgraph).

All rows share one time axis (seconds), zoom (mouse wheel) and pan (drag on an
empty area), and show the playhead, which can be dragged to scrub. Segment
boundaries are draggable lines that snap to the dataset's frame grid while they
move; the drop becomes one undoable edit. A click on a segment selects it, a
double click renames it in place, and the right-click menu splits at the
playhead, merges with the next, inserts and deletes. The plots show the chosen
state/action channels; the gripper channel is chosen by default, since its
opening and closing mark the grasp and release. The items it is drawn with are
app/ui/timeline_items.py.
"""

from __future__ import annotations

import html

import numpy as np
import pyqtgraph as pg
import shiboken6
from PySide6.QtCore import QPointF, Qt, Signal
from PySide6.QtGui import QAction, QColor
from PySide6.QtWidgets import (
    QGraphicsItem,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QMenu,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from app.document import EpisodeDocument
from app.ui.timeline_items import AXIS_WIDTH, InlineEdit, SegmentBars, SnapLine, track_plot
from core.dataset import Dataset, EpisodeSignals
from core.errors import RoboAnnotateError

CACHED = QGraphicsItem.CacheMode.DeviceCoordinateCache
PLAYHEAD_COLOR = QColor(255, 214, 64)
SIGNAL_COLORS = ("#4fc3f7", "#ffb74d", "#81c784", "#e57373", "#ba68c8", "#fff176", "#90a4ae", "#f06292")
DIALOGUE_COLOR = QColor(120, 200, 255)
QA_COLOR = QColor(255, 150, 200)


class Timeline(QWidget):
    """Subtasks, markers and signal plots of the open episode, on one shared time axis."""

    message = Signal(str)

    def __init__(self, dataset: Dataset, doc: EpisodeDocument, parent=None) -> None:
        super().__init__(parent)
        self.dataset, self.doc = dataset, doc
        self.fps = dataset.fps
        self.signals: EpisodeSignals | None = None
        self.channels: list[tuple[str, int]] = []
        self._chosen: set[tuple[str, str]] | None = None  # (feature, dim name) kept across episodes
        self._boundaries: list[SnapLine] = []
        self._rename: QLineEdit | None = None

        pg.setConfigOptions(antialias=True)
        self.graphics = pg.GraphicsLayoutWidget()
        self.graphics.setBackground(QColor(26, 27, 31))
        self.graphics.ci.setSpacing(2)
        self.graphics.ci.setContentsMargins(2, 4, 8, 2)

        self.track = track_plot("subtasks", [(0.5, "subtasks")])
        self.bars = SegmentBars()
        self.track.addItem(self.bars)
        self.bars.clicked.connect(self._on_track_click)
        self.bars.context.connect(self._on_track_context)
        self.graphics.addItem(self.track, row=0, col=0)

        self.markers = track_plot("markers", [(0.72, "dialogue"), (0.28, "QA")])
        self.marker_points = pg.ScatterPlotItem(size=12, pxMode=True, hoverable=True)
        self.marker_points.sigClicked.connect(self._on_marker_click)
        self.markers.addItem(self.marker_points)
        self.graphics.addItem(self.markers, row=1, col=0)

        self.plot = pg.PlotItem()
        self.plot.setMenuEnabled(False)
        self.plot.hideButtons()
        self.plot.setMouseEnabled(x=True, y=False)
        self.plot.showGrid(x=True, y=True, alpha=0.15)
        self.plot.getAxis("left").setWidth(AXIS_WIDTH)
        self.plot.setLabel("bottom", "time", units="s")
        self.graphics.addItem(self.plot, row=2, col=0)
        self.graphics.ci.layout.setRowStretchFactor(0, 2)
        self.graphics.ci.layout.setRowStretchFactor(1, 1)
        self.graphics.ci.layout.setRowStretchFactor(2, 5)
        for p in (self.track, self.markers):
            p.setXLink(self.plot)
            p.setMaximumHeight(64 if p is self.track else 44)
            p.setMinimumHeight(34 if p is self.track else 28)
        self.plot.scene().sigMouseClicked.connect(self._on_scene_click)
        # The playhead moves up to 60 times a second; everything under it is static between edits,
        # so it is painted from cached pixmaps instead of re-running pyqtgraph's Python paint code.
        for p in (self.track, self.markers, self.plot):
            for ax in ("left", "bottom"):
                p.getAxis(ax).setCacheMode(CACHED)
        self.bars.setCacheMode(CACHED)

        self.playheads: list[pg.InfiniteLine] = []
        for p in (self.track, self.markers, self.plot):
            line = pg.InfiniteLine(
                angle=90,
                movable=True,
                pen=pg.mkPen(PLAYHEAD_COLOR, width=2),
                hoverPen=pg.mkPen(QColor(255, 240, 160), width=3),
            )
            line.setZValue(100)
            line.sigDragged.connect(self._on_playhead_drag)
            p.addItem(line, ignoreBounds=True)
            self.playheads.append(line)

        self.channel_button = QToolButton()
        self.channel_button.setText("Channels ▾")
        self.channel_button.setToolTip("Choose the state and action channels to plot")
        self.channel_button.setPopupMode(QToolButton.ToolButtonPopupMode.InstantPopup)
        self.channel_menu = QMenu(self)
        self.channel_button.setMenu(self.channel_menu)
        fit = QToolButton()
        fit.setText("Fit")
        fit.setToolTip("Show the whole episode")
        fit.clicked.connect(self.zoom_to_fit)
        self.legend = QLabel("")
        self.legend.setObjectName("signalKey")
        self.legend.setTextFormat(Qt.TextFormat.RichText)
        self.info = QLabel("")
        self.info.setObjectName("timelineInfo")
        top = QHBoxLayout()
        top.setContentsMargins(6, 2, 6, 0)
        top.addWidget(QLabel("Timeline"))
        top.addWidget(self.info)
        top.addStretch(1)
        top.addWidget(self.legend)
        top.addWidget(fit)
        top.addWidget(self.channel_button)
        box = QVBoxLayout(self)
        box.setContentsMargins(0, 0, 0, 0)
        box.setSpacing(0)
        box.addLayout(top)
        box.addWidget(self.graphics, 1)

        doc.loaded.connect(self._on_loaded)
        doc.changed.connect(self._refresh_annotation)
        doc.selection_changed.connect(lambda _s: self._refresh_annotation())
        doc.playhead_changed.connect(self._on_playhead)

    # ------------------------------------------------------------ episode

    def _on_loaded(self) -> None:
        ann = self.doc.annotation
        if ann is None:
            return
        for p in (self.track, self.markers, self.plot):
            p.getViewBox().setLimits(xMin=0, xMax=ann.duration, minXRange=4 / self.fps)
        self._load_signals(ann.episode)
        self._refresh_annotation()
        self.zoom_to_fit()
        self._on_playhead(self.doc.playhead)

    def zoom_to_fit(self) -> None:
        if self.doc.annotation is not None:
            self.plot.setXRange(0, self.doc.duration, padding=0)

    def _load_signals(self, episode: int) -> None:
        self.signals = None
        try:
            self.signals = self.dataset.signals(episode)
        except RoboAnnotateError as exc:
            self.message.emit(f"cannot plot the signals of episode {episode}: {exc}")
        self._build_channel_menu()
        self._replot()

    def _build_channel_menu(self) -> None:
        self.channel_menu.clear()
        self.channels = []
        if self.signals is None:
            return
        for feature, names in self.signals.names.items():
            for dim, _name in enumerate(names):
                self.channels.append((feature, dim))
        if self._chosen is None:  # first episode: the gripper of every feature, else the first dim
            grip = {(f, self.signals.names[f][d]) for f, d in self.signals.find("gripper")}
            self._chosen = grip or {(f, n[0]) for f, n in list(self.signals.names.items())[:1] if n}
        for feature, dim in self.channels:
            name = self.signals.names[feature][dim]
            act = QAction(f"{feature}: {name}", self.channel_menu)
            act.setCheckable(True)
            act.setChecked((feature, name) in self._chosen)
            act.toggled.connect(lambda on, f=feature, n=name: self.choose_channel(f, n, on))
            self.channel_menu.addAction(act)

    def chosen_channels(self) -> list[tuple[str, str]]:
        if self.signals is None or not self._chosen:
            return []
        return [
            (f, self.signals.names[f][d])
            for f, d in self.channels
            if (f, self.signals.names[f][d]) in self._chosen
        ]

    def choose_channel(self, feature: str, name: str, on: bool) -> None:
        chosen = set(self._chosen or ())
        if on:
            chosen.add((feature, name))
        else:
            chosen.discard((feature, name))
        self._chosen = chosen
        self._replot()

    def _replot(self) -> None:
        for item in list(self.plot.listDataItems()):
            self.plot.removeItem(item)
        self.legend.setText("")
        if self.signals is None:
            return
        keys = []
        t = self.signals.frame_index / self.fps
        for k, (feature, name) in enumerate(self.chosen_channels()):
            dim = self.signals.names[feature].index(name)
            y = self.signals.channels[feature][:, dim].astype(np.float64)
            short = "action" if feature == "action" else feature.rsplit(".", 1)[-1]
            color = SIGNAL_COLORS[k % len(SIGNAL_COLORS)]
            style = Qt.PenStyle.DashLine if feature == "action" else Qt.PenStyle.SolidLine
            curve = self.plot.plot(t, y, pen=pg.mkPen(color, width=1.6, style=style))
            curve.setCacheMode(CACHED)
            mark = "┅┅" if feature == "action" else "━━"
            keys.append(f'<span style="color:{color}">{mark}</span>&nbsp;{html.escape(f"{short}: {name}")}')
        # The key sits above the plot, not in it, so it never hides the curves.
        self.legend.setText("&nbsp;&nbsp;&nbsp;".join(keys))
        self.plot.enableAutoRange(axis="y")

    # ------------------------------------------------------------ annotation

    def _refresh_annotation(self) -> None:
        ann = self.doc.annotation
        if ann is None:
            return
        sel = self.doc.selection
        selected = sel.index if sel is not None and sel.kind == "segments" else None
        self.bars.set_segments(ann.segments, ann.duration, selected)
        self._rebuild_boundaries()
        spots = [
            {
                "pos": (d.t, 0.72),
                "data": ("dialogue", i),
                "brush": DIALOGUE_COLOR,
                "symbol": "s",
                "pen": pg.mkPen("w", width=2) if sel == ("dialogue", i, -1) else pg.mkPen(None),
            }
            for i, d in enumerate(ann.dialogue)
        ] + [
            {
                "pos": (q.t, 0.28),
                "data": ("qa", i),
                "brush": QA_COLOR,
                "symbol": "d",
                "pen": pg.mkPen("w", width=2) if sel == ("qa", i, -1) else pg.mkPen(None),
            }
            for i, q in enumerate(ann.qa)
        ]
        self.marker_points.setData(spots)
        n = len(ann.segments)
        who = ann.model or "no model yet"
        self.info.setText(
            f"   {n} subtask{'s' * (n != 1)} · {len(ann.dialogue)} dialogue · {len(ann.qa)} QA · from {who}"
        )

    def _rebuild_boundaries(self) -> None:
        for line in self._boundaries:
            if line.moving:
                return  # never pull a line out from under the mouse
        for line in self._boundaries:
            self.track.removeItem(line)
        self._boundaries = []
        segs = self.doc.annotation.segments
        for b in range(1, len(segs)):
            line = SnapLine(
                self.fps,
                pos=segs[b].start,
                movable=True,
                pen=pg.mkPen(QColor(240, 240, 240), width=2),
                hoverPen=pg.mkPen(QColor(255, 214, 64), width=4),
                bounds=(segs[b - 1].start + 1 / self.fps, segs[b].end - 1 / self.fps),
            )
            line.setZValue(50)
            line.setToolTip(f"boundary {segs[b - 1].name} | {segs[b].name}: drag to move")
            line.sigPositionChangeFinished.connect(lambda ln, b=b: self._on_boundary_dropped(b, ln))
            self.track.addItem(line, ignoreBounds=True)
            self._boundaries.append(line)

    def _on_boundary_dropped(self, b: int, line: SnapLine) -> None:
        if not self.doc.move_boundary(b, line.value()):
            self._rebuild_boundaries()

    def boundary_lines(self) -> list[SnapLine]:
        return list(self._boundaries)

    def _on_track_click(self, t: float, double: bool) -> None:
        i = self.doc.segment_index(t)
        if i is None:
            return
        self.doc.select("segments", i)
        if double:
            self.start_rename(i)

    def _on_track_context(self, t: float, screen_pos) -> None:
        i = self.doc.segment_index(t)
        if i is not None:
            self.doc.select("segments", i)
        menu = QMenu(self)
        split = menu.addAction("Split at playhead")
        merge = menu.addAction("Merge with next")
        merge.setEnabled(i is not None and i + 1 < len(self.doc.annotation.segments))
        rename = menu.addAction("Rename…")
        rename.setEnabled(i is not None)
        insert = menu.addAction("Insert subtask at playhead")
        delete = menu.addAction("Delete")
        delete.setEnabled(i is not None)
        chosen = menu.exec(screen_pos)
        if chosen is split:
            self.doc.split_segment()
        elif chosen is merge:
            self.doc.merge_with_next(i)
        elif chosen is rename and i is not None:
            self.start_rename(i)
        elif chosen is insert:
            self.doc.insert_segment()
        elif chosen is delete:
            self.doc.delete_segment(i)

    def start_rename(self, i: int | None = None) -> QLineEdit | None:
        """An inline editor over the segment; Enter renames, Escape or clicking away cancels."""
        if i is None:
            sel = self.doc.selection
            i = sel.index if sel is not None and sel.kind == "segments" else self.doc.segment_index()
        ann = self.doc.annotation
        if ann is None or i is None or not 0 <= i < len(ann.segments):
            return None
        seg = ann.segments[i]
        vb = self.track.getViewBox()
        a = vb.mapViewToScene(QPointF(seg.start, 0.9))
        b = vb.mapViewToScene(QPointF(seg.end, 0.1))
        pa = self.graphics.mapTo(self, self.graphics.mapFromScene(a))
        pb = self.graphics.mapTo(self, self.graphics.mapFromScene(b))
        if self._rename is not None and shiboken6.isValid(self._rename):
            self._rename.deleteLater()
        edit = InlineEdit(seg.name, self)
        x = max(0, min(pa.x(), self.width() - 160))
        edit.setGeometry(int(x), int(pa.y()), int(max(160, pb.x() - pa.x())), int(max(24, pb.y() - pa.y())))
        edit.committed.connect(lambda text, i=i: self.doc.rename_segment(i, text))
        edit.show()
        edit.setFocus()
        edit.selectAll()
        self._rename = edit
        return edit

    def _on_marker_click(self, _item, points, _ev=None) -> None:
        if len(points):
            kind, i = points[0].data()
            self.doc.select(kind, i)
            t = getattr(self.doc.annotation, kind)[i].t
            self.doc.set_playhead(t)

    # ------------------------------------------------------------ playhead

    def _on_playhead_drag(self, line: pg.InfiniteLine) -> None:
        self.doc.set_playhead(line.value())

    def _on_playhead(self, t: float) -> None:
        for line in self.playheads:
            if abs(line.value() - t) > 1e-9:
                line.blockSignals(True)
                line.setValue(t)
                line.blockSignals(False)
        (x0, x1), _ = self.plot.getViewBox().viewRange()
        if not x0 <= t <= x1 and x1 > x0:  # follow the playhead (playback, jumps)
            width = x1 - x0
            start = min(max(t - 0.1 * width, 0.0), max(self.doc.duration - width, 0.0))
            self.plot.setXRange(start, start + width, padding=0)

    def _on_scene_click(self, ev) -> None:
        if ev.button() != Qt.MouseButton.LeftButton or ev.isAccepted():
            return
        vb = self.plot.getViewBox()
        if vb.sceneBoundingRect().contains(ev.scenePos()):
            self.doc.set_playhead(vb.mapSceneToView(ev.scenePos()).x())
