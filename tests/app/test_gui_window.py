"""The main window on the demo dataset, no backend: open, play, step, drag, split, rename, undo, boxes."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from PySide6.QtCore import QPoint, QPointF, Qt
from PySide6.QtGui import QImage
from PySide6.QtWidgets import QApplication

from app.ui.launch import run_gui
from app.ui.main_window import MainWindow
from app.ui.overlays import BoxItem
from core import export
from core.annotations import box_tracks
from core.dataset import Dataset
from core.video import FrameReader
from tests.fixtures.gui import LEFT, NONE, WAIT_MS, boundary_point, drag, key, truth_annotation, wait_frame


def shown_pixels(view) -> np.ndarray:
    img = view.pixmap_item.pixmap().toImage().convertToFormat(QImage.Format.Format_RGB888)
    w, h = img.width(), img.height()
    rows = np.frombuffer(img.constBits(), np.uint8, img.bytesPerLine() * h).reshape(h, -1)
    return rows[:, : w * 3].reshape(h, w, 3).copy()  # copy: the buffer dies with `img`


@pytest.fixture
def annotated(local_window, demo_root):
    """The local window with episode 0's ground truth loaded as its annotation."""
    local_window.doc.load(truth_annotation(demo_root, 0))
    return local_window


def test_open_shows_every_camera_the_exact_frame_and_the_gripper_plot(local_window, demo_ds, qtbot):
    win = local_window
    assert set(win.player.views) == set(demo_ds.cameras)
    assert win.browser.model.rowCount() == len(demo_ds)
    assert any("gripper" in name for _f, name in win.timeline.chosen_channels())
    assert len(win.timeline.plot.listDataItems()) == len(win.timeline.chosen_channels()) >= 1
    key(qtbot, win, Qt.Key.Key_End)
    last = demo_ds.episode(0).length - 1
    wait_frame(qtbot, win, last)
    reader = FrameReader()
    for cam, view in win.player.views.items():  # what is on screen is the decoded frame, pixel for pixel
        want = reader.frame(demo_ds.video(0, cam), last)
        assert np.array_equal(shown_pixels(view), want)


def test_keyboard_stepping_and_segment_jumps(annotated, qtbot):
    win = annotated
    fps = round(win.dataset.fps)
    key(qtbot, win, Qt.Key.Key_Right)
    assert win.doc.frame == 1
    key(qtbot, win, Qt.Key.Key_Right, Qt.KeyboardModifier.ShiftModifier)
    assert win.doc.frame == 1 + fps
    key(qtbot, win, Qt.Key.Key_Left)
    assert win.doc.frame == fps
    key(qtbot, win, Qt.Key.Key_Down)
    assert win.doc.playhead == pytest.approx(win.doc.annotation.segments[1].start)
    key(qtbot, win, Qt.Key.Key_Down)
    assert win.doc.playhead == pytest.approx(win.doc.annotation.segments[2].start)
    key(qtbot, win, Qt.Key.Key_Up)
    assert win.doc.playhead == pytest.approx(win.doc.annotation.segments[1].start)
    key(qtbot, win, Qt.Key.Key_End)
    assert win.doc.frame == win.doc.n_frames - 1
    key(qtbot, win, Qt.Key.Key_Home)
    assert win.doc.frame == 0
    wait_frame(qtbot, win, 0)


def test_play_pause_jkl_and_loop(annotated, qtbot):
    win = annotated
    shown0 = win.player.frames_shown
    key(qtbot, win, Qt.Key.Key_Space)
    assert win.player.playing
    qtbot.waitUntil(lambda: win.doc.frame >= 10, timeout=WAIT_MS)
    key(qtbot, win, Qt.Key.Key_Space)
    assert not win.player.playing
    assert win.player.frames_shown > shown0
    key(qtbot, win, Qt.Key.Key_L)
    key(qtbot, win, Qt.Key.Key_L)
    assert win.player.playing and win.player.speed == 2.0 and win.player.direction == 1
    key(qtbot, win, Qt.Key.Key_K)
    assert not win.player.playing
    at = win.doc.frame
    key(qtbot, win, Qt.Key.Key_J)
    assert win.player.direction == -1
    qtbot.waitUntil(lambda: win.doc.frame < at, timeout=WAIT_MS)
    key(qtbot, win, Qt.Key.Key_K)
    # Loop the 'grasp' segment: playback stays inside it.
    grasp = win.doc.annotation.segments[1]
    win.doc.set_playhead(grasp.start)
    win.player.loop_box.setChecked(True)
    win.player.set_speed(4.0)
    win.player.play()
    seen = []
    win.doc.playhead_changed.connect(seen.append)
    qtbot.wait(int(grasp.duration / 4 * 1000 * 2.5))  # long enough to wrap around
    win.player.stop()
    assert seen and all(grasp.start - 1e-9 <= t < grasp.end for t in seen)
    assert any(b < a for a, b in itertools.pairwise(seen))  # it wrapped


