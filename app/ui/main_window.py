"""The main window: player in the middle, episode browser, inspector and timeline in docks.

`MainWindow` wires the views to one `EpisodeDocument` and the document and views to
the `BackendLink` (or to nothing: with `link=None` the app is a local viewer whose
edits live in the undo stack only). All backend traffic goes through the link's
own thread; everything here reacts to its signals. The dock layout, the window
geometry, the theme and the overlay layers are remembered between runs.

`run_gui` is the entry point `robo-annotate open/demo` calls; with `screenshot`
it renders the window offscreen with the episode's prediction loaded and exits.
"""

from __future__ import annotations

import difflib
import os
import sys
import threading
import time
from pathlib import Path
from typing import Any

import shiboken6
from PySide6.QtCore import QEventLoop, QSettings, Qt, QTimer, Signal
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import (
    QApplication,
    QCheckBox,
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QDockWidget,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QMainWindow,
    QMessageBox,
    QPlainTextEdit,
    QProgressBar,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from app.document import EpisodeDocument
from app.ui.browser import EpisodeBrowser
from app.ui.draw_tool import DrawTool
from app.ui.inspector import Inspector
from app.ui.overlays import LAYER_TITLES, LAYERS, CameraOverlay, LayerToggles
from app.ui.player import Player
from app.ui.theme import THEMES, apply_theme
from app.ui.timeline import Timeline
from app.ui.tracking import TrackController
from core.annotations import EpisodeAnnotation
from core.dataset import Dataset
from core.errors import RoboAnnotateError
from core.protocol import ModelInfo

SETTINGS_ENV = "ROBO_ANNOTATE_SETTINGS"
LAYOUT_VERSION = 1
STATE_TEXT = {
    "connecting": "backend: connecting…",
    "alive": "backend: alive",
    "busy": "backend: busy",
    "dead": "backend: not reachable",
    "local": "no backend (local only)",
}


def settings() -> QSettings:
    """The app's settings; ROBO_ANNOTATE_SETTINGS=path.ini keeps them in a file (tests, portable use)."""
    path = os.environ.get(SETTINGS_ENV)
    if path:
        return QSettings(path, QSettings.Format.IniFormat)
    return QSettings("RoboAnnotate", "robo-annotate")


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


class ExportDialog(QDialog):
    """File > Export…: format, the store to read, the output folder."""

    def __init__(self, formats: tuple[str, ...], store: str, out: str, parent=None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Export annotations")
        form = QFormLayout(self)
        self.fmt = QComboBox()
        self.fmt.addItems(list(formats))
        self.store = QLineEdit(store)
        self.out = QLineEdit(out)
        self.unreviewed = QCheckBox("also episodes not accepted yet")
        self.force = QCheckBox("replace the output folder if it exists")
        for label, edit, pick in (
            ("Store", self.store, self._pick_store),
            ("Output folder", self.out, self._pick_out),
        ):
            row = QHBoxLayout()
            row.addWidget(edit, 1)
            b = QPushButton("…")
            b.clicked.connect(pick)
            row.addWidget(b)
            form.addRow(label, row)
        form.insertRow(0, "Format", self.fmt)
        form.addRow(self.unreviewed)
        form.addRow(self.force)
        buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel
        )
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        form.addRow(buttons)

    def _pick_store(self) -> None:
        path, _ = QFileDialog.getOpenFileName(
            self, "Annotation store", self.store.text(), "SQLite (*.db);;All (*)"
        )
        if path:
            self.store.setText(path)

    def _pick_out(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "Output folder (a new folder is created inside)")
        if path:
            self.out.setText(str(Path(path) / "export"))


class _ExportRunner(QWidget):
    """Runs core.export.export on a worker thread and reports back through signals."""

    progress = Signal(int, int)
    finished = Signal(str, bool)  # summary or error, ok

    def start(self, export_fn, *args, **kwargs) -> threading.Thread:
        def work() -> None:
            try:
                report = export_fn(*args, progress=lambda d, t: self.progress.emit(d, t), **kwargs)
                text = report.summary()
                if report.warnings:
                    text += "\n\n" + "\n".join(report.warnings[:20])
                self.finished.emit(text, True)
            except RoboAnnotateError as exc:
                self.finished.emit(str(exc), False)
            except Exception as exc:  # an exporter bug: say it, keep the app
                self.finished.emit(f"export failed unexpectedly: {exc!r}", False)

        thread = threading.Thread(target=work, name="export", daemon=True)
        thread.start()
        return thread


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
        # A link the caller already started may be past "connecting": start from what it knows.
        self.backend_state = "local" if link is None else str(getattr(link, "state", "connecting"))
        self._predict_requested: set[int] = set()
        self._export_thread: threading.Thread | None = None

        self.doc = EpisodeDocument(
            dataset_id, dataset.fps, link, user=user or getattr(link, "user", None), parent=self
        )
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
        self._menus()

        for source in (self.doc, self.player, self.timeline):
            source.message.connect(self.show_message)
        self.doc.unsent_changed.connect(self._update_unsent)
        self.doc.changed.connect(self._on_doc_changed)
        self.doc.base_revision_changed.connect(self._on_doc_changed)
        self.doc.undo_stack.indexChanged.connect(self._update_unsent)
        self.browser.episode_activated.connect(self.open_episode)
        self.browser.next_requested.connect(self.next_in_queue)
        self._episodes_timer = QTimer(self)
        self._episodes_timer.setSingleShot(True)
        self._episodes_timer.setInterval(400)
        self._episodes_timer.timeout.connect(self._request_episodes)
        if link is not None:
            self._connect_link(link)
            if getattr(link, "model", None) is not None:
                self._on_model(link.model)
        self._restore()

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
        self._set_state(self.backend_state)
        self._update_unsent()

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
        self._action(m, "&Refresh episode list", self._request_episodes, "F5")
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
        try:
            info = self.dataset.episode(episode)
        except RoboAnnotateError as exc:
            self.show_message(str(exc))
            return
        self.doc.open_episode(episode, info.duration, info.task)
        self.browser.set_current(episode)
        if self.link is not None:
            self.link.request_annotation(self.dataset_id, episode)
        self._update_unsent()

    def next_in_queue(self) -> None:
        if self.link is not None and self.backend_state in ("alive", "busy"):
            self.link.request_queue(self.dataset_id, 20)
            return
        ep = self.browser.next_local(self.doc.episode)
        if ep is not None:
            self.open_episode(ep)

    def predict(self, episodes: list[int | None], force: bool = False) -> None:
        eps = [e for e in episodes if e is not None]
        if self.link is None:
            self.show_message(
                "predictions need a backend: start with robo-annotate open DATASET (it starts one)"
            )
            return
        if not eps:
            self.show_message("select episodes in the browser first")
            return
        self._predict_requested.update(eps)
        self.link.predict(self.dataset_id, eps, force)
        self.progress.setRange(0, len(eps))
        self.progress.setValue(0)
        self.progress.setFormat(f"predicting 0/{len(eps)}")
        self.progress.show()

    # ------------------------------------------------------------ link

    def _connect_link(self, link) -> None:
        link.state_changed.connect(self._set_state)
        link.model_changed.connect(self._on_model)
        link.pending_changed.connect(self._update_unsent)
        link.episodes_loaded.connect(self._on_episodes)
        link.annotation_loaded.connect(self._on_annotation)
        link.correction_acked.connect(self._on_acked)
        link.conflict.connect(self._on_conflict)
        link.rejected.connect(self._on_rejected)
        link.predict_progress.connect(self._on_progress)
        link.prediction_ready.connect(self._on_prediction_ready)
        link.episode_changed.connect(self._on_episode_changed)
        link.queue_loaded.connect(self._on_queue)
        link.error.connect(self.show_message)

    def _set_state(self, state: str) -> None:
        was = self.backend_state
        self.backend_state = state
        self.state_label.setText(STATE_TEXT.get(state, f"backend: {state}"))
        self.state_label.setProperty("state", state)
        self.state_label.style().unpolish(self.state_label)
        self.state_label.style().polish(self.state_label)
        if self.link is not None and state == "alive" and was in ("connecting", "dead"):
            self._request_episodes()
            if self.doc.episode is not None and not self.doc.ready:
                self.link.request_annotation(self.dataset_id, self.doc.episode)
        if state == "dead":
            self.show_message(
                "the backend is not reachable: edits are kept in the journal and sent when it is back"
            )

    def _on_model(self, info: Any) -> None:
        text, tip = model_status(info)
        self.model_label.setText(text)
        self.model_label.setToolTip(tip)

    def _update_unsent(self, *_args) -> None:
        if not shiboken6.isValid(self.doc) or not shiboken6.isValid(self.unsent_label):
            return  # the window is being torn down
        if self.link is None:
            n = self.doc.undo_stack.index()
            text = f"local only: {n} edit{'s' * (n != 1)} not saved" if n else "local only"
            pending = n > 0
        else:
            n = int(getattr(self.link, "pending", 0)) + int(self.doc._needs_submit)
            text = f"{n} unsent correction{'s' * (n != 1)}" if n else "all corrections saved"
            pending = n > 0
        self.unsent_label.setText(text)
        self.unsent_label.setProperty("pending", "true" if pending else "false")
        self.unsent_label.style().unpolish(self.unsent_label)
        self.unsent_label.style().polish(self.unsent_label)

    def _request_episodes(self) -> None:
        if self.link is not None:
            self.link.request_episodes(self.dataset_id)

    def _on_episodes(self, dataset: str, status: dict) -> None:
        if dataset != self.dataset_id:
            return
        clean = {
            int(ep): (int(rev), str(review), None if unc is None or unc < 0 else float(unc))
            for ep, (rev, review, unc) in status.items()
        }
        self.browser.model.set_status(clean)

    def _on_annotation(self, dataset: str, episode: int, head: Any, suggestion: Any) -> None:
        if dataset != self.dataset_id:
            return
        if head is not None:
            self.browser.model.set_status({episode: (head.revision, head.review, head.uncertainty)})
        if episode != self.doc.episode:
            return
        self.doc.load(head, suggestion)
        if head is None and episode not in self._predict_requested and self.link is not None:
            self.predict([episode])  # nothing stored yet: ask the engine for a first proposal

    def _on_doc_changed(self, *_args) -> None:
        ann = self.doc.annotation
        if ann is not None and self.doc.ready:
            self.browser.model.set_status(
                {ann.episode: (self.doc.base_revision, ann.review, ann.uncertainty)}
            )
        self._update_unsent()

    def _on_acked(self, uuid: str, revision: int) -> None:
        self.doc.on_acked(uuid, revision)
        self._update_unsent()

    def _on_rejected(self, uuid: str, reason: str) -> None:
        self.doc.on_rejected(uuid, reason)
        self.show_message(f"an edit was refused by the backend: {reason}")
        self._update_unsent()

    def _on_conflict(self, conflict: Any) -> None:
        dialog = ConflictDialog(conflict, self)
        dialog.exec()
        keep = dialog.choice or "mine"  # closing the dialog keeps the person's own work
        dialog.deleteLater()
        new_uuid = self.link.resolve_conflict(conflict, keep) if self.link is not None else None
        self.doc.resolve_conflict(conflict, keep, new_uuid)
        self._update_unsent()

    def _on_progress(self, dataset: str, done: int, total: int, message: str) -> None:
        if dataset != self.dataset_id:
            return
        self.progress.setRange(0, max(total, 1))
        self.progress.setValue(done)
        self.progress.setFormat(f"predicting {done}/{total}")
        self.progress.setVisible(done < total)
        if message:
            self.statusBar().showMessage(message, 4000)

    def _on_prediction_ready(self, dataset: str, episode: int) -> None:
        if dataset != self.dataset_id:
            return
        if episode == self.doc.episode and self.link is not None:
            self.link.request_annotation(dataset, episode)
        self._episodes_timer.start()

    def _on_episode_changed(self, dataset: str, episode: int, revision: int, author: str) -> None:
        if dataset != self.dataset_id:
            return
        self._episodes_timer.start()
        if episode == self.doc.episode and revision > self.doc.base_revision and not self.doc.has_local_edits:
            self.link.request_annotation(dataset, episode)
            self.show_message(f"episode {episode} was changed by {author}; reloaded")

    def _on_queue(self, items: list) -> None:
        for item in items:
            if item.dataset == self.dataset_id and item.episode != self.doc.episode:
                self.open_episode(item.episode)
                return
        self.show_message("the review queue has nothing else for this dataset")

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
        try:
            from core import export as export_mod
        except ImportError as exc:
            QMessageBox.warning(self, "Export", f"export is not available in this install: {exc}")
            return
        if self._export_thread is not None and self._export_thread.is_alive():
            self.show_message("an export is already running")
            return
        s = settings()
        default_out = str(Path.home() / f"{self.dataset_id}-export")
        dialog = ExportDialog(
            export_mod.FORMATS,
            str(s.value("export/store", "")),
            str(s.value("export/out", default_out)),
            self,
        )
        if dialog.exec() != QDialog.DialogCode.Accepted:
            return
        store, out = dialog.store.text().strip(), dialog.out.text().strip()
        if not store or not out:
            QMessageBox.warning(self, "Export", "choose the annotation store and an output folder")
            return
        s.setValue("export/store", store)
        s.setValue("export/out", out)
        self.start_export(
            export_mod.export,
            dialog.fmt.currentText(),
            store,
            out,
            dialog.unreviewed.isChecked(),
            dialog.force.isChecked(),
        )

    def start_export(self, export_fn, fmt: str, store: str, out: str, unreviewed: bool, force: bool) -> None:
        """Run an export off the GUI thread; the status bar shows its progress and the result."""
        self.doc.flush()
        runner = _ExportRunner(self)
        runner.progress.connect(self._on_export_progress)
        runner.finished.connect(self._on_export_done)
        self.progress.setRange(0, 0)
        self.progress.setFormat(f"exporting {fmt}")
        self.progress.show()
        self._export_thread = runner.start(
            export_fn, self.dataset.root, store, fmt, out, include_unreviewed=unreviewed, force=force
        )

    def _on_export_progress(self, done: int, total: int) -> None:
        self.progress.setRange(0, max(total, 1))
        self.progress.setValue(done)
        self.progress.setFormat(f"exporting {done}/{total}")

    def _on_export_done(self, text: str, ok: bool) -> None:
        self.progress.hide()
        self.last_export = (ok, text)
        self.show_message(("export done: " if ok else "export failed: ") + text.splitlines()[0])
        if not os.environ.get("ROBO_ANNOTATE_NO_DIALOGS"):
            box = QMessageBox.information if ok else QMessageBox.warning
            box(self, "Export", text)

    # ------------------------------------------------------------ closing

    def closeEvent(self, event) -> None:
        self.doc.flush()  # the journal has the last edit before the window goes
        self.save_settings()
        self.player.close()
        super().closeEvent(event)

    # ------------------------------------------------------------ screenshot

    def wait_until(self, done, timeout: float) -> bool:
        """Run the event loop until done() or the timeout; True when done."""
        loop = QEventLoop()
        deadline = time.monotonic() + timeout
        timer = QTimer()
        timer.setInterval(20)
        timer.timeout.connect(lambda: (done() or time.monotonic() > deadline) and loop.quit())
        timer.start()
        if not done():
            loop.exec()
        timer.stop()
        return bool(done())

    def prepare_screenshot(self, timeout: float = 60.0) -> bool:
        """Wait for the episode's annotation (prediction included), pick a telling moment, paint it."""

        def annotated() -> bool:
            ann = self.doc.annotation
            return self.doc.ready and ann is not None and bool(ann.segments or ann.boxes)

        ok = self.wait_until(annotated, timeout) if self.link is not None else True
        ann = self.doc.annotation
        if ann is not None:
            t = ann.contacts[0].t if ann.contacts else ann.duration * 0.4
            self.doc.set_playhead(t)
            i = self.doc.segment_index()
            if i is not None:
                self.doc.select("segments", i)
        shown: list[int] = []
        self.player.frame_displayed.connect(lambda idx, _tok: shown.append(idx))
        self.player.request_frame()
        self.wait_until(lambda: self.doc.frame in shown, 20.0)
        self.wait_until(lambda: False, 0.3)  # let late paints (axes, legends) settle
        return ok


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


def _app() -> QApplication:
    app = QApplication.instance()
    if app is None:
        app = QApplication(sys.argv[:1])
    app.setApplicationName("RoboAnnotate")
    app.setOrganizationName("RoboAnnotate")
    return app


def run_gui(
    dataset_path: Path,
    dataset_id: str,
    link: Any,
    screenshot: Path | None = None,
    episode: int | None = None,
) -> int:
    """Open the review app on a dataset; with `screenshot`, render it to a PNG and return."""
    app = _app()
    theme = str(settings().value("theme", "dark"))
    apply_theme(app, theme if theme in THEMES else "dark")
    try:
        dataset = Dataset(dataset_path)
    except RoboAnnotateError as exc:
        if screenshot is None:
            QMessageBox.critical(None, "RoboAnnotate", f"cannot open the dataset:\n{exc}")
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if episode is not None and episode not in dataset.episodes:
        print(
            f"error: {dataset.root}: episode {episode} does not exist ({len(dataset)} episodes)",
            file=sys.stderr,
        )
        return 1
    win = MainWindow(dataset, dataset_id, link)
    if screenshot is not None:
        win.resize(1600, 1000)
        win._default_layout()
    win.show()
    if link is not None:
        link.start()
    first = episode if episode is not None else next(iter(dataset.episodes), None)
    if first is not None:
        win.open_episode(first)
    if screenshot is not None:
        ok = win.prepare_screenshot()
        path = Path(screenshot)
        path.parent.mkdir(parents=True, exist_ok=True)
        saved = win.grab().save(str(path))
        win.close()
        if link is not None:
            link.close()
        if not saved:
            print(f"error: could not write {path}", file=sys.stderr)
            return 1
        if not ok:
            print(
                "warning: no annotation arrived in time; the screenshot shows the episode without one",
                file=sys.stderr,
            )
        return 0
    rc = app.exec()
    if link is not None:
        link.close()
    return rc
