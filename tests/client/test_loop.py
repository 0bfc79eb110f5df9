"""client.loop without Qt, against a real backend on loopback: the same loop the app's link runs.

A correction journaled before the loop starts is sent once the backend welcomes
it and acknowledged as a revision the store holds; a read is answered; Stop ends
the loop and the journal keeps what it was told.
"""

from __future__ import annotations

import queue
import threading
import time

from app.link.journal import Journal
from backend.config import ServerConfig
from client.loop import LinkLoop, Mailbox
from client.messages import Note, Read, Stop
from client.session import LinkTiming
from core.protocol import GetAnnotation, new_id
from tests.fixtures.link import DATASET, edit, serve_copy
from tests.fixtures.servers import free_ports, running_server

WAIT_S = 60.0  # generous for a shared 2-core machine; a wait, never a timing assertion


def _until(notes: queue.SimpleQueue, seen: list[Note], want) -> Note:
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        try:
            note = notes.get(timeout=0.2)
        except queue.Empty:
            continue
        seen.append(note)
        if want(note):
            return note
    raise AssertionError(f"no such note within {WAIT_S:g} s; heard {[n.kind for n in seen]}")


def test_the_loop_sends_a_journaled_edit_hears_the_ack_and_answers_a_read(demo_root, tmp_path):
    root = serve_copy(demo_root, tmp_path)
    a, b = free_ports(2)
    cfg = ServerConfig(
        datasets=[root],
        store=tmp_path / "store.db",
        bind=f"tcp://127.0.0.1:{a}",
        events=f"tcp://127.0.0.1:{b}",
        heartbeat_s=0.2,
    )
    journal = Journal(tmp_path / "journal")
    uuid = journal.append(edit(root, 1, ["reach", "grasp", "lift"]), 0, "alice").uuid
    notes: queue.SimpleQueue[Note] = queue.SimpleQueue()
    seen: list[Note] = []
    mailbox = Mailbox()
    loop = LinkLoop(cfg.bind, journal, "alice", None, LinkTiming(hello_interval_s=0.2), mailbox)
    with running_server(cfg):
        thread = threading.Thread(target=loop.run, args=(notes.put,), daemon=True)
        thread.start()
        try:
            acked = _until(notes, seen, lambda n: n.kind == "correction_acked")
            assert acked.args[0] == uuid
            mailbox.post(Read(GetAnnotation(id=new_id(), dataset=DATASET, episode=1), "loading episode 1"))
            loaded = _until(notes, seen, lambda n: n.kind == "annotation_loaded")
        finally:
            mailbox.post(Stop())
            thread.join(10)
            mailbox.close()
    assert not thread.is_alive()
    dataset, episode, head, _suggestion = loaded.args
    assert (dataset, episode) == (DATASET, 1)
    assert [s.name for s in head.segments] == ["reach", "grasp", "lift"]
    assert head.revision == acked.args[1]
    assert journal.get(uuid).state == "acked"
    kinds = [n.kind for n in seen]
    assert kinds.index("connected") < kinds.index("correction_acked")
    assert "error" not in kinds, [n.args for n in seen if n.kind == "error"]
    journal.close()
