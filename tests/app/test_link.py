"""BackendLink against a real `robo-backend serve` child process on loopback.

Corrections are acknowledged and stored exactly as sent; a backend killed
mid-session (SIGKILL) gets every edit made while it was down, exactly once,
when it comes back; an app killed before it could send leaves its edits in the
journal for the next link; two people's edits meet as a conflict with both
versions; a garbled reply is an `error` signal, not a crash.
"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import msgspec
import pytest
import zmq
import zmq.auth

from app.link.backend_link import BackendLink, LinkTiming
from app.link.journal import Journal
from client.keys import CurveKeyError
from core.protocol import (
    PROTOCOL_VERSION,
    AnnotationReply,
    Conflict,
    ModelInfo,
    Pong,
    Welcome,
    decode_request,
    encode,
)
from core.store import Store
from tests.fixtures.link import (
    DATASET,
    ServerProcess,
    edit,
    fast_link,
    free_ports,
    human_revisions,
    serve_copy,
)

REPO = Path(__file__).resolve().parents[2]
WAIT = 30_000  # ms; generous for a shared 2-core machine, never a timing assertion


@pytest.fixture(scope="module")
def shared(demo_root, tmp_path_factory):
    """One backend for the tests that do not kill it (each uses its own episodes)."""
    where = tmp_path_factory.mktemp("shared")
    root = serve_copy(demo_root, where)
    server = ServerProcess(root, where / "store.db").start()
    yield server
    server.stop()


@pytest.fixture
def link_factory(qtbot, tmp_path):
    links: list[BackendLink] = []

    def make(endpoint: str, user: str = "alice", journal=None, **kw) -> BackendLink:
        link = fast_link(endpoint, journal or tmp_path / f"journal-{user}", user, **kw)
        links.append(link)
        return link

    yield make
    for link in links:
        link.close()


def _alive(qtbot, link: BackendLink) -> None:
    if link.state not in ("alive", "busy"):
        qtbot.waitUntil(lambda: link.state in ("alive", "busy"), timeout=WAIT)


def test_submit_is_journaled_then_acked_and_stored_exactly(qtbot, shared, link_factory):
    link = link_factory(shared.bind)
    link.start()
    _alive(qtbot, link)
    assert link.model.engine == "kinematic"
    root = shared.datasets
    first = edit(root, 0, ["reach", "grasp"])
    with qtbot.waitSignal(link.correction_acked, timeout=WAIT) as acked:
        uuid = link.submit(first, 0)
        # On disk before submit returned (read back through a second connection).
        assert [e.uuid for e in Journal(link.journal.directory).entries()] == [uuid]
    assert acked.args == [uuid, 1]
    qtbot.waitUntil(lambda: link.pending == 0, timeout=WAIT)

    # Three edits all sent with the base the editor last knew (1): each lands on top of the one
    # before (chained while unacknowledged, rebased once acknowledged), none conflicts with its own.
    names = [["a", "b"], ["a", "b", "c"], ["x"]]
    uuids = [link.submit(edit(root, 0, n), 1) for n in names]
    qtbot.waitUntil(lambda: link.pending == 0, timeout=WAIT)
    assert human_revisions(shared.store, 0) == [
        (1, 0, uuid, ["reach", "grasp"]),
        (2, 1, uuids[0], names[0]),
        (3, 2, uuids[1], names[1]),
        (4, 3, uuids[2], names[2]),
    ]
    with Store(shared.store, readonly=True) as store:
        head = store.head(DATASET, 0)
    assert head.revision == 4 and head.segments == edit(root, 0, ["x"]).segments
    assert all(e.state == "acked" for e in link.journal.entries())


def test_reads_predict_and_events(qtbot, shared, link_factory):
    link = link_factory(shared.bind)
    progress: list[tuple] = []
    link.predict_progress.connect(lambda *a: progress.append(a))
    link.start()  # requests made before the welcome wait for it
    with qtbot.waitSignal(link.prediction_ready, timeout=WAIT) as ready:
        link.predict(DATASET, [1])
    assert ready.args == [DATASET, 1]
    qtbot.waitUntil(lambda: progress and progress[-1][3].startswith("done"), timeout=WAIT)
    assert progress[-1][:3] == (DATASET, 1, 1)

    with qtbot.waitSignal(link.annotation_loaded, timeout=WAIT) as loaded:
        link.request_annotation(DATASET, 1)
    ds, ep, head, suggestion = loaded.args
    assert (ds, ep, suggestion) == (DATASET, 1, None)
    assert head.revision == 1 and head.segments and head.model.startswith("kinematic")

    with qtbot.waitSignal(link.episodes_loaded, timeout=WAIT) as eps:
        link.request_episodes(DATASET)
    assert eps.args[0] == DATASET and eps.args[1][1][:2] == (1, "unreviewed")
    with qtbot.waitSignal(link.queue_loaded, timeout=WAIT) as queue:
        link.request_queue(DATASET)
    assert any(item.episode == 1 for item in queue.args[0])

    # Someone else's edit arrives as an episode_changed event; our own edits do not.
    other = link_factory(shared.bind, user="carol")
    other.start()
    _alive(qtbot, other)
    changes: list[tuple] = []
    link.episode_changed.connect(lambda *a: changes.append(a))
    with qtbot.waitSignal(other.correction_acked, timeout=WAIT):
        other.submit(edit(shared.datasets, 1, ["carol"], "carol"), 1)
    qtbot.waitUntil(lambda: changes == [(DATASET, 1, 2, "human:carol")], timeout=WAIT)
    with qtbot.waitSignal(link.correction_acked, timeout=WAIT):
        link.submit(edit(shared.datasets, 1, ["mine"]), 2)
    qtbot.wait(500)
    assert changes == [(DATASET, 1, 2, "human:carol")]

    # A request the backend refuses is an error signal, and the link goes on.
    with qtbot.waitSignal(link.error, timeout=WAIT) as err:
        link.request_annotation(DATASET, 99)
    assert "99" in err.args[0]
    with qtbot.waitSignal(link.annotation_loaded, timeout=WAIT):
        link.request_annotation(DATASET, 1)


def test_invalid_correction_is_rejected_and_not_resent(qtbot, shared, link_factory):
    link = link_factory(shared.bind)
    link.start()
    _alive(qtbot, link)
    bad = msgspec.structs.replace(edit(shared.datasets, 2, ["too long"]), duration=999.0, segments=[])
    with qtbot.waitSignal(link.rejected, timeout=WAIT) as rej:
        uuid = link.submit(bad, 0)
    assert rej.args[0] == uuid and "duration" in rej.args[1]
    qtbot.waitUntil(lambda: link.pending == 0, timeout=WAIT)
    assert link.journal.get(uuid).state == "rejected"  # kept on record, never sent again
    assert human_revisions(shared.store, 2) == []


def test_conflict_between_two_people_shows_both_versions(qtbot, shared, link_factory):
    alice = link_factory(shared.bind, "alice")
    bob = link_factory(shared.bind, "bob")
    alice.start()
    bob.start()
    _alive(qtbot, alice)
    _alive(qtbot, bob)
    ours, theirs = edit(shared.datasets, 3, ["bob's"], "bob"), edit(shared.datasets, 3, ["alice's"])
    with qtbot.waitSignal(alice.correction_acked, timeout=WAIT):
        alice.submit(theirs, 0)
    with qtbot.waitSignal(bob.conflict, timeout=WAIT) as got:
        bob_uuid = bob.submit(ours, 0)
    conflict = got.args[0]
    assert isinstance(conflict, Conflict) and conflict.uuid == bob_uuid
    assert conflict.current.revision == 1 and conflict.current.segments == theirs.segments
    assert conflict.yours.segments == ours.segments
    assert bob.pending == 1  # unresolved: still not acknowledged

    with qtbot.waitSignal(bob.correction_acked, timeout=WAIT) as acked:
        new_uuid = bob.resolve_conflict(conflict, "mine")
    assert acked.args == [new_uuid, 2]
    qtbot.waitUntil(lambda: bob.pending == 0, timeout=WAIT)
    revs = human_revisions(shared.store, 3)
    assert [(r[0], r[1], r[3]) for r in revs] == [(1, 0, ["alice's"]), (2, 1, ["bob's"])]
    assert bob.journal.get(bob_uuid).state == "superseded"

    # Alice, still on revision 1, edits again: a conflict; she keeps theirs and nothing is sent.
    with qtbot.waitSignal(alice.conflict, timeout=WAIT) as got:
        alice.submit(edit(shared.datasets, 3, ["alice again"]), 1)
    assert got.args[0].current.segments == ours.segments
    assert alice.resolve_conflict(got.args[0], "theirs") is None
    assert alice.pending == 0
    qtbot.wait(300)
    assert len(human_revisions(shared.store, 3)) == 2


def test_backend_killed_mid_session_gets_every_edit_once(qtbot, demo_root, tmp_path, link_factory):
    root = serve_copy(demo_root, tmp_path)
    store = tmp_path / "store.db"
    server = ServerProcess(root, store).start()
    try:
        link = link_factory(server.bind)
        states: list[str] = []
        link.state_changed.connect(states.append)
        link.start()
        _alive(qtbot, link)
        with qtbot.waitSignal(link.correction_acked, timeout=WAIT):
            before = link.submit(edit(root, 0, ["before"]), 0)

        server.kill()
        qtbot.waitUntil(lambda: link.state == "dead", timeout=WAIT)
        offline = [
            link.submit(edit(root, 0, ["off", "line"]), 1),
            link.submit(edit(root, 0, ["off", "line", "again"]), 1),
            link.submit(edit(root, 4, ["other episode"]), 0),
        ]
        assert link.pending == 3
        qtbot.wait(300)
        assert link.pending == 3 and link.state == "dead"

        server.start()  # same ports, same store
        qtbot.waitUntil(lambda: link.pending == 0, timeout=WAIT)
    finally:
        server.stop()
    assert "dead" in states and states[-1] in ("alive", "busy")
    assert human_revisions(store, 0) == [
        (1, 0, before, ["before"]),
        (2, 1, offline[0], ["off", "line"]),
        (3, 2, offline[1], ["off", "line", "again"]),
    ]
    assert human_revisions(store, 4) == [(1, 0, offline[2], ["other episode"])]


CHILD = """
import json, sys, time
from pathlib import Path
from PySide6.QtCore import QCoreApplication
from tests.fixtures.link import edit, fast_link
app = QCoreApplication([])
endpoint, journal, root = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3])
link = fast_link(endpoint, journal)
link.start()
uuids = [link.submit(edit(root, 5, names), 0) for names in (["one"], ["one", "two"], ["three"])]
print(json.dumps(uuids), flush=True)
while True:
    app.processEvents()
    time.sleep(0.05)
