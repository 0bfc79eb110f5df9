"""client.session without sockets or Qt: a list for a transport, a hand-moved clock, a real journal.

What these hold: a hello goes out (again, until the socket has a peer), only a
welcome to our own hello connects, journaled corrections go out oldest first in
a window, unanswered ones are sent again (after `resend_after_s`, and after a
reconnection), acks and rejections reach the journal, silence past the heartbeat
allowance makes the backend dead, and nothing the backend sends raises.
"""

from __future__ import annotations

import msgspec
import pytest

from app.link.journal import Journal
from client.messages import Note, Pump, Read
from client.session import CLIENT_NAME, LinkTiming, Session
from core.annotations import EpisodeAnnotation, Segment
from core.protocol import (
    PROTOCOL_VERSION,
    Accepted,
    Ack,
    Conflict,
    DatasetInfo,
    Error,
    Event,
    Hello,
    ModelInfo,
    Predict,
    PredictResult,
    Submit,
    Welcome,
    encode,
)

MODEL = ModelInfo(engine="kinematic", name="k", version="1", kinds=["segments", "boxes"])


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Wire:
    """The session's transport: what it sent, and whether a peer is connected."""

    def __init__(self) -> None:
        self.sent: list[msgspec.Struct] = []
        self.connected = True
        self.reconnects = 0
        self.listening: list[str] = []

    def send(self, msg: msgspec.Struct) -> bool:
        if not self.connected:
            return False
        self.sent.append(msg)
        return True

    def reconnect(self) -> None:
        self.reconnects += 1

    def listen(self, events: str) -> None:
        self.listening.append(events)

    def of(self, kind: type) -> list:
        return [m for m in self.sent if isinstance(m, kind)]


def ann(episode: int, name: str = "reach") -> EpisodeAnnotation:
    return EpisodeAnnotation(
        dataset="demo",
        episode=episode,
        duration=2.0,
        fps=30.0,
        segments=[Segment(name=name, start=0.0, end=2.0, source="human:alice")],
    )


@pytest.fixture
def rig(tmp_path):
    clock, wire, notes = Clock(), Wire(), []
    journal = Journal(tmp_path / "journal")
    timing = LinkTiming(resend_after_s=5.0, retry_after_s=2.0, window=2, connect_timeout_s=3.0)
    session = Session("tcp://10.0.0.7:5555", journal, "alice", wire, notes.append, timing=timing, clock=clock)
    session.start()
    yield session, wire, clock, notes, journal
    journal.close()


def kinds(notes: list[Note], kind: str) -> list[tuple]:
    return [n.args for n in notes if n.kind == kind]


def reply(session: Session, msg: msgspec.Struct) -> None:
    session.on_reply([encode(msg)])


def welcome(session: Session, wire: Wire, **kw) -> Welcome:
    session.tick()
    hello = wire.of(Hello)[-1]
    w = Welcome(
        id=hello.id,
        protocol=kw.get("protocol", PROTOCOL_VERSION),
        server="test",
        model=MODEL,
        datasets=[DatasetInfo(id="demo", episodes=10, fps=30.0, cameras=["top"])],
        heartbeat_s=1.0,
        events="tcp://0.0.0.0:5556",
    )
    reply(session, w)
    return w


def test_hello_is_retried_until_the_socket_has_a_peer_and_names_the_user(rig):
    session, wire, clock, notes, _ = rig
    wire.connected = False
    session.tick()
    assert wire.sent == [] and session.hello_ids == set()
    clock.now += 0.06
    wire.connected = True
    session.tick()
    (hello,) = wire.of(Hello)
    assert (hello.client, hello.user, hello.protocol) == (CLIENT_NAME, "alice", PROTOCOL_VERSION)
    assert kinds(notes, "state_changed") == [("connecting",)]


def test_a_welcome_connects_only_when_it_answers_our_hello(rig):
    session, wire, _clock, notes, _ = rig
    session.tick()
    stray = Welcome(
        id="not-ours", protocol=PROTOCOL_VERSION, server="x", model=MODEL, datasets=[], heartbeat_s=1
    )
    reply(session, stray)
    assert not session.welcomed
    w = welcome(session, wire)
    assert session.welcomed and session.state == "alive"
    assert kinds(notes, "connected") == [(w,)]
    assert kinds(notes, "model_changed") == [(MODEL,)]
    # A wildcard PUB bind is reached on the ROUTER's host.
    assert wire.listening == ["tcp://10.0.0.7:5556"]


def test_another_protocol_version_is_dead_with_a_message(rig):
    session, wire, _clock, notes, _ = rig
    welcome(session, wire, protocol=PROTOCOL_VERSION + 1)
    assert not session.welcomed and session.state == "dead"
    (msg,) = kinds(notes, "error")
    assert f"protocol {PROTOCOL_VERSION + 1}" in msg[0] and "upgrade the older side" in msg[0]


def test_corrections_go_out_oldest_first_within_the_window_and_acks_reach_the_journal(rig):
    session, wire, _clock, notes, journal = rig
    uuids = [journal.append(ann(e), 0, "alice").uuid for e in range(3)]
    welcome(session, wire)
    sent = wire.of(Submit)
    assert [s.correction.uuid for s in sent] == uuids[:2]  # window = 2
    reply(session, Ack(id=sent[0].id, uuid=uuids[0], revision=7))
    assert kinds(notes, "correction_acked") == [(uuids[0], 7)]
    assert kinds(notes, "pending_changed")[-1] == (2,)
    assert [s.correction.uuid for s in wire.of(Submit)] == uuids  # the ack made room for the third
    assert journal.get(uuids[0]).state == "acked"


