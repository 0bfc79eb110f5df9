"""ReviewSession without a window: the document wired to a real backend link, no widget anywhere.

A `robo-backend serve` child process on loopback, a real BackendLink, and the session
alone: what arrives from the backend reaches the document (a first proposal for an
episode nothing is stored for, someone else's edit reloaded, a conflict resolved by
the person's choice), and the person's edits reach the store.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from app.session import ReviewSession
from core.dataset import Dataset
from core.store import Store
from tests.fixtures.gui import WAIT_MS
from tests.fixtures.link import DATASET, ServerProcess, edit, fast_link


@pytest.fixture
def session(qtbot, backend, tmp_path):
    link = fast_link(backend.bind, tmp_path / "journal", "alice")
    s = ReviewSession(Dataset(backend.datasets / DATASET), DATASET, link)
    link.start()
    qtbot.waitUntil(lambda: s.backend_state == "alive", timeout=WAIT_MS)
    yield s
    s.doc.flush()
    link.close()


def _open(qtbot, s: ReviewSession, episode: int) -> None:
    assert s.open_episode(episode)
    qtbot.waitUntil(lambda: s.doc.ready and bool(s.doc.annotation.segments), timeout=WAIT_MS)


def _saved(qtbot, s: ReviewSession) -> None:
    """Until every edit is submitted (the status bar's words) and acknowledged (the document's count)."""
    qtbot.waitUntil(
        lambda: s.unsent_status() == ("all corrections saved", False) and s.doc.unsent == 0, timeout=WAIT_MS
    )


def test_an_episode_with_nothing_stored_gets_a_proposal_and_edits_reach_the_store(qtbot, session, backend):
    statuses: list[dict] = []
    session.status_changed.connect(statuses.append)
    _open(qtbot, session, 0)  # nothing stored: the session asked the engine for a first proposal
    assert 0 in session.predict_requested
    assert session.doc.annotation.model.startswith("kinematic") and session.doc.base_revision == 1
    assert any(st.get(0, (0,))[0] == 1 for st in statuses)  # the browser would show revision 1
    assert session.doc.rename_segment(0, "reach for it")
    assert session.unsent_status()[1]
    _saved(qtbot, session)
    with Store(backend.store, readonly=True) as store:
        head = store.head(DATASET, 0)
    assert head.segments[0].name == "reach for it" and head.revision == session.doc.base_revision == 2
    assert any(st.get(0, (0, ""))[:2] == (2, "in_review") for st in statuses)


def _bob_edits(backend: ServerProcess, episode: int, base: int, names: list[str]) -> None:
    from client import BackendClient
    from core.protocol import Correction, new_id

    theirs = edit(backend.datasets, episode, names, "bob")
    with BackendClient(backend.bind, user="bob", timeout=20) as bob:
        bob.hello()
        bob.submit(
            Correction(
                uuid=new_id(),
                dataset=DATASET,
                episode=episode,
                base_revision=base,
                user="bob",
                annotation=theirs,
            )
        )


@pytest.mark.parametrize("choice", ["mine", "theirs"])
def test_a_conflict_is_handed_out_and_the_choice_is_what_the_store_keeps(qtbot, session, backend, choice):
    _open(qtbot, session, 2)
    base = session.doc.base_revision
    _bob_edits(backend, 2, base, ["bob's", "version"])
    seen: list = []

    def ask(conflict) -> None:  # the window shows a dialog here; the person picks `choice`
        seen.append(conflict)
        session.resolve_conflict(conflict, choice)

    session.conflict_arrived.connect(ask)
    assert session.doc.rename_segment(0, "alice's")  # based on the revision before bob's
    qtbot.waitUntil(lambda: bool(seen), timeout=WAIT_MS)
    assert [s.name for s in seen[0].current.segments] == ["bob's", "version"]
    _saved(qtbot, session)
    with Store(backend.store, readonly=True) as store:
        head = store.head(DATASET, 2)
    want = ["alice's"] if choice == "mine" else ["bob's", "version"]
    assert [s.name for s in head.segments][: len(want)] == want
    assert [s.name for s in session.doc.annotation.segments][: len(want)] == want
    assert session.doc.base_revision == head.revision == base + (2 if choice == "mine" else 1)


def test_someone_elses_edit_of_the_open_episode_is_reloaded(qtbot, session, backend):
    _open(qtbot, session, 3)
    _bob_edits(backend, 3, session.doc.base_revision, ["bob's"])
    qtbot.waitUntil(lambda: [s.name for s in session.doc.annotation.segments] == ["bob's"], timeout=WAIT_MS)
    assert not session.doc.has_local_edits and session.doc.undo_stack.count() == 0


def test_a_local_session_keeps_edits_in_the_undo_stack_and_says_what_needs_a_backend(qtbot, demo_root):
    s = ReviewSession(Dataset(demo_root), "demo", None, user="tester")
    messages: list[str] = []
    s.message.connect(messages.append)
    opened: list[int] = []
    s.episode_opened.connect(opened.append)
    assert s.backend_state == "local" and s.model is None
    assert not s.open_episode(10_000) and "10000" in messages[-1]
    assert s.open_episode(1) and opened == [1] and s.doc.ready
    assert s.unsent_status() == ("local only", False)
    assert s.doc.insert_segment()
    assert s.unsent_status() == ("local only: 1 edit not saved", True)
    assert not s.predict([1]) and "need a backend" in messages[-1]
    assert not s.request_queue()


def test_the_session_imports_no_widgets():
    code = (
        "import sys, app.session\n"
        "print(sorted(m for m in sys.modules if m.startswith(('app.ui', 'pyqtgraph', 'PySide6.QtWidgets'))))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
