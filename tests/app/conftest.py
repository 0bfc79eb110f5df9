"""GUI test fixtures: the main window on the demo dataset, locally or linked to a real backend.

Settings go to a per-test ini file (never ~/.config), dialogs that would block a
test are switched off, and annotations with every kind of item are built from
the demo's ground truth (the kinematic engine predicts segments only), so the
overlays have boxes, trajectories and contacts to draw and edit.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from core.annotations import QA, Box, Contact, DialogueTurn, EpisodeAnnotation, Segment, Trajectory
from core.dataset import Dataset
from core.demo.writer import load_ground_truth

WAIT_MS = 30_000  # generous for a shared 2-core machine; a wait, never a timing assertion


@pytest.fixture(autouse=True)
def _gui_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "settings.ini"
    monkeypatch.setenv("ROBO_ANNOTATE_SETTINGS", str(path))
    monkeypatch.setenv("ROBO_ANNOTATE_NO_DIALOGS", "1")
    return path


def truth_annotation(
    root: Path, episode: int, dataset_id: str = "demo", box_every: int = 15
) -> EpisodeAnnotation:
    """The demo episode's ground truth as an annotation with every kind of item (source 'truth@demo')."""
    ds = Dataset(root)
    rec = load_ground_truth(root)["episodes"][episode]
    fps, n = ds.fps, rec["length"]
    src = "truth@demo"
    label = rec["object"]["label"]
    boxes = [
        Box(t=i / fps, camera=cam, label=label, kind="current", xyxy=tuple(per_frame[i]), source=src)
        for cam, per_frame in rec["boxes"].items()
        for i in range(0, n, box_every)
    ]
    trajectories = [
        Trajectory(camera=cam, points=[(i / fps, *pts[i]) for i in range(0, n, 3)], source=src)
        for cam, pts in rec["gripper"].items()
    ]
    first = rec["segments"][0]["name"]
    return EpisodeAnnotation(
        dataset=dataset_id,
        episode=episode,
        duration=n / fps,
        fps=fps,
        task=rec["task"],
        segments=[
            Segment(name=s["name"], start=s["start"], end=s["end"], source=src) for s in rec["segments"]
        ],
        boxes=boxes,
        trajectories=trajectories,
        contacts=[
            Contact(t=c["t"], camera=c["camera"], x=c["x"], y=c["y"], source=src) for c in rec["contacts"]
        ],
        dialogue=[
            DialogueTurn(
                t=0.5, skill=first, user_prompt=f"please {first}", robot_utterance="On it.", source=src
            )
        ],
        qa=[QA(t=2.0, camera=ds.cameras[0], question="What will be picked?", answer=label, source=src)],
        model=src,
        uncertainty=0.25,
    )


@pytest.fixture
def demo_ds(demo_root: Path) -> Dataset:
    return Dataset(demo_root)


def wait_frame(qtbot, win, index: int | None = None) -> None:
    """Until every camera has painted the frame under the playhead (or `index`)."""
    want = win.doc.frame if index is None else index
    qtbot.waitUntil(lambda: all(v.frame_index == want for v in win.player.views.values()), timeout=WAIT_MS)
    qtbot.wait(30)  # the paint event after the pixmap swap


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
