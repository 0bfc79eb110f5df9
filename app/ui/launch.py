"""Starting the review app: `run_gui` (what `robo-annotate open/demo` calls) and screenshots.

With `screenshot`, the window is rendered offscreen once the episode's annotation
(its prediction included) has arrived, at a moment that shows something (the first
contact, else 40 % in), saved as a PNG, and the app exits.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from PySide6.QtCore import QEventLoop, QTimer
from PySide6.QtWidgets import QApplication, QMessageBox

from app.ui.main_window import MainWindow
from app.ui.settings import settings
from app.ui.theme import THEMES, apply_theme
from core.dataset import Dataset
from core.errors import RoboAnnotateError


def wait_until(done: Callable[[], bool], timeout: float) -> bool:
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


def prepare_screenshot(win: MainWindow, timeout: float = 60.0) -> bool:
    """Wait for the episode's annotation (prediction included), pick a telling moment, paint it."""
    doc = win.doc

    def annotated() -> bool:
        ann = doc.annotation
        return doc.ready and ann is not None and bool(ann.segments or ann.boxes)

    ok = wait_until(annotated, timeout) if win.link is not None else True
    ann = doc.annotation
    if ann is not None:
        t = ann.contacts[0].t if ann.contacts else ann.duration * 0.4
        doc.set_playhead(t)
        i = doc.segment_index()
        if i is not None:
            doc.select("segments", i)
    shown: list[int] = []
    win.player.frame_displayed.connect(lambda idx, _tok: shown.append(idx))
    win.player.request_frame()
    wait_until(lambda: doc.frame in shown, 20.0)
    wait_until(lambda: False, 0.3)  # let late paints (axes, legends) settle
    return ok


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
        ok = prepare_screenshot(win)
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
