"""The main window with a real backend (a `robo-backend serve` child process) on loopback.

Edits made in the window arrive in the backend's store exactly: the head is what
the window shows and every human revision is one of the window's corrections. A
backend killed mid-session gets the edits made while it was down once it is back
on the same ports and store. Someone else's edit meets ours as a conflict dialog
with both versions, and the person's choice is what the store keeps.
"""

from __future__ import annotations

import pytest
from PySide6.QtCore import QItemSelectionModel, QPointF, Qt, QTimer
from PySide6.QtWidgets import QApplication

from app.ui.main_window import ConflictDialog, MainWindow
from core.dataset import Dataset
from core.store import Store
from tests.fixtures.gui import WAIT_MS, boundary_point, drag, key, loaded, settled, store_of, wait_frame
from tests.fixtures.link import DATASET, ServerProcess, edit, fast_link, free_ports


def test_edits_in_the_window_are_exactly_what_the_store_holds(qtbot, backend, linked):
    win, link = linked()
    acked: list[tuple[str, int]] = []
    link.correction_acked.connect(lambda u, r: acked.append((u, r)))
    qtbot.waitUntil(lambda: win.backend_state == "alive", timeout=WAIT_MS)
    assert "kinematic" in win.model_label.text()
    loaded(qtbot, win, 0)  # nothing stored yet: the window asked the engine for a first proposal
    assert win.doc.annotation.model.startswith("kinematic") and win.doc.base_revision == 1
    n = len(win.doc.annotation.segments)

    # Drag a boundary with the mouse, split, rename inline, undo and redo, add and move a box.
    before = win.doc.annotation.segments[1].start
    a = boundary_point(win, 1)
    vb = win.timeline.track.getViewBox()
    px_per_s = vb.mapViewToScene(QPointF(1, 0)).x() - vb.mapViewToScene(QPointF(0, 0)).x()
    drag(qtbot, win.timeline.graphics.viewport(), a, a - QPointF(0.2 * px_per_s, 0))
    assert win.doc.annotation.segments[1].start < before
    seg = win.doc.annotation.segments[-1]
    win.doc.set_frame(round((seg.start + seg.end) / 2 * win.doc.fps))
    key(qtbot, win, Qt.Key.Key_S)
    key(qtbot, win, Qt.Key.Key_F2)
    editor = win.timeline._rename
    editor.selectAll()
    qtbot.keyClicks(editor, "settle")
    qtbot.keyClick(editor, Qt.Key.Key_Return)
    assert win.doc.annotation.segments[-1].name == "settle"
    key(qtbot, win, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert win.doc.annotation.segments[-1].name != "settle"
    key(qtbot, win, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.ShiftModifier)
    assert win.doc.annotation.segments[-1].name == "settle"
    cam = win.dataset.cameras[0]
    win.doc.set_frame(10)
    assert win.doc.add_box(cam, "cup", "current", (0.4, 0.4, 0.6, 0.6))
    from app.ui.overlays import BoxItem

    view = win.player.views[cam]
    item = next(i for i in view.scene().items() if isinstance(i, BoxItem))
    c = QPointF(view.mapFromScene(item.rect().center()))
    drag(qtbot, view.viewport(), c, c + QPointF(20, 0))
    shown = win.doc.annotation
    assert shown.boxes[0].xyxy[0] > 0.4
    assert len(shown.segments) == n + 1

    settled(qtbot, win, link)
    assert "all corrections saved" in win.unsent_label.text()
    with store_of(backend) as store:
        head = store.head(DATASET, 0)
        history = store.history(DATASET, 0)
    assert head.revision == win.doc.base_revision
    for field in ("segments", "boxes", "trajectories", "contacts", "dialogue", "qa", "review"):
        assert getattr(head, field) == getattr(shown, field), field
    human = [r for r in history if r.kind == "human"]
    assert human and [(r.correction, r.revision) for r in human] == acked
    assert [r.kind for r in history] == ["model"] + ["human"] * len(human)


def test_a_backend_killed_mid_session_gets_the_edits_when_it_is_back(qtbot, backend, linked):
    win, link = linked()
    loaded(qtbot, win, 1)
    backend.kill()
    qtbot.waitUntil(lambda: win.backend_state == "dead", timeout=WAIT_MS)
    assert "not reachable" in win.state_label.text()
    assert win.doc.rename_segment(0, "offline edit")
    win.doc.set_playhead(win.doc.annotation.segments[0].end / 2)
    assert win.doc.split_segment()
    qtbot.waitUntil(lambda: link.pending >= 1, timeout=WAIT_MS)  # journaled, not acknowledged
    assert "unsent" in win.unsent_label.text()
    shown = win.doc.annotation
    again = ServerProcess(backend.datasets, backend.store)
    again.bind, again.events = backend.bind, backend.events
    again.start()
    try:
        settled(qtbot, win, link)
        qtbot.waitUntil(lambda: win.backend_state in ("alive", "busy"), timeout=WAIT_MS)
        with Store(again.store, readonly=True) as store:
            head = store.head(DATASET, 1)
        assert head.segments == shown.segments
        assert [s.name for s in head.segments][:2] == ["offline edit", "offline edit"]
    finally:
        again.stop()


def _click_when_modal(choice: str, seen: list) -> None:
    """Act as the person in the conflict dialog: wait for it, note what it shows, press a button."""

    def poll() -> None:
        dialog = QApplication.activeModalWidget()
        if not isinstance(dialog, ConflictDialog):
            QTimer.singleShot(50, poll)
            return
        seen.append(dialog.conflict)
        dialog._choose(choice)

    QTimer.singleShot(50, poll)


@pytest.mark.parametrize("choice", ["mine", "theirs"])
def test_a_conflict_shows_both_versions_and_the_choice_is_kept(qtbot, backend, linked, choice):
    win, link = linked("alice")
    loaded(qtbot, win, 2)
    base = win.doc.base_revision
    from client import BackendClient
    from core.protocol import Correction, new_id

    theirs = edit(backend.datasets, 2, ["bob's", "version"], "bob")
    with BackendClient(backend.bind, user="bob", timeout=20) as bob:
        bob.hello()
        bob.submit(
            Correction(
                uuid=new_id(), dataset=DATASET, episode=2, base_revision=base, user="bob", annotation=theirs
            )
        )
    seen: list = []
    _click_when_modal(choice, seen)
    assert win.doc.rename_segment(0, "alice's")  # based on the revision before bob's
    qtbot.waitUntil(lambda: bool(seen), timeout=WAIT_MS)
    conflict = seen[0]
    assert [s.name for s in conflict.current.segments] == ["bob's", "version"]
    assert conflict.yours.segments[0].name == "alice's"
    settled(qtbot, win, link)
    with store_of(backend) as store:
        head = store.head(DATASET, 2)
    if choice == "mine":
        assert head.segments[0].name == "alice's" and head.revision == base + 2
        assert win.doc.annotation.segments[0].name == "alice's"
    else:
        assert [s.name for s in head.segments] == ["bob's", "version"] and head.revision == base + 1
        assert [s.name for s in win.doc.annotation.segments] == ["bob's", "version"]
    assert win.doc.base_revision == head.revision


def test_no_backend_at_all_is_a_message_and_the_player_goes_on(qtbot, demo_root, tmp_path):
    port = free_ports(1)[0]
    link = fast_link(f"tcp://127.0.0.1:{port}", tmp_path / "journal", "alice")
    win = MainWindow(Dataset(demo_root), DATASET, link)
    qtbot.addWidget(win)
    win.show()
    link.start()
    win.open_episode(0)
    qtbot.waitUntil(lambda: win.backend_state == "dead", timeout=WAIT_MS)
    assert "not reachable" in win.state_label.text()
    # Nothing is loaded, so an edit now would have no base: it is refused with a message, not lost silently.
    with qtbot.waitSignal(win.doc.message) as msg:
        assert not win.doc.insert_segment()
    assert "loading" in msg.args[0]
    key(qtbot, win, Qt.Key.Key_End)
    wait_frame(qtbot, win, win.doc.n_frames - 1)
    win.close()
    link.close()


def test_predict_a_selection_the_queue_and_someone_elses_edit(qtbot, backend, linked):
    win, link = linked("alice")
    loaded(qtbot, win, 0)
    # Predict a selection from the browser: progress shows, the browser learns the uncertainties.
    b = win.browser
    sel = b.table.selectionModel()
    sel.clearSelection()
    for ep in (3, 4):
        idx = b.proxy.mapFromSource(b.model.index(b.model.row_of[ep], 0))
        sel.select(idx, QItemSelectionModel.SelectionFlag.Select | QItemSelectionModel.SelectionFlag.Rows)
    assert b.selected_episodes() == [3, 4]
    win.predict_selection_action.trigger()
    assert win.progress.isVisible() or b.model.uncertainty(4) is not None  # unless it finished already
    qtbot.waitUntil(
        lambda: b.model.uncertainty(3) is not None and b.model.uncertainty(4) is not None, timeout=WAIT_MS
    )
    assert not win.progress.isVisible()
    # Next in the review queue opens the most uncertain other episode the backend ranks first.
    with qtbot.waitSignal(link.queue_loaded, timeout=WAIT_MS) as queue:
        qtbot.mouseClick(b.next_button, Qt.MouseButton.LeftButton)
    first = next(i.episode for i in queue.args[0] if i.episode != 0)
    qtbot.waitUntil(lambda: win.doc.episode == first, timeout=WAIT_MS)
    qtbot.waitUntil(lambda: win.doc.ready, timeout=WAIT_MS)
    # Someone else edits the open episode: with no local edits, the window reloads their version.
    from client import BackendClient
    from core.protocol import Correction, new_id

    theirs = edit(backend.datasets, first, ["carol's"], "carol")
    with BackendClient(backend.bind, user="carol", timeout=20) as carol:
        carol.hello()
        carol.submit(
            Correction(
                uuid=new_id(),
                dataset=DATASET,
                episode=first,
                base_revision=win.doc.base_revision,
                user="carol",
                annotation=theirs,
            )
        )
    qtbot.waitUntil(lambda: [s.name for s in win.doc.annotation.segments] == ["carol's"], timeout=WAIT_MS)
    assert win.doc.undo_stack.count() == 0 and not win.doc.has_local_edits


def test_switching_episodes_flushes_and_keeps_each_ones_revision(qtbot, backend, linked):
    win, link = linked()
    loaded(qtbot, win, 0)
    assert win.doc.rename_segment(0, "first edit")
    loaded(qtbot, win, 5)  # switching submits episode 0's edit at once, no debounce
    base = win.doc.base_revision
    settled(qtbot, win, link)
    assert win.doc.base_revision == base  # episode 0's acknowledgement is not episode 5's revision
    win.open_episode(0)
    qtbot.waitUntil(
        lambda: win.doc.ready and win.doc.annotation.segments[0].name == "first edit", timeout=WAIT_MS
    )
    with store_of(backend) as store:
        assert win.doc.base_revision == store.head(DATASET, 0).revision == 2