"""


def test_app_killed_before_sending_resends_from_the_journal(qtbot, demo_root, tmp_path, link_factory):
    root = serve_copy(demo_root, tmp_path)
    store = tmp_path / "store.db"
    journal = tmp_path / "journal"
    server = ServerProcess(root, store)  # its ports are chosen; nothing listens there yet
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, server.bind, str(journal), str(root)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO,
    )
    try:
        line = child.stdout.readline()
        assert line, child.stderr.read()
        uuids = json.loads(line)
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(10)
    assert child.returncode == -signal.SIGKILL

    link = link_factory(server.bind, journal=journal)
    assert link.pending == 3
    server.start()
    try:
        link.start()
        qtbot.waitUntil(lambda: link.pending == 0, timeout=WAIT)
    finally:
        server.stop()
    assert human_revisions(store, 5) == [
        (1, 0, uuids[0], ["one"]),
        (2, 1, uuids[1], ["one", "two"]),
        (3, 2, uuids[2], ["three"]),
    ]


class FakeRouter(threading.Thread):
    """A ROUTER that answers the first hello with garbage, then behaves, then garbles a read."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.port = free_ports(1)[0]
        self.endpoint = f"tcp://127.0.0.1:{self.port}"
        self.ctx = zmq.Context()
        self.sock = self.ctx.socket(zmq.ROUTER)
        self.sock.linger = 0
        self.sock.bind(self.endpoint)
        self.stop = threading.Event()
        self.hellos = 0

    def run(self) -> None:
        model = ModelInfo(engine="fake", name="fake", version="0")
        while not self.stop.is_set():
            if not self.sock.poll(50):
                continue
            ident, payload = self.sock.recv_multipart()
            req = decode_request(payload)
            if req.__struct_config__.tag == "hello":
                self.hellos += 1
                if self.hellos == 1:
                    self.sock.send_multipart([ident, b"\xc1 not msgpack"])
                    continue
                reply = Welcome(
                    id=req.id,
                    protocol=PROTOCOL_VERSION,
                    server="fake",
                    model=model,
                    datasets=[],
                    heartbeat_s=1,
                )
            elif req.__struct_config__.tag == "get_annotation" and req.episode == 0:
                # Valid msgpack, wrong shape; then a reply of a type nobody knows.
                self.sock.send_multipart(
                    [ident, msgspec.msgpack.encode({"type": "annotation", "id": req.id})]
                )
                reply_bytes = msgspec.msgpack.encode({"type": "surprise", "id": req.id})
                self.sock.send_multipart([ident, reply_bytes])
                continue
            elif req.__struct_config__.tag == "get_annotation":
                reply = AnnotationReply(id=req.id, dataset=req.dataset, episode=req.episode, annotation=None)
            else:
                reply = Pong(id=req.id, time=time.time(), busy=0)
            self.sock.send_multipart([ident, encode(reply)])
        self.sock.close(0)
        self.ctx.term()


