"""Track from the GUI: Ctrl+T on a selected keyframe, progress and cancel, results as one undo step.

`TrackController` turns the selection into a `Track` request (the track's
person-placed keyframes as anchors, the gaps on both sides of the selected one),
sends it through the backend link (its worker thread does the socket I/O; here
only signals arrive), shows the frames done with a Cancel button in the status
bar, and applies the result to the document as one undoable edit: the tracked
keyframes between the neighbouring person-placed ones are replaced, nothing a
person placed is touched. When a person corrects a keyframe of a tracked track
(a drag, a new point), the gaps beside it are tracked again, as CVAT does.
A partial result (the target lost, a frame unreadable, a cancel) is applied too,
and the status bar says where it stopped.
"""

from __future__ import annotations

from dataclasses import dataclass

from PySide6.QtCore import QObject, Qt, QTimer
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QHBoxLayout, QProgressBar, QToolButton, QWidget

from core.annotations import TIME_EPS, box_tracks
from core.tracks import anchor_points, box_anchors, trajectory_anchor_times

# A correction is re-tracked once the person let go for this long (a nudge series is one).
RETRACK_DELAY_MS = 400


@dataclass
class _Pending:
    episode: int
    kind: str  # "boxes" or "trajectories"
    key: tuple | int  # the box track, or the trajectory's index
    promote: float | None  # the selected keyframe's time, made a person's when the result lands
    camera: str


