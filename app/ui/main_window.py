"""The main window: player in the middle, episode browser, inspector and timeline in docks.

`MainWindow` lays out the views over one `ReviewSession` (the document and what each
backend event does to it, app/session.py) and shows what the session says: backend
state, model, unsaved edits, prediction progress, conflicts (app/ui/conflict_dialog.py).
With `link=None` the app is a local viewer whose edits live in the undo stack only.
Menus and their keys are built here; the dock layout, the window geometry, the theme
and the overlay layers are remembered between runs. Export is app/ui/export_dialog.py,
start-up and screenshots app/ui/launch.py (`run_gui`).
"""

from __future__ import annotations

from typing import Any

import shiboken6
from PySide6.QtCore import Qt
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import (
    QApplication,
    QDockWidget,
    QLabel,
    QMainWindow,
    QMessageBox,
    QProgressBar,
    QWidget,
)

from app.session import ReviewSession
from app.ui.browser import EpisodeBrowser
from app.ui.conflict_dialog import ConflictDialog
from app.ui.draw_tool import DrawTool
from app.ui.export_dialog import ExportController
from app.ui.inspector import Inspector
from app.ui.overlays import LAYER_TITLES, LAYERS, CameraOverlay, LayerToggles
from app.ui.player import Player
from app.ui.settings import settings
from app.ui.theme import THEMES, apply_theme
from app.ui.timeline import Timeline
from app.ui.tracking import TrackController
from core.dataset import Dataset
from core.protocol import ModelInfo

__all__ = ["ConflictDialog", "MainWindow", "model_status", "settings"]

LAYOUT_VERSION = 1
STATE_TEXT = {
    "connecting": "backend: connecting…",
    "alive": "backend: alive",
    "busy": "backend: busy",
    "dead": "backend: not reachable",
    "local": "no backend (local only)",
}