def test_an_unanswered_correction_is_sent_again_after_resend_after_s(rig):
    session, wire, clock, _notes, journal = rig
    uuid = journal.append(ann(1), 0, "alice").uuid
    welcome(session, wire)
    session.last_seen = clock.now
    first = wire.of(Submit)
    assert len(first) == 1
    clock.now += 4.0
    session.last_seen = clock.now  # heartbeats keep coming: only the correction is unanswered
    session.tick()
    assert len(wire.of(Submit)) == 1
    clock.now += 1.5
    session.last_seen = clock.now
    session.tick()
    again = wire.of(Submit)
    assert [s.correction.uuid for s in again] == [uuid, uuid]
    assert again[0].id != again[1].id  # a new request, the same correction (idempotent)


def test_silence_past_the_heartbeat_allowance_is_dead_and_the_next_connection_resends(rig):
    session, wire, clock, notes, journal = rig
    uuid = journal.append(ann(2), 0, "alice").uuid
    welcome(session, wire)
    clock.now += 3.5  # > max(min_dead_after_s, 3 beats of 1 s)
    session.tick()
    assert session.state == "dead" and wire.reconnects == 1
    assert "stopped answering" in kinds(notes, "error")[-1][0]
    welcome(session, wire)
    assert [s.correction.uuid for s in wire.of(Submit)] == [uuid, uuid]


def test_no_welcome_within_connect_timeout_is_dead_with_a_hint(rig):
    session, _wire, clock, notes, _ = rig
    session.tick()
    clock.now += 3.5
    session.tick()
    assert session.state == "dead"
    assert "is `robo-backend serve` running" in kinds(notes, "error")[-1][0]


def test_a_refused_correction_is_never_sent_again_and_a_transient_error_waits(rig):
    session, wire, clock, notes, journal = rig
    bad = journal.append(ann(3), 0, "alice").uuid
    busy = journal.append(ann(4), 0, "alice").uuid
    welcome(session, wire)
    by_uuid = {s.correction.uuid: s for s in wire.of(Submit)}
    reply(session, Error(id=by_uuid[bad].id, code="invalid", message="segment out of range"))
    reply(session, Error(id=by_uuid[busy].id, code="busy", message="try later"))
    assert kinds(notes, "rejected") == [(bad, "segment out of range")]
    assert journal.get(bad).state == "rejected"
    session.command(Pump())
    assert len(wire.of(Submit)) == 2  # the busy one waits retry_after_s
    clock.now += 2.1
    session.last_seen = clock.now
    session.command(Pump())
    assert [s.correction.uuid for s in wire.of(Submit)][2:] == [busy]


def test_a_conflict_marks_the_journal_and_is_told(rig):
    session, wire, _clock, notes, journal = rig
    uuid = journal.append(ann(5), 0, "alice").uuid
    welcome(session, wire)
    (sub,) = wire.of(Submit)
    theirs = ann(5, "grasp")
    c = Conflict(id=sub.id, uuid=uuid, base_revision=0, current=theirs, yours=ann(5))
    reply(session, c)
    assert kinds(notes, "conflict") == [(c,)]
    assert journal.get(uuid).state == "conflict"


def test_reads_wait_for_the_welcome_and_predict_asks_for_the_models_kinds(rig):
    session, wire, _clock, notes, _ = rig
    session.command(Read(Predict(id="p1", dataset="demo", episodes=[1, 2], kinds=[]), "predicting"))
    assert wire.of(Predict) == []
    welcome(session, wire)
    (p,) = wire.of(Predict)
    assert p.kinds == ["segments", "boxes"]
    reply(session, Accepted(id="p1", total=1, skipped=[2]))
    ok = PredictResult(id="p1", dataset="demo", episode=1, status="ok", model="k@1", revision=3)
    reply(session, ok)
    # The event of the same prediction tells nothing new.
    ev = Event(kind="prediction_ready", time=0.0, dataset="demo", episode=1, revision=3, model="k@1")
    session.on_event([b"prediction_ready", msgspec.msgpack.encode(ev)])
    assert kinds(notes, "prediction_ready") == [("demo", 2), ("demo", 1)]


def test_the_persons_own_edit_in_flight_is_not_someone_elses_change(rig):
    session, wire, _clock, notes, journal = rig
    journal.append(ann(6), 0, "alice")
    welcome(session, wire)
    own = Event(kind="episode_changed", time=0.0, dataset="demo", episode=6, revision=1, author="human:alice")
    other = Event(kind="episode_changed", time=0.0, dataset="demo", episode=7, revision=4, author="human:bob")
    for ev in (own, other):
        session.on_event([b"episode_changed", msgspec.msgpack.encode(ev)])
    assert kinds(notes, "episode_changed") == [("demo", 7, 4, "human:bob")]


def test_garbled_or_multipart_replies_are_errors_not_exceptions(rig):
    session, wire, _clock, notes, _ = rig
    welcome(session, wire)
    session.on_reply([b"\xc1not msgpack"])
    session.on_reply([b"a", b"b"])
    errors = [a[0] for a in kinds(notes, "error")]
    assert any("cannot read" in e for e in errors) and any("2-part reply" in e for e in errors)
    assert session.state == "alive"
