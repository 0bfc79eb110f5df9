"""GUI test fixtures: the main window on the demo dataset, locally or linked to a real backend.

Settings go to a per-test ini file (never ~/.config), dialogs that would block a
test are switched off, and annotations with every kind of item are built from
the demo's ground truth (tests.fixtures.gui.truth_annotation), so the overlays
have boxes, trajectories and contacts to draw and edit. `backend` is a real
`robo-backend serve` child process and `linked` makes windows linked to it.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from core.dataset import Dataset
from tests.fixtures.gui import wait_frame
from tests.fixtures.link import DATASET, ServerProcess, fast_link, serve_copy


@pytest.fixture(autouse=True)
def _gui_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "settings.ini"
    monkeypatch.setenv("ROBO_ANNOTATE_SETTINGS", str(path))
    monkeypatch.setenv("ROBO_ANNOTATE_NO_DIALOGS", "1")
    return path


@pytest.fixture
def demo_ds(demo_root: Path) -> Dataset:
    return Dataset(demo_root)


@pytest.fixture
def local_window(qtbot, demo_ds: Dataset) -> Iterator:
    """The main window with no backend, episode 0 open and its first frame on screen."""
    from app.ui.main_window import MainWindow

    win = MainWindow(demo_ds, "demo", None, user="tester")
    qtbot.addWidget(win)
    win.resize(1400, 900)
    win.show()
    qtbot.waitExposed(win)
    win.open_episode(0)
    wait_frame(qtbot, win, 0)
    yield win
    win.close()


@pytest.fixture
def backend(demo_root, tmp_path) -> ServerProcess:
    server = ServerProcess(serve_copy(demo_root, tmp_path), tmp_path / "store.db").start()
    yield server
    server.stop()


@pytest.fixture
def linked(qtbot, backend, tmp_path):
    """The window on the served copy of the demo, linked to the backend, its link started."""
    made = []

    def make(user: str = "alice", endpoint: str | None = None):
        link = fast_link(endpoint or backend.bind, tmp_path / f"journal-{user}", user)
        from app.ui.main_window import MainWindow

        win = MainWindow(Dataset(backend.datasets / DATASET), DATASET, link)
        qtbot.addWidget(win)
        win.resize(1400, 900)
        win.show()
        link.start()
        made.append((win, link))
        return win, link

    yield make
    for win, link in made:
        win.close()
        link.close()