def test_malformed_replies_are_errors_and_the_link_goes_on(qtbot, tmp_path, link_factory):
    fake = FakeRouter()
    fake.start()
    try:
        link = link_factory(fake.endpoint, timing=LinkTiming(hello_interval_s=0.3, connect_timeout_s=10))
        errors: list[str] = []
        link.error.connect(errors.append)
        link.start()
        qtbot.waitUntil(lambda: link.state == "alive", timeout=WAIT)
        assert fake.hellos >= 2 and any("cannot read" in e for e in errors), errors
        errors.clear()
        link.request_annotation("x", 0)
        qtbot.waitUntil(lambda: len(errors) >= 2, timeout=WAIT)
        assert all("cannot read" in e for e in errors), errors
        # Still working: the next request is answered and delivered.
        with qtbot.waitSignal(link.annotation_loaded, timeout=WAIT) as loaded:
            link.request_annotation("x", 7)
        assert loaded.args == ["x", 7, None, None]
        assert link.state == "alive"
    finally:
        fake.stop.set()
        fake.join(5)


def test_no_backend_means_dead_with_a_message_and_edits_kept(qtbot, demo_root, tmp_path, link_factory):
    root = serve_copy(demo_root, tmp_path)
    (port,) = free_ports(1)
    link = link_factory(
        f"tcp://127.0.0.1:{port}", timing=LinkTiming(hello_interval_s=0.2, connect_timeout_s=0.5)
    )
    with qtbot.waitSignal(link.error, timeout=WAIT) as err:
        link.start()
    assert "No answer" in err.args[0] and str(port) in err.args[0]
    assert link.state == "dead"
    link.submit(edit(root, 0, ["kept"]), 0)
    assert link.pending == 1
    link.close()
    assert Journal(tmp_path / "journal-alice").count_unacked() == 1


