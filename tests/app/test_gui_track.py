"""Drawing and tracking in the real window: B/T/C tools with real mouse events, Ctrl+T against a
real backend (a `robo-backend serve` child process), progress, cancel, undo, re-track on correction,
lost frames flagged, and a screenshot of a track that a person can look at."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from PySide6.QtCore import QEvent, QPointF, Qt

from app.ui.draw_tool import BoxEditor
from app.ui.overlays import LOST_COLOR, BoxItem
from core.annotations import Box, box_tracks
from core.tracks import box_anchors, is_tracked
from tests.fixtures.gui import WAIT_MS, drag, key, loaded, mouse, settled, store_of, wait_frame

FRONT = "observation.images.front"
CTRL = Qt.KeyboardModifier.ControlModifier
RETRACK_WAIT_MS = 600


def _truth(root: Path) -> dict:
    return {r["episode_index"]: r for r in json.loads((root / "ground_truth.json").read_text())["episodes"]}


def _view_point(win, cam: str, x: float, y: float) -> QPointF:
    """Viewport coordinates of a normalized point of a camera's frame."""
    view = win.player.views[cam]
    r = view.scene().sceneRect()
    return QPointF(view.mapFromScene(QPointF(x * r.width(), y * r.height())))


def _draw_box(qtbot, win, cam: str, xyxy, label: str | None = None, kind: str | None = None) -> None:
    """B (unless the box tool is on), drag the box, answer the inline editor (keeping what it remembered unless given)."""
    if win.draw.mode != "box":
        key(qtbot, win, Qt.Key.Key_B)
    assert win.draw.mode == "box"
    view = win.player.views[cam]
    drag(qtbot, view.viewport(), _view_point(win, cam, *xyxy[:2]), _view_point(win, cam, *xyxy[2:]))
    editor = win.draw.editor
    assert isinstance(editor, BoxEditor) and editor.isVisible()
    if label is not None:
        editor.label.selectAll()
        qtbot.keyClicks(editor.label, label)
    if kind is not None:
        editor.kind.setCurrentText(kind)
    qtbot.keyClick(editor.label, Qt.Key.Key_Return)
    qtbot.waitUntil(lambda: win.draw.editor is None, timeout=WAIT_MS)


def _click(qtbot, win, cam: str, x: float, y: float) -> None:
    vp = win.player.views[cam].viewport()
    p = _view_point(win, cam, x, y)
    mouse(vp, QEvent.Type.MouseButtonPress, p, Qt.MouseButton.LeftButton, Qt.MouseButton.LeftButton)
    mouse(vp, QEvent.Type.MouseButtonRelease, p, Qt.MouseButton.LeftButton, Qt.MouseButton.NoButton)
    qtbot.wait(20)


def _box_items(win, cam: str) -> list[BoxItem]:
    return [i for i in win.player.views[cam].scene().items() if isinstance(i, BoxItem)]


# ---------------------------------------------------------------- drawing (no backend needed)