def test_drag_a_boundary_snaps_and_undo_redo(annotated, qtbot):
    win = annotated
    before = win.doc.annotation.segments[3].start
    a = boundary_point(win, 3)
    vb = win.timeline.track.getViewBox()
    px_per_s = vb.mapViewToScene(QPointF(1, 0)).x() - vb.mapViewToScene(QPointF(0, 0)).x()
    drag(qtbot, win.timeline.graphics.viewport(), a, a + QPointF(0.31 * px_per_s, 0))
    after = win.doc.annotation.segments[3].start
    assert after == pytest.approx(before + 0.3, abs=1.01 / win.doc.fps)
    assert after * win.doc.fps == pytest.approx(round(after * win.doc.fps))  # on the frame grid
    assert win.doc.annotation.segments[2].end == after
    assert win.doc.undo_stack.count() == 1
    key(qtbot, win, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert win.doc.annotation.segments[3].start == before
    assert win.timeline.boundary_lines()[2].value() == pytest.approx(before)
    key(qtbot, win, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.ShiftModifier)
    assert win.doc.annotation.segments[3].start == after


def test_split_then_rename_inline(annotated, qtbot):
    win = annotated
    n = len(win.doc.annotation.segments)
    segs = win.doc.annotation.segments
    move = max(range(n), key=lambda i: segs[i].end - segs[i].start)  # the longest: room to split
    seg = segs[move]
    name = seg.name
    win.doc.set_frame(round((seg.start + seg.end) / 2 * win.doc.fps))
    key(qtbot, win, Qt.Key.Key_S)
    assert len(win.doc.annotation.segments) == n + 1
    assert win.doc.selection.index == move + 1
    key(qtbot, win, Qt.Key.Key_F2)
    editor = win.timeline._rename
    assert editor is not None and editor.isVisible() and editor.text() == name
    editor.selectAll()
    qtbot.keyClicks(editor, "carry")
    qtbot.keyClick(editor, Qt.Key.Key_Return)
    assert [s.name for s in win.doc.annotation.segments][move : move + 2] == [name, "carry"]
    # The inspector shows the renamed, selected segment.
    assert win.inspector.seg_name.text() == "carry"
    key(qtbot, win, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    key(qtbot, win, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert len(win.doc.annotation.segments) == n


def _box_item(win, cam: str) -> BoxItem:
    items = [i for i in win.player.views[cam].scene().items() if isinstance(i, BoxItem)]
    assert len(items) == 1
    return items[0]


def test_edit_a_box_keyframe_by_dragging_it(annotated, qtbot):
    win = annotated
    cam = win.dataset.cameras[0]
    track = next(k for k in box_tracks(win.doc.annotation.boxes) if k[0] == cam)
    keyframes = box_tracks(win.doc.annotation.boxes)[track]
    win.doc.set_playhead(keyframes[0].t)  # the gripper is still far from the object
    item = _box_item(win, cam)
    assert item.keyframe and item.pen().style() == Qt.PenStyle.SolidLine
    view = win.player.views[cam]
    center = view.mapFromScene(item.rect().center())
    drag(qtbot, view.viewport(), QPointF(center), QPointF(center + QPoint(30, 12)))
    moved = win.doc.box_at(track)[0]
    old = keyframes[0].xyxy
    scale = view.transform().m11()
    w, h = view.scene().sceneRect().width(), view.scene().sceneRect().height()
    assert moved[0] - old[0] == pytest.approx(30 / scale / w, abs=2 / scale / w)
    assert moved[1] - old[1] == pytest.approx(12 / scale / h, abs=2 / scale / h)
    assert moved[2] - moved[0] == pytest.approx(old[2] - old[0])  # moved, not resized
    # Between keyframes the box is interpolated (dashed); resizing it there adds a keyframe.
    n = len(win.doc.annotation.boxes)
    win.doc.set_playhead((keyframes[0].t + keyframes[1].t) / 2)
    item = _box_item(win, cam)
    assert not item.keyframe and item.pen().style() == Qt.PenStyle.DashLine
    corner = view.mapFromScene(item.rect().bottomRight())
    drag(qtbot, view.viewport(), QPointF(corner), QPointF(corner + QPoint(15, 15)))
    assert len(win.doc.annotation.boxes) == n + 1
    assert win.doc.box_at(track)[1]
    assert _box_item(win, cam).keyframe
    key(qtbot, win, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert len(win.doc.annotation.boxes) == n


def test_drag_a_trajectory_point_and_toggle_layers(annotated, qtbot):
    win = annotated
    cam = win.dataset.cameras[1]
    overlay = win.overlays[cam]
    ti = next(i for i, t in enumerate(win.doc.annotation.trajectories) if t.camera == cam)
    pi = 20
    t, x, y = win.doc.annotation.trajectories[ti].points[pi]
    win.doc.set_playhead(t)
    handles = overlay.traj_handles[0]
    handle = handles[pi]
    assert handle.isVisible()
    view = win.player.views[cam]
    p = QPointF(view.mapFromScene(handle.pos()))
    drag(qtbot, view.viewport(), p, p + QPointF(20, 0))
    nt, nx, ny = win.doc.annotation.trajectories[ti].points[pi]
    assert nt == t and nx > x and ny == pytest.approx(y, abs=1e-3)
    assert win.doc.selection == ("trajectories", ti, pi)
    for layer, act in win.layer_actions.items():
        act.setChecked(False)
        assert not win.layers[layer]
    assert not [i for i in view.scene().items() if isinstance(i, BoxItem)]
    assert not overlay.trajectories and not overlay.contacts and overlay.name_item.text == ""
    win.layer_actions["boxes"].setChecked(True)
    assert [i for i in view.scene().items() if isinstance(i, BoxItem)]


def test_inspector_edits_dialogue_and_accepts_the_episode(annotated, qtbot):
    win = annotated
    win.doc.select("dialogue", 0)
    insp = win.inspector
    assert insp.pages.currentIndex() == insp.page_dialogue
    insp.dlg_robot.setPlainText("Reaching for the cylinder.")
    insp.dlg_robot.committed.emit()
    insp.dlg_response.setCurrentText("acknowledgment")
    insp.dlg_response.activated.emit(insp.dlg_response.currentIndex())
    turn = win.doc.annotation.dialogue[0]
    assert (turn.robot_utterance, turn.response_type) == ("Reaching for the cylinder.", "acknowledgment")
    qtbot.mouseClick(insp.accept_button, LEFT)
    assert win.doc.annotation.review == "accepted"
    assert win.browser.model.review(0) == "accepted"
    assert not insp.accept_button.isEnabled()


def test_inspector_fits_its_dock_whatever_is_selected(annotated, qtbot):
    """No panel is wider than the dock shows (there is no horizontal scroll bar to reach it)."""
    win, insp = annotated, annotated.inspector
    win.resizeDocks([win.docks["inspector"]], [1], Qt.Orientation.Horizontal)  # as narrow as it goes

    def fits() -> bool:
        return insp.widget().width() <= insp.viewport().width()

    # The dock's new width reaches the scroll area through queued resize events: wait for them
    # (a loaded machine may take longer than any fixed pause), not for a fixed time.
    qtbot.waitUntil(fits, timeout=5000)
    add = {"add dialogue": win.doc.add_dialogue, "add qa": lambda: win.doc.add_qa(win.dataset.cameras[0])}
    for kind in ("segments", "boxes", "contacts", "dialogue", "qa", None, "add dialogue", "add qa"):
        if kind in add:
            add[kind]()  # as Ctrl+D / Ctrl+K do: a new item, selected
        elif kind is None:
            win.doc.select(None)
        else:
            win.doc.select(kind, 0)
        # Not even for a moment may the shown page be wider than its panel (nothing may be left to
        # lay it out again later: a real window often has no later pass).
        assert insp.pages.width() <= insp.item_box.contentsRect().width(), kind
        qtbot.waitUntil(fits, timeout=5000)
        page = insp.pages.currentWidget()
        right = page.mapTo(insp.viewport(), page.rect().topRight()).x()
        assert right <= insp.viewport().width(), kind
        # ... and the page sits inside its panel's frame.
        box = insp.item_box
        assert page.mapTo(box, page.rect().topRight()).x() <= box.contentsRect().right(), kind


def test_browser_filter_sort_and_next(local_window, qtbot, demo_ds):
    win = local_window
    b = win.browser
    task = demo_ds.episode(3).task
    word = (
        next(w for w in task.split() if sum(w in e.task for e in demo_ds) == 1)
        if any(sum(w in e.task for e in demo_ds) == 1 for w in task.split())
        else "3"
    )
    b.search.setText(word)
    assert 1 <= b.proxy.rowCount() < len(demo_ds)
    b.search.clear()
    b.model.set_status({4: (1, "in_review", 0.9), 2: (1, "unreviewed", 0.7), 0: (1, "accepted", 0.95)})
    b.table.sortByColumn(4, Qt.SortOrder.DescendingOrder)
    first = b.proxy.mapToSource(b.proxy.index(0, 0)).row()
    assert b.model.rows[first][0] == 0
    b.review_filter.setCurrentIndex(b.review_filter.findData("in_review"))
    assert b.proxy.rowCount() == 1
    b.review_filter.setCurrentIndex(0)
    qtbot.mouseClick(b.next_button, LEFT)  # no backend: the most uncertain episode not accepted
    assert win.doc.episode == 4
    qtbot.mouseClick(
        b.table.viewport(),
        LEFT,
        pos=b.table.visualRect(b.proxy.mapFromSource(b.model.index(b.model.row_of[2], 1))).center(),
    )
    assert win.doc.episode == 2
    wait_frame(qtbot, win, 0)


def test_docks_are_remembered_between_runs(local_window, qtbot, demo_ds):
    local_window.docks["inspector"].hide()
    local_window.removeDockWidget(local_window.docks["timeline"])
    local_window.addDockWidget(Qt.DockWidgetArea.TopDockWidgetArea, local_window.docks["timeline"])
    local_window.docks["timeline"].show()
    local_window.layer_actions["trajectory"].setChecked(False)
    local_window.close()
    again = MainWindow(demo_ds, "demo", None)
    qtbot.addWidget(again)
    again.show()
    assert not again.docks["inspector"].isVisible()
    assert again.dockWidgetArea(again.docks["timeline"]) == Qt.DockWidgetArea.TopDockWidgetArea
    assert not again.layers["trajectory"]
    again.close()


def test_a_corrupt_video_is_a_message_not_a_crash(demo_copy, qtbot):
    ds = Dataset(demo_copy)
    bad_cam = ds.cameras[0]
    path = ds.video(0, bad_cam).path
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 3])  # truncated mid-file
    win = MainWindow(ds, "demo", None)
    qtbot.addWidget(win)
    win.show()
    messages = []
    win.player.message.connect(messages.append)
    win.open_episode(ds.episodes[max(ds.episodes)].index)
    win.doc.set_frame(win.doc.n_frames - 1)
    qtbot.waitUntil(lambda: bool(win.player.views[bad_cam].error_item.text()), timeout=WAIT_MS)
    assert messages and str(path.name) in " ".join(messages)
    good = win.player.views[ds.cameras[1]]
    assert good.frame_index == win.doc.frame and not good.error_item.text()
    # The window goes on: editing and stepping still work.
    win.doc.insert_segment(0.0, name="whole")
    win.doc.step(-5)
    wait_frame(qtbot, win)
    assert win.doc.annotation.segments[0].name == "whole"
    win.close()


def test_screenshot_renders_the_window_offscreen(demo_root, tmp_path, qtbot):
    out = tmp_path / "shot.png"
    assert run_gui(demo_root, "demo", None, screenshot=out, episode=1) == 0
    img = QImage(str(out))
    assert (img.width(), img.height()) == (1600, 1000)
    gray = img.convertToFormat(QImage.Format.Format_Grayscale8)
    arr = np.frombuffer(gray.constBits(), np.uint8, gray.bytesPerLine() * gray.height()).copy()
    assert arr.std() > 20  # not an empty or uniform window


def test_export_runs_off_the_gui_thread_and_reports(local_window, demo_root, tmp_path, qtbot):
    from core.protocol import Correction
    from core.store import Store

    ann = truth_annotation(demo_root, 0, dataset_id=demo_root.name)
    ann = type(ann)(**{**{f: getattr(ann, f) for f in ann.__struct_fields__}, "review": "accepted"})
    store_path = tmp_path / "store.db"
    with Store(store_path) as store, store.transaction():
        store.apply_correction(
            Correction(
                uuid="u1", dataset=demo_root.name, episode=0, base_revision=0, user="tester", annotation=ann
            )
        )
    win = local_window
    win.start_export(export.export, "lerobot-subtasks", str(store_path), str(tmp_path / "out"), False, False)
    qtbot.waitUntil(lambda: hasattr(win, "last_export"), timeout=WAIT_MS)
    ok, text = win.last_export
    assert ok, text
    assert (tmp_path / "out").is_dir() and "1 annotated episode" in text
    # A failing export (the output already exists) is a message too.
    del win.last_export
    win.start_export(export.export, "lerobot-subtasks", str(store_path), str(tmp_path / "out"), False, False)
    qtbot.waitUntil(lambda: hasattr(win, "last_export"), timeout=WAIT_MS)
    assert win.last_export[0] is False and "out" in win.last_export[1]


def test_the_gui_starts_without_torch():
    import subprocess
    import sys

    code = "import sys, app.ui.main_window; print(sorted(m for m in ('torch', 'transformers') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_timeline_zoom_pan_follow_and_fit(annotated, qtbot):
    from PySide6.QtCore import QPoint as P
    from PySide6.QtGui import QWheelEvent

    win = annotated
    tl = win.timeline
    vb = tl.plot.getViewBox()
    (x0, x1), _ = vb.viewRange()
    assert (x0, x1) == pytest.approx((0, win.doc.duration), abs=0.05)
    viewport = tl.graphics.viewport()
    center = QPointF(tl.graphics.mapFromScene(vb.sceneBoundingRect().center()))
    for _ in range(3):  # the mouse wheel zooms in around the pointer
        ev = QWheelEvent(
            center,
            viewport.mapToGlobal(center),
            P(0, 0),
            P(0, 120),
            NONE,
            Qt.KeyboardModifier.NoModifier,
            Qt.ScrollPhase.NoScrollPhase,
            False,
        )
        QApplication.sendEvent(viewport, ev)
    (a, b), _ = vb.viewRange()
    assert b - a < 0.8 * (x1 - x0)
    assert tl.track.getViewBox().viewRange()[0] == pytest.approx([a, b])  # one time axis for all rows
    drag(qtbot, viewport, center, center + QPointF(-60, 0))  # dragging empty plot area pans
    (c, d), _ = vb.viewRange()
    assert c > a and d - c == pytest.approx(b - a, rel=1e-3)
    assert c > 0.5
    win.doc.set_playhead(0.5)  # off screen: the view follows the playhead
    (e, f), _ = vb.viewRange()
    assert e <= 0.5 <= f and f - e == pytest.approx(b - a, rel=1e-3)
    tl.zoom_to_fit()
    assert vb.viewRange()[0] == pytest.approx([0, win.doc.duration], abs=0.05)


def test_status_bar_shows_the_served_round_and_its_metrics(local_window) -> None:
    from core.protocol import ModelInfo

    local_window._on_model(ModelInfo(engine="kinematic", name="kinematic", version="2.0"))
    assert local_window.model_label.text() == "model: kinematic · kinematic@2.0"
    tuned = ModelInfo(
        engine="transformers",
        name="round-003",
        version="r3-1a2b3c4d",
        device="cuda",
        round=3,
        metrics={"score": 0.8125, "f1@0.5": 0.9, "label_acc": 0.85, "traj_px": 12.5},
    )
    local_window._on_model(tuned)
    text, tip = local_window.model_label.text(), local_window.model_label.toolTip()
    assert (
        text
        == "model: transformers · round-003@r3-1a2b3c4d · round 3 (score 0.81, F1@0.5s 0.90, labels 0.85)"
    )
    assert "traj_px: 12.500" in tip and "round 3" in tip


def test_no_two_actions_share_a_shortcut(local_window) -> None:
    """An ambiguous shortcut fires neither action (Qt only warns), so every key must be unique."""
    from PySide6.QtGui import QAction, QKeySequence

    seen: dict[str, str] = {}
    for act in local_window.findChildren(QAction):
        for seq in act.shortcuts():
            key = seq.toString(QKeySequence.SequenceFormat.PortableText)
            if not key:
                continue
            assert key not in seen or seen[key] == act.text(), f"{key}: {seen.get(key)!r} and {act.text()!r}"
            seen[key] = act.text()
    assert {"Ctrl+Q", "Ctrl+K", "Space", "Ctrl+Z"} <= set(seen)
    help_text = "\n".join(local_window.shortcut_lines())
    assert "Add question at playhead" in help_text and "Next in review queue" in help_text