class TrackController(QObject):
    """Owns the Track actions of a MainWindow (needs its doc, link, dataset and status bar)."""

    def __init__(self, window) -> None:
        super().__init__(window)
        self.win = window
        self.doc = window.doc
        self.link = window.link
        self.pending: dict[str, _Pending] = {}
        self.last_result = None  # the latest TrackResult applied (tests and the status bar read it)
        self._retrack_queue: list[tuple] = []
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(RETRACK_DELAY_MS)
        self._timer.timeout.connect(self._retrack)
        self._progress_widget()
        if self.link is not None:
            self.link.track_progress.connect(self._on_progress)
            self.link.track_finished.connect(self._on_finished)
        self.doc.keyframe_corrected.connect(self._on_corrected)

    # ------------------------------------------------------------ UI

    def _progress_widget(self) -> None:
        box = QWidget()
        row = QHBoxLayout(box)
        row.setContentsMargins(0, 0, 0, 0)
        self.bar = QProgressBar()
        self.bar.setMaximumWidth(180)
        self.bar.setMaximumHeight(16)
        self.cancel_button = QToolButton()
        self.cancel_button.setText("Cancel")
        self.cancel_button.setToolTip("Stop tracking (what was tracked so far is kept)")
        self.cancel_button.clicked.connect(self.cancel)
        row.addWidget(self.bar)
        row.addWidget(self.cancel_button)
        self.progress = box
        box.hide()
        self.win.statusBar().addPermanentWidget(box)

    def add_actions(self, menu) -> None:
        self.track_action = self._action(
            menu,
            "&Track from selected keyframe",
            self.track_selected,
            "Ctrl+T",
            "Follow the selected box or gripper point forwards and backwards through the episode",
        )
        self.cancel_action = self._action(menu, "&Cancel tracking", self.cancel, "Ctrl+Shift+T")
        self.retrack_action = QAction("Re-track after corrections", self.win, checkable=True)
        self.retrack_action.setChecked(True)
        self.retrack_action.setStatusTip(
            "Moving a tracked keyframe tracks again up to the neighbouring ones you placed"
        )
        menu.addAction(self.retrack_action)
        for act in (self.track_action, self.cancel_action):
            act.setEnabled(self.link is not None)

    def _action(self, menu, text, slot, shortcut, tip="") -> QAction:
        act = QAction(text, self.win)
        act.setShortcut(QKeySequence(shortcut))
        act.setShortcutContext(Qt.ShortcutContext.WindowShortcut)
        if tip:
            act.setStatusTip(tip)
        act.triggered.connect(lambda _c=False: slot())
        menu.addAction(act)
        self.win.addAction(act)
        return act

    def _say(self, text: str) -> None:
        self.win.show_message(text)

    # ------------------------------------------------------------ requests

    def track_selected(self) -> str | None:
        """Track from the selected box keyframe or trajectory point; returns the request id."""
        if self.link is None:
            self._say("tracking runs in the backend: open the dataset with a backend to track")
            return None
        ann, sel = self.doc.annotation, self.doc.selection
        if ann is None or sel is None or sel.kind not in ("boxes", "trajectories"):
            self._say("select a box keyframe or a gripper point to track from (draw one with B or T)")
            return None
        if sel.kind == "boxes":
            box = ann.boxes[sel.index]
            return self._track_box(box.track_key, box.t)
        traj = ann.trajectories[sel.index]
        if not 0 <= sel.sub < len(traj.points):
            self._say("select one gripper point of the trajectory to track from")
            return None
        return self._track_points(sel.index, traj.points[sel.sub][0])

    def _gaps(self, times: list[float], t: float) -> tuple[list[int], float]:
        """Gaps beside the anchor at t (after adding it), and the anchor's exact time."""
        j = min(range(len(times)), key=lambda i: abs(times[i] - t))
        return [j, j + 1], times[j]

    def _track_box(self, track: tuple[str, str, str], t: float) -> str | None:
        ann = self.doc.annotation
        frames = box_tracks(ann.boxes).get(track, [])
        anchors = box_anchors(frames, track)
        chosen = next((b for b in frames if abs(b.t - t) <= TIME_EPS), None)
        promote = None
        if chosen is not None and chosen not in anchors:
            anchors = sorted([*anchors, chosen], key=lambda b: b.t)
            promote = chosen.t  # tracking from a tracked keyframe: it becomes the person's
        if not anchors:
            self._say("this box track has no keyframe to start from")
            return None
        gaps, _at = self._gaps([b.t for b in anchors], t)
        camera, label, kind = track
        rid = self.link.track(
            self.doc.dataset_id,
            ann.episode,
            camera,
            "box",
            [(b.t, b.xyxy) for b in anchors],
            gaps=gaps,
            label=label,
            kind=kind,
        )
        self.pending[rid] = _Pending(ann.episode, "boxes", track, promote, camera)
        self._started(f"tracking '{label}' on {camera.rsplit('.', 1)[-1]}")
        return rid

    def _track_points(self, index: int, t: float) -> str | None:
        ann = self.doc.annotation
        traj = ann.trajectories[index]
        points = anchor_points(traj)
        promote = None
        if not any(abs(p[0] - t) <= TIME_EPS for p in points):
            chosen = next(p for p in traj.points if abs(p[0] - t) <= TIME_EPS)
            points = sorted([*points, chosen], key=lambda p: p[0])
            promote = chosen[0]
        gaps, _at = self._gaps([p[0] for p in points], t)
        rid = self.link.track(
            self.doc.dataset_id,
            ann.episode,
            traj.camera,
            "point",
            [(p[0], (p[1], p[2])) for p in points],
            gaps=gaps,
        )
        self.pending[rid] = _Pending(ann.episode, "trajectories", index, promote, traj.camera)
        self._started(f"tracking the gripper on {traj.camera.rsplit('.', 1)[-1]}")
        return rid

    def _started(self, text: str) -> None:
        self.bar.setRange(0, 0)
        self.bar.setFormat(text)
        self.progress.show()
        self._say(text + " (Ctrl+Shift+T or Cancel to stop)")

    def cancel(self) -> None:
        if not self.pending or self.link is None:
            self._say("no track is running")
            return
        for rid in list(self.pending):
            self.link.cancel_track(rid)
        self._say("cancelling: what was tracked so far is kept")

    # ------------------------------------------------------------ corrections

    def _on_corrected(self, what: tuple) -> None:
        if self.link is None or not self.retrack_action.isChecked():
            return
        if what not in self._retrack_queue:
            self._retrack_queue.append(what)
        self._timer.start()

    def _retrack(self) -> None:
        queue, self._retrack_queue = self._retrack_queue, []
        ann = self.doc.annotation
        if ann is None:
            return
        for kind, key, t in queue:
            if kind == "boxes":
                self._track_box(key, t)
            elif 0 <= key < len(ann.trajectories) and any(
                abs(a - t) <= TIME_EPS for a in trajectory_anchor_times(ann.trajectories[key])
            ):
                self._track_points(key, t)

    # ------------------------------------------------------------ replies

    def _on_progress(self, rid: str, done: int, total: int) -> None:
        if rid not in self.pending:
            return
        self.bar.setRange(0, max(total, 1))
        self.bar.setValue(done)
        self.bar.setFormat(f"tracking {done}/{total}")

    def _on_finished(self, result) -> None:
        job = self.pending.pop(result.id, None)
        if not self.pending:
            self.progress.hide()
        if job is None:
            return
        self.last_result = result
        if result.status == "error":
            self._say(f"tracking failed: {result.error}")
            return
        if job.episode != self.doc.episode:
            self._say(f"a track of episode {job.episode} finished after you left it; track it again there")
            return
        if job.kind == "boxes":
            applied = self.doc.apply_track_boxes(job.key, result.spans, list(result.boxes), job.promote)
        else:
            applied = self.doc.apply_track_points(
                job.key,
                result.spans,
                list(result.points),
                list(result.lost),
                job.promote,
                source=f"tracker:{result.engine}" if result.engine else "",
            )
        n = len(result.boxes) if job.kind == "boxes" else len(result.points)
        text = f"tracked {result.frames} frames: {n} keyframes"
        if result.lost:
            frames = ", ".join(str(round(t * self.doc.fps)) for t in result.lost)
            text += f"; lost the target at frame {frames} (flagged: place a keyframe there)"
        if result.status == "cancelled":
            text = "tracking cancelled; kept " + text
        if result.error:
            text += f"; stopped: {result.error}"
        if not applied and result.status != "cancelled":
            text += " (nothing changed)"
        self._say(text)