def test_draw_a_box_a_gripper_point_and_a_contact(local_window, qtbot):
    win = local_window
    win.doc.set_frame(12)
    wait_frame(qtbot, win)
    _draw_box(qtbot, win, FRONT, (0.2, 0.3, 0.45, 0.6), label="red cube", kind="final")
    box = win.doc.annotation.boxes[-1]
    assert (box.camera, box.label, box.kind) == (FRONT, "red cube", "final")
    assert box.t == pytest.approx(12 / win.doc.fps) and box.is_human
    assert box.xyxy == pytest.approx((0.2, 0.3, 0.45, 0.6), abs=0.01)
    # the tool stays on; the next box gets the remembered label and kind, and only Enter
    win.doc.set_frame(40)
    _draw_box(qtbot, win, FRONT, (0.3, 0.3, 0.5, 0.5))
    second = win.doc.annotation.boxes[-1]
    assert (second.label, second.kind) == ("red cube", "final")
    assert list(box_tracks(win.doc.annotation.boxes)) == [(FRONT, "red cube", "final")]  # one track
    # a drag on an existing box while the tool is on draws, it does not move the box
    key(qtbot, win, Qt.Key.Key_Escape)
    assert win.draw.mode == ""

    key(qtbot, win, Qt.Key.Key_T)
    _click(qtbot, win, FRONT, 0.5, 0.25)
    win.doc.set_frame(60)
    _click(qtbot, win, FRONT, 0.55, 0.3)
    traj = win.doc.annotation.trajectories[-1]
    assert traj.camera == FRONT and [round(p[0] * win.doc.fps) for p in traj.points] == [40, 60]
    assert traj.anchors == [p[0] for p in traj.points]  # both placed by a person
    key(qtbot, win, Qt.Key.Key_C)
    assert win.draw.mode == "contact"
    _click(qtbot, win, FRONT, 0.6, 0.4)
    contact = win.doc.annotation.contacts[-1]
    assert (contact.x, contact.y) == pytest.approx((0.6, 0.4), abs=0.01)
    key(qtbot, win, Qt.Key.Key_C)  # the same key again: off
    assert win.draw.mode == ""

    # every one of them is an undo step
    assert win.doc.undo_stack.count() == 5
    for _ in range(5):
        key(qtbot, win, Qt.Key.Key_Z, CTRL)
    assert (
        not win.doc.annotation.boxes
        and not win.doc.annotation.trajectories
        and not win.doc.annotation.contacts
    )


def test_esc_drops_a_drawn_box_and_a_label_is_required(local_window, qtbot):
    win = local_window
    key(qtbot, win, Qt.Key.Key_B)
    view = win.player.views[FRONT]
    drag(qtbot, view.viewport(), _view_point(win, FRONT, 0.2, 0.2), _view_point(win, FRONT, 0.4, 0.4))
    editor = win.draw.editor
    editor.label.clear()
    qtbot.keyClick(editor.label, Qt.Key.Key_Return)
    assert editor.isVisible() and "needed" in editor.label.placeholderText()  # no label: not added
    qtbot.keyClick(editor.label, Qt.Key.Key_Escape)
    qtbot.waitUntil(lambda: win.draw.editor is None, timeout=WAIT_MS)
    assert not win.doc.annotation.boxes
    assert win.draw.mode == "box"  # the tool is still on; Esc again turns it off
    key(qtbot, win, Qt.Key.Key_Escape)
    assert win.draw.mode == ""


def test_lost_keyframes_are_flagged_and_correcting_a_tracked_one_asks_for_a_retrack(local_window, qtbot):
    win = local_window
    fps = win.doc.fps
    boxes = [
        Box(
            t=0.0,
            camera=FRONT,
            label="cube",
            kind="current",
            xyxy=(0.2, 0.2, 0.3, 0.3),
            source="human:tester",
        ),
        Box(
            t=1.0,
            camera=FRONT,
            label="cube",
            kind="current",
            xyxy=(0.25, 0.2, 0.35, 0.3),
            source="tracker:cpu@4",
        ),
        Box(
            t=2.0,
            camera=FRONT,
            label="cube",
            kind="current",
            xyxy=(0.25, 0.2, 0.35, 0.3),
            source="tracker:cpu@4",
            lost=True,
        ),
    ]
    ann = win.doc.annotation.__class__(
        dataset="demo", episode=0, duration=win.doc.duration, fps=fps, boxes=boxes
    )
    win.doc.load(ann)
    win.doc.set_playhead(2.0)
    item = _box_items(win, FRONT)[0]
    assert item.lost and item.pen().color() == LOST_COLOR and "tracking lost" in item.label.text
    win.doc.set_playhead(1.0)
    assert _box_items(win, FRONT)[0].tracked and "tracked" in _box_items(win, FRONT)[0].label.text
    asked = []
    win.doc.keyframe_corrected.connect(asked.append)
    # correcting the lost keyframe: it becomes the person's, no longer lost, and a re-track is asked for
    win.doc.set_playhead(2.0)
    assert win.doc.set_box((FRONT, "cube", "current"), (0.4, 0.2, 0.5, 0.3))
    fixed = next(b for b in win.doc.annotation.boxes if b.t == 2.0)
    assert fixed.is_human and not fixed.lost
    assert asked == [("boxes", (FRONT, "cube", "current"), 2.0)]
    assert not win.tracking.track_action.isEnabled()  # no backend here: Track is off, like Predict
    assert win.tracking.track_selected() is None and "backend" in win.statusBar().currentMessage()