def test_curve_encrypted_backend_with_the_persons_keys(qtbot, demo_root, tmp_path, link_factory):
    from backend.config import ServerConfig
    from backend.security import keygen
    from tests.fixtures.servers import running_server

    keys = tmp_path / "keys"
    keygen(keys, client="alice")
    (stranger := tmp_path / "stranger").mkdir()
    zmq.auth.create_certificates(str(stranger), "mallory")
    shutil.copy(keys / "server.key", stranger / "server.key")
    a, b = free_ports(2)
    cfg = ServerConfig(
        datasets=[serve_copy(demo_root, tmp_path)],
        store=tmp_path / "s.db",
        bind=f"tcp://127.0.0.1:{a}",
        events=f"tcp://127.0.0.1:{b}",
        curve_dir=keys,
        heartbeat_s=0.2,
    )
    with running_server(cfg):
        alice = link_factory(cfg.bind, "alice", curve_dir=keys)
        alice.start()
        _alive(qtbot, alice)
        with qtbot.waitSignal(alice.correction_acked, timeout=WAIT):
            alice.submit(edit(tmp_path / "datasets", 0, ["secret"]), 0)

        timing = LinkTiming(hello_interval_s=0.2, connect_timeout_s=1.0)
        mallory = link_factory(cfg.bind, "mallory", curve_dir=stranger, timing=timing)
        with qtbot.waitSignal(mallory.error, timeout=WAIT) as err:
            mallory.start()
        assert "check the keys" in err.args[0] and mallory.state == "dead"

    (only_server := tmp_path / "only-server").mkdir()
    shutil.copy(keys / "server.key", only_server)
    with pytest.raises(CurveKeyError, match=r"no client key.*--client bob"):
        BackendLink(cfg.bind, tmp_path / "j", "bob", curve_dir=only_server)
    with pytest.raises(CurveKeyError, match=r"server\.key: missing"):
        BackendLink(cfg.bind, tmp_path / "j", "bob", curve_dir=keys / "clients")