class MainWindow(QMainWindow):
    """The review app's window for one dataset."""

    def __init__(
        self, dataset: Dataset, dataset_id: str, link: Any = None, user: str | None = None, parent=None
    ) -> None:
        super().__init__(parent)
        self.dataset, self.dataset_id, self.link = dataset, dataset_id, link
        self.setWindowTitle(f"RoboAnnotate — {dataset_id}")
        self.setObjectName("MainWindow")
        self.setDockOptions(
            QMainWindow.DockOption.AnimatedDocks
            | QMainWindow.DockOption.AllowNestedDocks
            | QMainWindow.DockOption.AllowTabbedDocks
        )
        self.session = ReviewSession(dataset, dataset_id, link, user=user, parent=self)
        self.doc = self.session.doc
        self.layers = LayerToggles(self)
        self.player = Player(dataset, self.doc)
        self.setCentralWidget(self.player)
        self.overlays = {
            cam: CameraOverlay(view, self.doc, self.layers) for cam, view in self.player.views.items()
        }
        for cam, view in self.player.views.items():
            view.context_hook = self.overlays[cam].context_menu
        self.timeline = Timeline(dataset, self.doc)
        self.inspector = Inspector(self.doc, dataset.cameras)
        self.browser = EpisodeBrowser(dataset)
        screen = QApplication.primaryScreen()
        if screen is not None:  # a first run's size; a saved geometry replaces it in _restore
            avail = screen.availableGeometry()
            self.resize(min(1600, int(avail.width() * 0.92)), min(1000, int(avail.height() * 0.92)))
        self.docks = {
            "episodes": self._dock("Episodes", self.browser, Qt.DockWidgetArea.LeftDockWidgetArea),
            "inspector": self._dock("Inspector", self.inspector, Qt.DockWidgetArea.RightDockWidgetArea),
            "timeline": self._dock("Timeline", self.timeline, Qt.DockWidgetArea.BottomDockWidgetArea),
        }
        self._default_layout()
        self._status_bar()
        self.draw = DrawTool(self, settings())  # B / T / C on the cameras
        self.tracking = TrackController(self)  # Ctrl+T, progress, cancel, re-track on correction
        self.exports = ExportController(self)  # File > Export…, run off the GUI thread
        self._menus()

        for source in (self.doc, self.player, self.timeline, self.session):
            source.message.connect(self.show_message)
        s = self.session
        s.state_changed.connect(self._show_state)
        s.model_changed.connect(self._on_model)
        s.status_changed.connect(self.browser.model.set_status)
        s.episode_opened.connect(self.browser.set_current)
        s.predict_progress.connect(self._on_progress)
        s.conflict_arrived.connect(self._on_conflict)
        s.unsent_changed.connect(self._update_unsent)
        self.browser.episode_activated.connect(self.open_episode)
        self.browser.next_requested.connect(self.next_in_queue)
        s.set_state(s.backend_state)
        if s.model is not None:
            self._on_model(s.model)
        self._restore()

    @property
    def backend_state(self) -> str:
        return self.session.backend_state

    # ------------------------------------------------------------ layout

    def _dock(self, title: str, widget: QWidget, area) -> QDockWidget:
        dock = QDockWidget(title, self)
        dock.setObjectName(f"dock-{title.lower()}")
        dock.setWidget(widget)
        dock.setFeatures(
            QDockWidget.DockWidgetFeature.DockWidgetMovable
            | QDockWidget.DockWidgetFeature.DockWidgetFloatable
            | QDockWidget.DockWidgetFeature.DockWidgetClosable
        )
        self.addDockWidget(area, dock)
        return dock

    def _default_layout(self) -> None:
        for dock in self.docks.values():
            dock.setFloating(False)
            dock.show()
        self.addDockWidget(Qt.DockWidgetArea.LeftDockWidgetArea, self.docks["episodes"])
        self.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, self.docks["inspector"])
        self.addDockWidget(Qt.DockWidgetArea.BottomDockWidgetArea, self.docks["timeline"])
        self.setCorner(Qt.Corner.BottomLeftCorner, Qt.DockWidgetArea.LeftDockWidgetArea)
        self.setCorner(Qt.Corner.BottomRightCorner, Qt.DockWidgetArea.RightDockWidgetArea)
        side = max(260, min(340, self.width() // 5))
        self.resizeDocks(
            [self.docks["episodes"], self.docks["inspector"]], [side, side], Qt.Orientation.Horizontal
        )
        self.resizeDocks([self.docks["timeline"]], [self._timeline_height(side)], Qt.Orientation.Vertical)

    def _timeline_height(self, side: int) -> int:
        """Give the timeline what the cameras, laid out at their aspect, leave over."""
        n = max(len(self.player.views), 1)
        aspect = 4 / 3
        if self.player.views:
            r = next(iter(self.player.views.values())).scene().sceneRect()
            aspect = r.width() / max(r.height(), 1)
        central = max(self.width() - 2 * side - 16, 200)
        budget = self.height() - 120  # menu, status bar, transport bar, dock titles
        best = None
        for cols in range(1, n + 1):
            rows = -(-n // cols)
            frame_w = central / cols
            need = rows * frame_w / aspect
            if need > 0.62 * budget:  # too tall: the frames shrink to what is left
                frame_w *= 0.62 * budget / need
                need = 0.62 * budget
            if best is None or frame_w > best[0]:
                best = (frame_w, need)
        return int(min(max(budget - best[1], 240), 0.6 * budget))

    def _status_bar(self) -> None:
        bar = self.statusBar()
        self.progress = QProgressBar()
        self.progress.setMaximumWidth(180)
        self.progress.setMaximumHeight(16)
        self.progress.hide()
        self.state_label = QLabel()
        self.state_label.setObjectName("backendState")
        self.model_label = QLabel("model: —")
        self.unsent_label = QLabel()
        self.unsent_label.setObjectName("unsent")
        for w in (self.progress, self.state_label, self.model_label, self.unsent_label):
            bar.addPermanentWidget(w)

    def _action(self, menu, text: str, slot, shortcut=None, tip: str = "") -> QAction:
        act = QAction(text, self)
        if shortcut is not None:
            keys = shortcut if isinstance(shortcut, list) else [shortcut]
            act.setShortcuts([QKeySequence(k) for k in keys])
        act.setShortcutContext(Qt.ShortcutContext.WindowShortcut)
        if tip:
            act.setStatusTip(tip)
        act.triggered.connect(lambda _checked=False: slot())
        if menu is not None:
            menu.addAction(act)
        self.addAction(act)
        return act

    def _menus(self) -> None:
        mb = self.menuBar()
        m = mb.addMenu("&File")
        self.export_action = self._action(
            m, "&Export…", self.export_dialog, "Ctrl+E", "Write accepted annotations"
        )
        m.addSeparator()
        self._action(m, "&Quit", self.close, "Ctrl+Q")

        m = mb.addMenu("&Edit")
        undo = self.doc.undo_stack.createUndoAction(self, "&Undo")
        undo.setShortcuts([QKeySequence("Ctrl+Z")])
        redo = self.doc.undo_stack.createRedoAction(self, "&Redo")
        redo.setShortcuts([QKeySequence("Ctrl+Shift+Z"), QKeySequence("Ctrl+Y")])
        for act in (undo, redo):
            act.setShortcutContext(Qt.ShortcutContext.WindowShortcut)
            m.addAction(act)
            self.addAction(act)
        self.undo_action, self.redo_action = undo, redo
        m.addSeparator()
        self._action(m, "&Split at playhead", lambda: self.doc.split_segment(), "S")
        self._action(m, "&Merge with next", lambda: self.doc.merge_with_next(), "M")
        self._action(m, "&Rename subtask", lambda: self.timeline.start_rename(), "F2")
        self._action(m, "&Insert subtask at playhead", lambda: self.doc.insert_segment(), ["I", "Ins"])
        self._action(m, "&Delete selected", self.delete_selected, "Del")
        m.addSeparator()
        self._action(m, "Add &dialogue turn at playhead", lambda: self.doc.add_dialogue(), "Ctrl+D")
        self._action(m, "Add &question at playhead", self._add_qa, "Ctrl+K")
        m.addSeparator()
        self._action(m, "Accept &suggestion", self.doc.accept_suggestion)
        self._action(m, "Reject s&uggestion", self.doc.reject_suggestion)
        self._action(m, "&Accept episode", self.doc.accept_episode, "Ctrl+Return")

        m = mb.addMenu("&Playback")
        self._action(m, "Play / pause", self.player.toggle_play, "Space")
        self._action(m, "Play backwards (J)", lambda: self.player.jkl("j"), "J")
        self._action(m, "Pause (K)", lambda: self.player.jkl("k"), "K")
        self._action(m, "Play forwards (L)", lambda: self.player.jkl("l"), "L")
        m.addSeparator()
        self._action(m, "Previous frame", lambda: self._step(-1), "Left")
        self._action(m, "Next frame", lambda: self._step(1), "Right")
        self._action(m, "Back one second", lambda: self._step(-round(self.dataset.fps)), "Shift+Left")
        self._action(m, "Forward one second", lambda: self._step(round(self.dataset.fps)), "Shift+Right")
        self._action(m, "First frame", lambda: self._seek_frame(0), "Home")
        self._action(m, "Last frame", lambda: self._seek_frame(self.doc.n_frames - 1), "End")
        self._action(m, "Previous subtask", lambda: self.doc.jump_segment(-1), "Up")
        self._action(m, "Next subtask", lambda: self.doc.jump_segment(1), "Down")
        loop = QAction("Loop segment", self, checkable=True)
        loop.toggled.connect(self.player.loop_box.setChecked)
        self.player.loop_box.toggled.connect(loop.setChecked)
        m.addAction(loop)

        m = mb.addMenu("&View")
        for key, dock in self.docks.items():
            act = dock.toggleViewAction()
            act.setText(f"{key.capitalize()} panel")
            m.addAction(act)
        self._action(m, "Reset layout", self._default_layout)
        m.addSeparator()
        self.layer_actions: dict[str, QAction] = {}
        for layer in LAYERS:
            act = QAction(LAYER_TITLES[layer], self, checkable=True)
            act.setChecked(True)
            act.toggled.connect(lambda on, layer=layer: self.layers.set(layer, on))
            m.addAction(act)
            self.layer_actions[layer] = act
        m.addSeparator()
        theme_menu = m.addMenu("Theme")
        for name in THEMES:
            theme_menu.addAction(name, lambda name=name: self.set_theme(name))
        self._action(m, "Zoom timeline to fit", self.timeline.zoom_to_fit, "Ctrl+0")

        m = mb.addMenu("&Backend")
        self.predict_action = self._action(
            m, "&Predict this episode", lambda: self.predict([self.doc.episode]), "P"
        )
        self.predict_selection_action = self._action(
            m, "Predict &selected episodes", lambda: self.predict(self.browser.selected_episodes())
        )
        self._action(m, "Predict again (&force)", lambda: self.predict([self.doc.episode], force=True))
        self._action(m, "&Next in review queue", self.next_in_queue, "N")
        self._action(m, "&Refresh episode list", self.session.request_episodes, "F5")
        for act in m.actions()[:3]:
            act.setEnabled(self.link is not None)

        m = mb.addMenu("&Track")
        self.draw.add_actions(m)
        m.addSeparator()
        self.tracking.add_actions(m)

        m = mb.addMenu("&Help")
        self._action(m, "&Keyboard shortcuts", self._show_keys, "F1")

    # ------------------------------------------------------------ settings

    def _restore(self) -> None:
        s = settings()
        geometry = s.value("window/geometry")
        state = s.value("window/state")
        if geometry is not None:
            self.restoreGeometry(geometry)
        if state is not None and int(s.value("window/layout", 0)) == LAYOUT_VERSION:
            self.restoreState(state, LAYOUT_VERSION)
        for layer, act in self.layer_actions.items():
            act.setChecked(s.value(f"layers/{layer}", "true") in (True, "true"))

    def save_settings(self) -> None:
        s = settings()
        s.setValue("window/geometry", self.saveGeometry())
        s.setValue("window/state", self.saveState(LAYOUT_VERSION))
        s.setValue("window/layout", LAYOUT_VERSION)
        for layer in LAYERS:
            s.setValue(f"layers/{layer}", self.layers[layer])
        s.sync()

    def set_theme(self, name: str) -> None:
        app = QApplication.instance()
        if app is not None:
            apply_theme(app, name)
        settings().setValue("theme", name)

    # ------------------------------------------------------------ episodes

    def open_episode(self, episode: int) -> None:
        """Show an episode: flush the open one's edits, load this one's annotation from the backend."""
        self.session.open_episode(episode)

    def next_in_queue(self) -> None:
        """The backend's next in its review queue; without one, the browser's next episode."""
        if self.session.request_queue():
            return
        ep = self.browser.next_local(self.doc.episode)
        if ep is not None:
            self.open_episode(ep)

    def predict(self, episodes: list[int | None], force: bool = False) -> None:
        self.session.predict(episodes, force)

    # ------------------------------------------------------------ what the session says

    def _show_state(self, state: str) -> None:
        self.state_label.setText(STATE_TEXT.get(state, f"backend: {state}"))
        self.state_label.setProperty("state", state)
        self.state_label.style().unpolish(self.state_label)
        self.state_label.style().polish(self.state_label)

    def _on_model(self, info: Any) -> None:
        text, tip = model_status(info)
        self.model_label.setText(text)
        self.model_label.setToolTip(tip)

    def _update_unsent(self, *_args) -> None:
        if not shiboken6.isValid(self.doc) or not shiboken6.isValid(self.unsent_label):
            return  # the window is being torn down
        text, pending = self.session.unsent_status()
        self.unsent_label.setText(text)
        self.unsent_label.setProperty("pending", "true" if pending else "false")
        self.unsent_label.style().unpolish(self.unsent_label)
        self.unsent_label.style().polish(self.unsent_label)

    def _on_conflict(self, conflict: Any) -> None:
        dialog = ConflictDialog(conflict, self)
        dialog.exec()
        keep = dialog.choice or "mine"  # closing the dialog keeps the person's own work
        dialog.deleteLater()
        self.session.resolve_conflict(conflict, keep)

    def _on_progress(self, done: int, total: int, message: str) -> None:
        self.progress.setRange(0, max(total, 1))
        self.progress.setValue(done)
        self.progress.setFormat(f"predicting {done}/{total}")
        self.progress.setVisible(done < total)
        if message:
            self.statusBar().showMessage(message, 4000)

    # ------------------------------------------------------------ actions

    def _step(self, frames: int) -> None:
        self.player.stop()
        self.doc.step(frames)

    def _seek_frame(self, index: int) -> None:
        self.player.stop()
        self.doc.set_frame(index)

    def _add_qa(self) -> None:
        self.doc.add_qa(self.dataset.cameras[0] if self.dataset.cameras else "camera")

    def delete_selected(self) -> None:
        sel = self.doc.selection
        if sel is None:
            return
        {
            "segments": self.doc.delete_segment,
            "boxes": self.doc.delete_box,
            "contacts": self.doc.delete_contact,
            "dialogue": self.doc.delete_dialogue,
            "qa": self.doc.delete_qa,
        }.get(sel.kind, lambda _i: None)(sel.index)

    def show_message(self, text: str) -> None:
        self.statusBar().showMessage(text, 10000)

    def shortcut_lines(self) -> list[str]:
        """Every menu action that has a key, by menu: read from the actions, so it stays true."""
        lines: list[str] = []
        for menu_action in self.menuBar().actions():
            menu = menu_action.menu()
            if menu is None:
                continue
            rows = []
            for act in menu.actions():
                keys = [k.toString(QKeySequence.SequenceFormat.NativeText) for k in act.shortcuts()]
                if keys := [k for k in keys if k]:
                    rows.append(f"  {', '.join(keys)}  {act.text().replace('&', '')}")
            if rows:
                lines += [menu_action.text().replace("&", ""), *rows]
        return lines

    def _show_keys(self) -> None:
        QMessageBox.information(
            self,
            "Keyboard shortcuts",
            "\n".join(self.shortcut_lines())
            + "\n\nJ / L again: faster. Drag boundaries, boxes and points with the mouse.",
        )

    def export_dialog(self) -> None:
        self.exports.ask()

    def start_export(self, export_fn, fmt: str, store: str, out: str, unreviewed: bool, force: bool) -> None:
        """Run an export off the GUI thread; the status bar shows its progress and the result."""
        self.exports.start(export_fn, fmt, store, out, unreviewed, force)

    # ------------------------------------------------------------ closing

    def closeEvent(self, event) -> None:
        self.doc.flush()  # the journal has the last edit before the window goes
        self.save_settings()
        self.player.close()
        super().closeEvent(event)


# The held-out numbers worth a glance in the status bar, in this order (trainer.metrics names).
HEADLINE_METRICS = (
    ("score", "score"),
    ("f1@0.5", "F1@0.5s"),
    ("label_acc", "labels"),
    ("box_iou", "box IoU"),
)


def model_status(info: ModelInfo) -> tuple[str, str]:
    """The status bar's model text and its tooltip: engine, model and version, and for a
    fine-tuned model its active-learning round with the round's held-out metrics."""
    text = f"model: {info.engine} · {info.name}@{info.version}"
    tip = [f"engine {info.engine} on {info.device}", f"model {info.name}, version {info.version}"]
    metrics = info.metrics
    if info.round is not None:
        text += f" · round {info.round}"
        tip.append(f"active-learning round {info.round}")
    heads = [f"{label} {metrics[key]:.2f}" for key, label in HEADLINE_METRICS if key in metrics]
    if heads:
        text += " (" + ", ".join(heads) + ")"
    if metrics:
        tip.append("held-out metrics of this round:")
        tip += [f"  {k}: {v:.3f}" for k, v in sorted(metrics.items())]
    return text, "\n".join(tip)