# ---------------------------------------------------------------- tracking against a real backend


def _wait_result(qtbot, win, before) -> object:
    qtbot.waitUntil(
        lambda: win.tracking.last_result is not before and not win.tracking.pending, timeout=120_000
    )
    return win.tracking.last_result


def test_track_a_drawn_box_then_correct_it_and_undo(qtbot, backend, linked, tmp_path):
    win, link = linked()
    qtbot.waitUntil(lambda: win.backend_state == "alive", timeout=WAIT_MS)
    loaded(qtbot, win, 0)
    truth = _truth(backend.datasets / "demo")[0]
    track = (FRONT, "cube", "current")
    _draw_box(qtbot, win, FRONT, truth["boxes"][FRONT][0], label="cube", kind="current")
    key(qtbot, win, Qt.Key.Key_Escape)
    win.doc.select("boxes", len(win.doc.annotation.boxes) - 1)
    progress = []
    link.track_progress.connect(lambda rid, d, t: progress.append((d, t)))
    key(qtbot, win, Qt.Key.Key_T, CTRL)
    assert win.tracking.pending and win.tracking.progress.isVisible()
    result = _wait_result(qtbot, win, None)
    assert result.status == "ok", result
    assert progress and progress[-1][0] == progress[-1][1] == result.frames
    assert not win.tracking.progress.isVisible()
    frames = box_tracks(win.doc.annotation.boxes)[track]
    tracked = [b for b in frames if is_tracked(b.source)]
    assert len(tracked) > 3 and max(b.t for b in tracked) > win.doc.duration - 0.2
    assert "tracked" in win.statusBar().currentMessage()

    # The track lands in the store as the person's correction, like any other edit.
    settled(qtbot, win, link)
    with store_of(backend) as s:
        assert len(box_tracks(s.head("demo", 0).boxes)[track]) == len(frames)

    # The same object on the top camera and the gripper on the front one, for the screenshot.
    win.doc.set_frame(0)
    TOP = "observation.images.top"
    _draw_box(qtbot, win, TOP, truth["boxes"][TOP][0], label="cube", kind="current")
    key(qtbot, win, Qt.Key.Key_Escape)
    win.doc.select("boxes", len(win.doc.annotation.boxes) - 1)
    before = win.tracking.last_result
    key(qtbot, win, Qt.Key.Key_T, CTRL)
    assert win.tracking.pending, win.statusBar().currentMessage()
    assert _wait_result(qtbot, win, before).status == "ok"
    key(qtbot, win, Qt.Key.Key_T)
    _click(qtbot, win, FRONT, *truth["gripper"][FRONT][0])
    key(qtbot, win, Qt.Key.Key_T)
    before = win.tracking.last_result
    key(qtbot, win, Qt.Key.Key_T, CTRL)
    assert _wait_result(qtbot, win, before).status == "ok"
    settled(qtbot, win, link)

    # A screenshot of the window with the tracks, the playhead mid-way through the carry.
    frames = box_tracks(win.doc.annotation.boxes)[track]
    mid = sorted(tracked, key=lambda b: b.t)[len(tracked) // 2]
    mid = next(b for b in frames if b.t == mid.t)
    win.doc.set_playhead(mid.t)
    win.doc.select("boxes", win.doc.annotation.boxes.index(mid))
    wait_frame(qtbot, win)
    shot = Path(os.environ.get("ROBO_TRACK_SCREENSHOT", tmp_path / "track.png"))
    shot.parent.mkdir(parents=True, exist_ok=True)
    assert win.grab().save(str(shot)) and shot.stat().st_size > 10_000

    # Correct a tracked keyframe in the middle: it becomes the person's, and both sides are tracked
    # again up to the neighbouring person-placed keyframes (here: the first frame and the end).
    item = next(i for i in _box_items(win, FRONT) if i.track == track)
    view = win.player.views[FRONT]
    centre = QPointF(view.mapFromScene(item.rect().center()))
    before = win.tracking.last_result
    drag(qtbot, view.viewport(), centre, centre + QPointF(6, 0))
    result = _wait_result(qtbot, win, before)
    assert result.status == "ok"
    anchors = box_anchors(win.doc.annotation.boxes, track)
    assert [round(b.t * win.doc.fps) for b in anchors] == [0, round(mid.t * win.doc.fps)]
    assert len(result.spans) == 2 and result.spans[0][1] == pytest.approx(mid.t)

    # Undo takes back the re-track, then the correction; redo brings them back.
    n_after = len(win.doc.annotation.boxes)
    qtbot.wait(RETRACK_WAIT_MS)  # nothing else is queued
    key(qtbot, win, Qt.Key.Key_Z, CTRL)
    key(qtbot, win, Qt.Key.Key_Z, CTRL)
    assert len(box_anchors(win.doc.annotation.boxes, track)) == 1
    key(qtbot, win, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.ShiftModifier)
    key(qtbot, win, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.ShiftModifier)
    assert len(win.doc.annotation.boxes) == n_after


def test_track_the_gripper_and_cancel_a_track(qtbot, backend, linked):
    win, _link = linked()
    qtbot.waitUntil(lambda: win.backend_state == "alive", timeout=WAIT_MS)
    loaded(qtbot, win, 2)
    truth = _truth(backend.datasets / "demo")[2]
    # a gripper point on frame 0, tracked to the end
    key(qtbot, win, Qt.Key.Key_T)
    _click(qtbot, win, FRONT, *truth["gripper"][FRONT][0])
    key(qtbot, win, Qt.Key.Key_T)
    ti = len(win.doc.annotation.trajectories) - 1
    assert win.doc.selection.kind == "trajectories"
    key(qtbot, win, Qt.Key.Key_T, CTRL)
    result = _wait_result(qtbot, win, None)
    assert result.status == "ok" and result.target == "point"
    traj = win.doc.annotation.trajectories[ti]
    assert len(traj.points) > 5 and traj.anchors == [0.0] and traj.source == "tracker:cpu@4"

    # a box track cancelled right away keeps what was tracked, and nothing the person placed is lost
    _draw_box(qtbot, win, FRONT, truth["boxes"][FRONT][0], label="cube")
    key(qtbot, win, Qt.Key.Key_Escape)
    win.doc.select("boxes", len(win.doc.annotation.boxes) - 1)
    before = win.tracking.last_result
    key(qtbot, win, Qt.Key.Key_T, CTRL)
    key(qtbot, win, Qt.Key.Key_T, CTRL | Qt.KeyboardModifier.ShiftModifier)
    result = _wait_result(qtbot, win, before)
    assert result.status in ("cancelled", "ok")  # a very fast track may finish first
    if result.status == "cancelled":
        assert "cancelled" in win.statusBar().currentMessage()
    assert box_anchors(win.doc.annotation.boxes, (FRONT, "cube", "current"))[0].t == 0.0


def test_a_camera_the_backend_does_not_know_is_a_clear_message(qtbot, backend, linked):
    win, link = linked()
    qtbot.waitUntil(lambda: win.backend_state == "alive", timeout=WAIT_MS)
    loaded(qtbot, win, 1)
    rid = link.track(
        "demo", 1, "observation.images.wrist", "box", [(0.0, (0.1, 0.1, 0.3, 0.3))], label="cube"
    )
    win.tracking.pending[rid] = win.tracking.pending.get(rid) or _pending(1)
    qtbot.waitUntil(lambda: not win.tracking.pending, timeout=WAIT_MS)
    assert "tracking failed" in win.statusBar().currentMessage()
    assert "has no camera 'observation.images.wrist'" in win.statusBar().currentMessage()


def _pending(episode: int):
    from app.ui.tracking import _Pending

    return _Pending(
        episode, "boxes", ("observation.images.wrist", "cube", "current"), None, "observation.images.wrist"
    )
