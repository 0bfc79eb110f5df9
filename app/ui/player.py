"""The synchronized multi-camera player.

Every camera of the episode shows the frame under the document's playhead. Frames
are decoded by `core.video.FrameReader` on a worker thread (one decode thread per
camera, so cameras decode in parallel), never on the GUI thread. Requests are
latest-wins: while a person scrubs, the worker skips every request that a newer
one replaced, so the display keeps up with the mouse instead of queueing. Playback
is driven by the wall clock (frames are dropped rather than slowing time down),
so it holds the dataset's fps whenever decoding keeps up. The camera views and their
grid are app/ui/camera_view.py.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
from PySide6.QtCore import QObject, Qt, QTimer, Signal
from PySide6.QtGui import QImage
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QHBoxLayout,
    QLabel,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from app.document import EpisodeDocument
from app.ui.camera_view import CameraGrid, CameraView, camera_size, short_camera
from core.dataset import Dataset, VideoRef
from core.errors import RoboAnnotateError
from core.video import FrameReader

SPEEDS = (0.25, 0.5, 1.0, 2.0, 4.0, 8.0)


def to_qimage(arr: np.ndarray) -> QImage:
    """An RGB uint8 (H, W, 3) array as a QImage that owns its pixels (safe to hand across threads)."""
    h, w = arr.shape[:2]
    arr = np.ascontiguousarray(arr)
    return QImage(arr.data, w, h, arr.strides[0], QImage.Format.Format_RGB888).copy()


@dataclass(frozen=True)
class FrameRequest:
    token: int
    episode: int
    index: int


class FrameLoader(QObject):
    """Decodes the latest requested frame of every camera on a worker thread.

    `request()` only records the wish and wakes the worker; a request that arrives
    while the worker is busy replaces any that was waiting (latest wins).
    """

    # token, frame index, {camera: QImage}, {camera: error message}
    frame_ready = Signal(int, int, object, object)

    def __init__(self, dataset: Dataset, reader: FrameReader | None = None, parent=None) -> None:
        super().__init__(parent)
        self.dataset = dataset
        self.reader = reader or FrameReader(cache_bytes=256 * 2**20)
        self._cond = threading.Condition()
        self._pending: FrameRequest | None = None
        self._stop = False
        self._refs: dict[tuple[int, str], VideoRef | str] = {}
        self._pool = ThreadPoolExecutor(max(1, len(dataset.cameras)), thread_name_prefix="decode")
        self._thread = threading.Thread(target=self._run, name="frame-loader", daemon=True)
        self._thread.start()
        self.skipped = 0  # requests replaced before they were decoded (scrubbing)

    def request(self, token: int, episode: int, index: int) -> None:
        with self._cond:
            if self._pending is not None:
                self.skipped += 1
            self._pending = FrameRequest(token, episode, index)
            self._cond.notify()

    def close(self) -> None:
        with self._cond:
            self._stop = True
            self._cond.notify()
        self._thread.join(5)
        self._pool.shutdown(wait=True, cancel_futures=True)
        self.reader.close()

    def _ref(self, episode: int, camera: str) -> VideoRef | str:
        key = (episode, camera)
        if key not in self._refs:
            try:
                self._refs[key] = self.dataset.video(episode, camera)
            except RoboAnnotateError as exc:
                self._refs[key] = str(exc)
        return self._refs[key]

    def _decode(self, req: FrameRequest, camera: str) -> QImage | str:
        ref = self._ref(req.episode, camera)
        if isinstance(ref, str):
            return ref
        try:
            return to_qimage(self.reader.frame(ref, min(req.index, ref.length - 1)))
        except RoboAnnotateError as exc:
            return str(exc)
        except Exception as exc:  # a decoder bug must not kill the worker
            return f"{ref.path}: cannot decode frame {req.index}: {exc!r}"

    def _run(self) -> None:
        while True:
            with self._cond:
                while self._pending is None and not self._stop:
                    self._cond.wait()
                if self._stop:
                    return
                req, self._pending = self._pending, None
            cams = self.dataset.cameras
            results = list(self._pool.map(lambda c, r=req: self._decode(r, c), cams))
            images = {c: r for c, r in zip(cams, results, strict=True) if isinstance(r, QImage)}
            errors = {c: r for c, r in zip(cams, results, strict=True) if isinstance(r, str)}
            try:
                self.frame_ready.emit(req.token, req.index, images, errors)
            except RuntimeError:  # the receiver is gone: the app is closing
                return


class Player(QWidget):
    """All cameras of the open episode, in sync with the document's playhead, plus transport controls."""

    # frame index and request token once every camera has painted it (for the latency benchmark)
    frame_displayed = Signal(int, int)
    playing_changed = Signal(bool)
    message = Signal(str)

    def __init__(self, dataset: Dataset, doc: EpisodeDocument, parent=None) -> None:
        super().__init__(parent)
        self.dataset, self.doc = dataset, doc
        self.fps = dataset.fps
        self.loader = FrameLoader(dataset)
        self.loader.frame_ready.connect(self._on_frame)
        self.views: dict[str, CameraView] = {}
        self._token = 0
        self._painted: dict[int, set[str]] = {}
        self._token_frame: dict[int, int] = {}
        # token -> perf_counter() of the request: request-to-paint latency (bench/gui.py reads it).
        self.requested_at: dict[int, float] = {}
        self._shown_errors: set[str] = set()
        self.speed = 1.0
        self.direction = 1
        self.loop_segment: tuple[float, float] | None = None
        self._play_t0 = 0.0
        self._play_wall0 = 0.0
        self.frames_shown = 0
        self.last_latency = 0.0

        self.grid_box = CameraGrid()
        for cam in dataset.cameras:
            view = CameraView(cam, camera_size(dataset, cam))
            view.painted.connect(lambda token, c=cam: self._on_painted(c, token))
            self.views[cam] = view
        self.grid_box.set_views(list(self.views.values()))

        self.play_button = QToolButton()
        self.play_button.setText("▶")
        self.play_button.setToolTip("Play / pause (Space)")
        self.play_button.clicked.connect(self.toggle_play)
        self.speed_box = QComboBox()
        for s in SPEEDS:
            self.speed_box.addItem(f"{s:g}×", s)
        self.speed_box.setCurrentIndex(SPEEDS.index(1.0))
        self.speed_box.setToolTip("Playback speed (J / L change it)")
        self.speed_box.currentIndexChanged.connect(lambda i: self.set_speed(SPEEDS[i]))
        self.loop_box = QCheckBox("Loop segment")
        self.loop_box.setToolTip("While playing, repeat the subtask under the playhead")
        self.time_label = QLabel("")
        self.time_label.setObjectName("timeLabel")
        self.time_label.setMinimumWidth(260)
        bar = QHBoxLayout()
        bar.setContentsMargins(6, 2, 6, 2)
        for w in (self.play_button, self.speed_box, self.loop_box):
            bar.addWidget(w)
        bar.addStretch(1)
        bar.addWidget(self.time_label)
        box = QVBoxLayout(self)
        box.setContentsMargins(0, 0, 0, 0)
        box.setSpacing(0)
        box.addWidget(self.grid_box, 1)
        box.addLayout(bar)

        self.timer = QTimer(self)
        self.timer.setTimerType(Qt.TimerType.PreciseTimer)
        self.timer.timeout.connect(self._tick)
        doc.playhead_changed.connect(self._on_playhead)
        doc.loaded.connect(self._on_loaded)

    # ------------------------------------------------------------ frames

    def request_frame(self) -> int:
        """Ask for the frame under the playhead on every camera; returns the request token."""
        if self.doc.episode is None:
            return -1
        self._token += 1
        self._token_frame[self._token] = self.doc.frame
        self._painted[self._token] = set()
        self.requested_at[self._token] = time.perf_counter()
        if len(self._painted) > 64:  # forget tokens that latest-wins skipped
            for old in sorted(self._painted)[:-32]:
                self._painted.pop(old, None)
                self._token_frame.pop(old, None)
                self.requested_at.pop(old, None)
        self.loader.request(self._token, self.doc.episode, self.doc.frame)
        self._update_label()
        return self._token

    def _on_playhead(self, _t: float) -> None:
        self.request_frame()

    def _on_loaded(self) -> None:
        self.stop()
        self._shown_errors.clear()
        self.request_frame()

    def _on_frame(self, token: int, index: int, images: dict, errors: dict) -> None:
        for cam, view in self.views.items():
            view.show_frame(token, index, images.get(cam), errors.get(cam))
        for cam, err in errors.items():
            if err not in self._shown_errors:
                self._shown_errors.add(err)
                self.message.emit(f"camera {short_camera(cam)}: {err}")
        if not self.views:
            self.frame_displayed.emit(index, token)

    def _on_painted(self, cam: str, token: int) -> None:
        seen = self._painted.get(token)
        if seen is None:
            return
        seen.add(cam)
        if len(seen) == len(self.views):
            index = self._token_frame.pop(token, -1)
            del self._painted[token]
            self.frames_shown += 1
            self.last_latency = time.perf_counter() - self.requested_at.pop(token, time.perf_counter())
            self.frame_displayed.emit(index, token)

    def _update_label(self) -> None:
        n = self.doc.n_frames
        state = f"{self.speed:g}×" if self.timer.isActive() else "paused"
        rev = f"  {'◀' if self.direction < 0 else ''}{state}"
        self.time_label.setText(
            f"frame {self.doc.frame:>4} / {max(n - 1, 0)}   {self.doc.playhead:7.3f} s / {self.doc.duration:.3f} s{rev}"
        )

    # ------------------------------------------------------------ transport

    @property
    def playing(self) -> bool:
        return self.timer.isActive()

    def play(self, direction: int = 1) -> None:
        if self.doc.episode is None:
            return
        self.direction = 1 if direction >= 0 else -1
        at_end = self.doc.frame >= self.doc.n_frames - 1
        if self.direction > 0 and at_end:
            self.doc.set_frame(0)
        self.loop_segment = None
        if self.loop_box.isChecked():
            i = self.doc.segment_index()
            if i is not None:
                seg = self.doc.annotation.segments[i]
                self.loop_segment = (seg.start, seg.end)
        self._play_t0 = self.doc.playhead
        self._play_wall0 = time.perf_counter()
        self.timer.start(max(1, int(500 / (self.fps * self.speed))))
        self.play_button.setText("❚❚")
        self.playing_changed.emit(True)
        self._update_label()

    def stop(self) -> None:
        if self.timer.isActive():
            self.timer.stop()
            self.play_button.setText("▶")
            self.playing_changed.emit(False)
        self._update_label()

    def toggle_play(self) -> None:
        if self.playing:
            self.stop()
        else:
            self.play(1)

    def set_speed(self, speed: float) -> None:
        self.speed = speed
        i = SPEEDS.index(speed) if speed in SPEEDS else -1
        if i >= 0 and self.speed_box.currentIndex() != i:
            self.speed_box.blockSignals(True)
            self.speed_box.setCurrentIndex(i)
            self.speed_box.blockSignals(False)
        if self.playing:
            self.play(self.direction)
        self._update_label()

    def jkl(self, key: str) -> None:
        """J: play backwards (faster on repeat), K: pause, L: play forwards (faster on repeat)."""
        if key == "k":
            self.stop()
            return
        direction = 1 if key == "l" else -1
        if self.playing and self.direction == direction:
            faster = [s for s in SPEEDS if s > self.speed]
            self.set_speed(faster[0] if faster else self.speed)
        else:
            self.set_speed(1.0)
            self.play(direction)

    def _tick(self) -> None:
        elapsed = (time.perf_counter() - self._play_wall0) * self.speed * self.direction
        t = self._play_t0 + elapsed
        end = self.doc.duration - 1 / self.fps
        if self.loop_segment is not None:
            a, b = self.loop_segment
            span = max(b - a, 1 / self.fps)
            if t >= b - 1e-9 or t < a:
                t = a + ((t - a) % span)
        elif t > end + 1e-9:
            self.doc.set_playhead(end)
            self.stop()
            return
        elif t < 0:
            self.doc.set_playhead(0.0)
            self.stop()
            return
        self.doc.set_playhead(t)

    def close(self) -> bool:
        self.timer.stop()
        self.loader.close()
        return super().close()
