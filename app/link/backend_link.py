"""The app's side of the backend: all socket I/O on a worker QThread, results as Qt signals.

`BackendLink` lives on the GUI thread and only journals and posts commands; its
`_Worker` runs on its own QThread and owns a zmq DEALER (requests, matched to
replies by id) and a SUB on the backend's events (heartbeats tell alive, busy or
dead). Corrections go through the local `Journal` first: `submit` returns only
once the edit is on disk, the worker sends whatever is unacknowledged whenever
the backend is reachable (again), and marks each one acknowledged when the
backend says it is durable. A dead backend, a garbled reply or a conflict
becomes a signal; nothing here raises into the GUI's event loop.
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import time
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import msgspec
import zmq
from PySide6.QtCore import QObject, QThread, Signal

from app.link.journal import Journal, JournalError
from client.keys import ClientKeys, load_client_keys
from core.annotations import EpisodeAnnotation
from core.protocol import (
    PROTOCOL_VERSION,
    Accepted,
    Ack,
    AnnotationReply,
    Cancelled,
    CancelTrack,
    Conflict,
    EpisodesReply,
    Error,
    GetAnnotation,
    GetModel,
    GetQueue,
    Hello,
    ListEpisodes,
    ModelInfo,
    ModelReply,
    Ping,
    Pong,
    Predict,
    PredictDone,
    PredictResult,
    Progress,
    QueueReply,
    Submit,
    Track,
    TrackAnchor,
    TrackResult,
    Welcome,
    WireError,
    decode_event,
    decode_reply,
    encode,
    new_id,
)

log = logging.getLogger("robo.app.link")

CLIENT_NAME = "robo-annotate/0.1"
# Error codes that mean "this correction will never be accepted": stop sending it.
REJECT_CODES = frozenset({"invalid", "not_found", "forbidden", "too_large"})
LinkState = Literal["connecting", "alive", "busy", "dead"]


@dataclass
class LinkTiming:
    """How patient the link is; the defaults suit a person, tests shorten them."""

    # Seconds between hello attempts while not connected.
    hello_interval_s: float = 1.0
    # Seconds without a welcome after start before the state turns "dead".
    connect_timeout_s: float = 5.0
    # Missed heartbeats (in the backend's own interval) before the backend counts as dead.
    dead_after_beats: float = 3.0
    # ... but never fewer seconds than this (a loaded machine delays heartbeats).
    min_dead_after_s: float = 1.0
    # An unanswered correction is sent again after this many seconds (resends are idempotent).
    resend_after_s: float = 15.0
    # After a transient error (busy, internal), wait this long before sending again.
    retry_after_s: float = 2.0
    # Corrections in flight at once.
    window: int = 256

    def __post_init__(self) -> None:
        for name in ("hello_interval_s", "connect_timeout_s", "dead_after_beats", "resend_after_s"):
            if getattr(self, name) <= 0:
                raise ValueError(f"LinkTiming.{name} = {getattr(self, name)}: must be > 0")
        if self.window < 1:
            raise ValueError(f"LinkTiming.window = {self.window}: must be >= 1")


@dataclass
class _Request:
    msg: msgspec.Struct
    what: str  # a few words for messages: "loading episode 3 of demo"
    uuid: str = ""  # submits: the correction
    sent: float = 0.0  # 0: not (yet or again) sent on the current connection
    total: int = 0  # predicts: episodes accepted


def _events_endpoint(events: str, endpoint: str) -> str:
    """The PUB endpoint a client can reach: a wildcard bind address becomes the ROUTER's host."""
    if not events.startswith("tcp://"):
        return events
    head, _, port = events.rpartition(":")
    if head in ("tcp://0.0.0.0", "tcp://*", "tcp://[::]") and endpoint.startswith("tcp://"):
        return f"{endpoint.rpartition(':')[0]}:{port}"
    return events


class _Worker(QObject):
    """Runs on the link's QThread; the only code that touches the sockets."""

    state_changed = Signal(str)
    model_changed = Signal(object)
    pending_changed = Signal(int)
    episodes_loaded = Signal(str, object)
    annotation_loaded = Signal(str, int, object, object)
    correction_acked = Signal(str, int)
    conflict = Signal(object)
    rejected = Signal(str, str)
    predict_progress = Signal(str, int, int, str)
    prediction_ready = Signal(str, int)
    episode_changed = Signal(str, int, int, str)
    queue_loaded = Signal(list)
    error = Signal(str)
    connected = Signal(object)
    track_progress = Signal(str, int, int)
    track_finished = Signal(object)

    def __init__(
        self,
        endpoint: str,
        journal: Journal,
        user: str,
        keys: ClientKeys | None,
        timing: LinkTiming,
        commands: queue.SimpleQueue,
        wake_fd: int,
    ) -> None:
        super().__init__()
        self.endpoint = endpoint
        self.journal = journal
        self.user = user
        self.keys = keys
        self.timing = timing
        self.commands = commands
        self.wake_fd = wake_fd

    # ------------------------------------------------------------ loop

    def run(self) -> None:
        try:
            self._run()
        except Exception as exc:  # a bug: say so; the journal still holds every edit
            log.exception("backend link failed")
            self.error.emit(
                f"The backend link stopped after an internal error ({type(exc).__name__}: {exc}); "
                f"edits stay in {self.journal.path} and are sent on the next start."
            )
            self.state_changed.emit("dead")

    def _run(self) -> None:
        now = time.monotonic()
        self.ctx = zmq.Context()
        self.dealer: zmq.Socket | None = None
        self.sub: zmq.Socket | None = None
        self.sub_endpoint = ""
        self.state: str = ""
        self.welcomed = False
        self.started = now
        self.heartbeat_s = 1.0
        self.last_seen = now
        self.next_hello = now
        self.next_ping = now
        self.next_sweep = now
        self.hello_ids: set[str] = set()  # hellos sent on the current connection
        self.served: set[str] = set()
        self.model: ModelInfo | None = None
        self.requests: dict[str, _Request] = {}  # by request id, on the current connection
        self.reads: OrderedDict[str, _Request] = OrderedDict()  # reads and predicts until answered
        # Corrections sent and not yet answered: uuid -> (when sent, dataset, episode).
        self.inflight: dict[str, tuple[float, str, int]] = {}
        self.retry_at: dict[str, float] = {}
        self.waiting_datasets: set[str] = set()
        self.recent_ready: OrderedDict[tuple, None] = OrderedDict()
        self.own_revisions: OrderedDict[tuple[str, int, int], None] = OrderedDict()
        self._new_dealer()
        self._set_state("connecting")
        try:
            while self._step():
                pass
        finally:
            for sock in (self.dealer, self.sub):
                if sock is not None:
                    sock.close(linger=0)
            self.ctx.term()

    def _step(self) -> bool:
        poller = zmq.Poller()
        poller.register(self.wake_fd, zmq.POLLIN)
        poller.register(self.dealer, zmq.POLLIN)
        if self.sub is not None:
            poller.register(self.sub, zmq.POLLIN)
        ready = dict(poller.poll(self._timeout_ms()))
        if self.wake_fd in ready:
            with contextlib.suppress(BlockingIOError):
                os.read(self.wake_fd, 4096)
            while True:
                try:
                    cmd = self.commands.get_nowait()
                except queue.Empty:
                    break
                if cmd[0] == "stop":
                    return False
                self._command(cmd)
        dealer, sub = self.dealer, self.sub
        if dealer in ready:
            self._drain(dealer, self._on_reply)
        if sub is not None and sub in ready:
            self._drain(sub, self._on_event)
        self._tick()
        return True

    def _drain(self, sock: zmq.Socket, handle) -> None:
        for _ in range(1000):
            if sock.closed:
                return
            try:
                frames = sock.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return
            handle(frames)

    def _timeout_ms(self) -> int:
        return 50 if not self.welcomed else 100

    def _set_state(self, state: str) -> None:
        if state != self.state:
            self.state = state
            self.state_changed.emit(state)

    def _new_dealer(self) -> None:
        if self.dealer is not None:
            self.dealer.close(linger=0)
        self.hello_ids = set()
        sock = self.ctx.socket(zmq.DEALER)
        sock.linger = 0
        # Queue nothing for a peer that is not connected: unsent work stays in our own books.
        sock.immediate = True
        sock.maxmsgsize = 64 * 2**20
        if self.keys is not None:
            self.keys.apply(sock)
        sock.connect(self.endpoint)
        self.dealer = sock

    def _connect_events(self, events: str) -> None:
        if events == self.sub_endpoint and self.sub is not None:
            return
        if self.sub is not None:
            self.sub.close(linger=0)
            self.sub = None
        self.sub_endpoint = events
        if not events:
            return
        sock = self.ctx.socket(zmq.SUB)
        sock.linger = 0
        if self.keys is not None:
            self.keys.apply(sock)
        sock.subscribe(b"")
        sock.connect(events)
        self.sub = sock

    def _send(self, msg: msgspec.Struct) -> bool:
        try:
            self.dealer.send(encode(msg), zmq.NOBLOCK)
            return True
        except zmq.Again:
            return False

    # ------------------------------------------------------------ commands from the GUI thread

    def _command(self, cmd: tuple) -> None:
        kind = cmd[0]
        if kind == "pump":
            self._pump()
        elif kind == "read":
            _, msg, what = cmd
            self.reads[msg.id] = _Request(msg, what)
            self._send_reads()

    def _send_reads(self) -> None:
        if not self.welcomed:
            return
        now = time.monotonic()
        for req in self.reads.values():
            if req.sent:
                continue
            if isinstance(req.msg, Predict) and not req.msg.kinds:
                req.msg.kinds = list(self.model.kinds) if self.model and self.model.kinds else ["segments"]
            if not self._send(req.msg):
                return
            req.sent = now
            self.requests[req.msg.id] = req

    # ------------------------------------------------------------ corrections

    def _pump(self) -> None:
        """Send every journaled correction that can go now, oldest first."""
        if not self.welcomed:
            return
        now = time.monotonic()
        rejected = False
        for entry in self.journal.unacked():
            if len(self.inflight) >= self.timing.window:
                break
            if entry.state != "pending" or entry.uuid in self.inflight:
                continue
            if self.retry_at.get(entry.uuid, 0.0) > now:
                continue
            if entry.dataset not in self.served:
                if entry.dataset not in self.waiting_datasets:
                    self.waiting_datasets.add(entry.dataset)
                    self.error.emit(
                        f"Corrections for dataset '{entry.dataset}' wait in {self.journal.path}: "
                        f"the backend at {self.endpoint} does not serve it."
                    )
                continue
            if entry.annotation is None:
                self.journal.mark_rejected(entry.uuid, entry.problem)
                self.rejected.emit(entry.uuid, entry.problem)
                rejected = True
                continue
            base = self.journal.effective_base(entry)
            if base is None:
                continue  # waits for the ack of this person's earlier edit of the episode
            msg = Submit(id=new_id(), correction=entry.correction(base))
            if not self._send(msg):
                break
            self.inflight[entry.uuid] = (now, entry.dataset, entry.episode)
            self.retry_at.pop(entry.uuid, None)
            self.requests[msg.id] = _Request(
                msg, f"saving an edit of {entry.dataset} episode {entry.episode}", uuid=entry.uuid, sent=now
            )
        if rejected:
            self._emit_pending()

    def _emit_pending(self) -> None:
        self.pending_changed.emit(self.journal.count_unacked())

    def _on_ack(self, req: _Request, reply: Ack) -> None:
        corr = req.msg.correction
        self.inflight.pop(reply.uuid, None)
        key = (corr.dataset, corr.episode, reply.revision)
        self.own_revisions[key] = None
        while len(self.own_revisions) > 1000:
            self.own_revisions.popitem(last=False)
        if self.journal.mark_acked(reply.uuid, reply.revision):
            self.correction_acked.emit(reply.uuid, reply.revision)
            self._emit_pending()
        self._pump()

    def _on_conflict(self, req: _Request, reply: Conflict) -> None:
        self.inflight.pop(reply.uuid, None)
        self.journal.mark_conflict(reply.uuid)
        self.conflict.emit(reply)

    def _on_submit_error(self, req: _Request, reply: Error) -> None:
        self.inflight.pop(req.uuid, None)
        if reply.code in REJECT_CODES:
            if self.journal.mark_rejected(req.uuid, f"{reply.code}: {reply.message}"):
                self.rejected.emit(req.uuid, reply.message)
                self._emit_pending()
            self._pump()
        else:
            self.retry_at[req.uuid] = time.monotonic() + self.timing.retry_after_s
            self.error.emit(
                f"The backend could not store an edit just now ({reply.code}: {reply.message}); "
                "it stays journaled and is sent again."
            )

    # ------------------------------------------------------------ replies

    def _on_reply(self, frames: list[bytes]) -> None:
        if len(frames) != 1:
            self.error.emit(f"The backend at {self.endpoint} sent a {len(frames)}-part reply; ignored it.")
            return
        try:
            reply = decode_reply(frames[0])
        except WireError as exc:
            self.error.emit(
                f"The backend at {self.endpoint} sent a reply this app cannot read ({exc}); ignored it."
            )
            return
        self.last_seen = time.monotonic()
        if isinstance(reply, Error) and reply.id in self.hello_ids:
            self.error.emit(f"The backend at {self.endpoint} refused this app: {reply.message}")
            self._set_state("dead")
            self.next_hello = time.monotonic() + 10 * self.timing.hello_interval_s
            return
        if isinstance(reply, Welcome):
            self._on_welcome(reply)
            return
        if isinstance(reply, Pong):
            self.requests.pop(reply.id, None)
            if self.welcomed:
                self._set_state("busy" if reply.busy else "alive")
            return
        req = self.requests.get(reply.id)
        if req is None:
            if isinstance(reply, Error):
                self.error.emit(f"The backend reported: {reply.message}")
            return  # a late answer to something from before a reconnect
        if isinstance(reply, Error):
            self._on_error(req, reply)
        elif isinstance(reply, Ack) and req.uuid == reply.uuid:
            self._finish(reply.id)
            self._on_ack(req, reply)
        elif isinstance(reply, Conflict) and req.uuid == reply.uuid:
            self._finish(reply.id)
            self._on_conflict(req, reply)
        elif isinstance(reply, AnnotationReply):
            self._finish(reply.id)
            self.annotation_loaded.emit(reply.dataset, reply.episode, reply.annotation, reply.suggestion)
        elif isinstance(reply, EpisodesReply):
            self._finish(reply.id)
            self.episodes_loaded.emit(reply.dataset, {e: (r, s, u) for e, r, s, u in reply.episodes})
        elif isinstance(reply, QueueReply):
            self._finish(reply.id)
            self.queue_loaded.emit(list(reply.items))
        elif isinstance(reply, ModelReply):
            self._finish(reply.id)
            self.model = reply.model
            self.model_changed.emit(reply.model)
        elif isinstance(req.msg, Predict) and isinstance(
            reply, Accepted | Progress | PredictResult | PredictDone
        ):
            self._on_predict(req, reply)
        elif isinstance(req.msg, Track) and isinstance(reply, Accepted | Progress | TrackResult):
            self._on_track(req, reply)
        elif isinstance(reply, Cancelled):
            self._finish(reply.id)
        else:
            self.error.emit(f"The backend answered {req.what} with an unexpected '{type(reply).__name__}'.")

    def _finish(self, msg_id: str) -> None:
        self.requests.pop(msg_id, None)
        self.reads.pop(msg_id, None)

    def _on_track(self, req: _Request, reply) -> None:
        if isinstance(reply, Accepted):
            self.track_progress.emit(reply.id, 0, reply.total)
        elif isinstance(reply, Progress):
            self.track_progress.emit(reply.id, reply.done, reply.total)
        else:
            self._finish(reply.id)
            self.track_finished.emit(reply)

    def _on_error(self, req: _Request, reply: Error) -> None:
        self._finish(reply.id)
        if isinstance(req.msg, Track):  # the track never started: its caller waits for a result
            m = req.msg
            self.track_finished.emit(
                TrackResult(
                    id=reply.id,
                    dataset=m.dataset,
                    episode=m.episode,
                    camera=m.camera,
                    target=m.target,
                    status="error",
                    error=reply.message,
                )
            )
        elif req.uuid:
            self._on_submit_error(req, reply)
        else:
            self.error.emit(f"The backend could not finish {req.what}: {reply.message}")

    def _on_predict(self, req: _Request, reply) -> None:
        ds = req.msg.dataset
        if isinstance(reply, Accepted):
            req.total = reply.total
            for e in reply.skipped:  # already predicted by this model: fetch what is there
                self._ready(ds, e, ("skipped", ds, e, req.msg.id))
            if reply.total:
                self.predict_progress.emit(ds, 0, reply.total, "queued")
        elif isinstance(reply, Progress):
            msg = reply.message or (f"episode {reply.episode}" if reply.episode is not None else "")
            self.predict_progress.emit(ds, reply.done, reply.total, msg)
        elif isinstance(reply, PredictResult):
            if reply.status == "ok":
                self._ready(
                    reply.dataset,
                    reply.episode,
                    (reply.dataset, reply.episode, reply.model, reply.revision or 0),
                )
            else:
                why = reply.error or "the model's answer could not be parsed"
                self.error.emit(f"Prediction of {reply.dataset} episode {reply.episode} failed: {why}")
        elif isinstance(reply, PredictDone):
            self._finish(reply.id)
            total = req.total or reply.ok + reply.failed
            parts = [f"{reply.ok} predicted"]
            if reply.failed:
                parts.append(f"{reply.failed} failed")
            if reply.skipped:
                parts.append(f"{reply.skipped} already done")
            self.predict_progress.emit(ds, total, total, "done: " + ", ".join(parts))

    def _ready(self, dataset: str, episode: int, key: tuple) -> None:
        """One prediction_ready per prediction, whether the reply or the event tells first."""
        if key in self.recent_ready:
            return
        self.recent_ready[key] = None
        while len(self.recent_ready) > 1000:
            self.recent_ready.popitem(last=False)
        self.prediction_ready.emit(dataset, episode)

    def _on_welcome(self, reply: Welcome) -> None:
        if self.welcomed or reply.id not in self.hello_ids:
            return  # an answer to another hello of this connection, or of an earlier one
        if reply.protocol != PROTOCOL_VERSION:
            self.error.emit(
                f"The backend at {self.endpoint} speaks protocol {reply.protocol}, this app {PROTOCOL_VERSION}: "
                "upgrade the older side."
            )
            self._set_state("dead")
            return
        now = time.monotonic()
        self.welcomed = True
        self.heartbeat_s = max(0.01, reply.heartbeat_s)
        self.last_seen = now
        self.served = {d.id for d in reply.datasets}
        self.waiting_datasets.clear()
        self._connect_events(_events_endpoint(reply.events, self.endpoint))
        self.model = reply.model
        self.connected.emit(reply)
        self.model_changed.emit(reply.model)
        self._set_state("alive")
        self._send_reads()
        self._pump()

    # ------------------------------------------------------------ events

    def _on_event(self, frames: list[bytes]) -> None:
        try:
            ev = decode_event(frames[-1])
        except WireError as exc:
            log.warning("undecodable event: %s", exc)
            return
        now = time.monotonic()
        if ev.kind == "heartbeat":
            self.last_seen = now
            if self.welcomed:
                self._set_state("busy" if ev.busy else "alive")
            else:
                self.next_hello = min(self.next_hello, now)  # it is back: say hello at once
        elif ev.kind == "prediction_ready":
            self._ready(ev.dataset, ev.episode, (ev.dataset, ev.episode, ev.model, ev.revision))
        elif ev.kind == "episode_changed":
            own_in_flight = ev.author == f"human:{self.user}" and any(
                (ds, ep) == (ev.dataset, ev.episode) for _t, ds, ep in self.inflight.values()
            )
            if not own_in_flight and (ev.dataset, ev.episode, ev.revision) not in self.own_revisions:
                self.episode_changed.emit(ev.dataset, ev.episode, ev.revision, ev.author)
        elif ev.kind == "model_reloaded" and self.welcomed:
            msg = GetModel(id=new_id())
            self.reads[msg.id] = _Request(msg, "reading the new model's details")
            self._send_reads()

    # ------------------------------------------------------------ timers

    def _tick(self) -> None:
        now = time.monotonic()
        t = self.timing
        if self.welcomed:
            dead_after = max(t.min_dead_after_s, t.dead_after_beats * self.heartbeat_s)
            silence = now - self.last_seen
            if silence > dead_after:
                self._go_dead(
                    f"The backend at {self.endpoint} stopped answering ({silence:.1f} s without a heartbeat); "
                    "edits are kept and sent when it is back."
                )
                return
            if silence > 1.5 * self.heartbeat_s and now >= self.next_ping:
                self.next_ping = now + self.heartbeat_s
                self._send(Ping(id=new_id()))
        else:
            if now >= self.next_hello:
                hello = Hello(id=new_id(), client=CLIENT_NAME, protocol=PROTOCOL_VERSION, user=self.user)
                sent = self._send(hello)
                if sent:
                    self.hello_ids.add(hello.id)
                # Not connected yet: try again soon (a cheap local check), else wait for the welcome.
                self.next_hello = now + (0.05 if not sent else t.hello_interval_s)
            if self.state == "connecting" and now - self.started > t.connect_timeout_s:
                hint = " (it uses encryption: check the keys given with --curve)" if self.keys else ""
                self._set_state("dead")
                self.error.emit(
                    f"No answer from the backend at {self.endpoint}{hint}; is `robo-backend serve` running "
                    "there? Edits are kept and sent when it answers."
                )
        if now >= self.next_sweep:
            self.next_sweep = now + 0.5
            stale = [u for u, (sent, _ds, _ep) in self.inflight.items() if now - sent > t.resend_after_s]
            for u in stale:
                del self.inflight[u]
            if self.welcomed:
                self._pump()

    def _go_dead(self, message: str) -> None:
        self.welcomed = False
        self.requests.clear()
        self.inflight.clear()
        for req in self.reads.values():
            req.sent = 0.0
        self._new_dealer()
        self.next_hello = time.monotonic()
        self._set_state("dead")
        self.error.emit(message)


class BackendLink(QObject):
    """All backend I/O on its own QThread (zmq DEALER + SUB); the GUI only calls methods and listens to signals.

    Every method is non-blocking (except `submit`'s fsync) and safe to call from the GUI thread.
    """

    state_changed = Signal(str)  # "connecting" | "alive" | "busy" | "dead"
    model_changed = Signal(object)  # core.protocol.ModelInfo
    pending_changed = Signal(int)  # corrections journaled but not yet acknowledged
    episodes_loaded = Signal(str, object)  # dataset id, {episode: (revision, review, uncertainty)}
    annotation_loaded = Signal(str, int, object, object)  # dataset, episode, head | None, suggestion | None
    correction_acked = Signal(str, int)  # correction uuid, the revision it became
    conflict = Signal(object)  # core.protocol.Conflict (current = theirs, yours = ours)
    rejected = Signal(str, str)  # uuid, reason (never sent again; its journal row stays)
    predict_progress = Signal(str, int, int, str)  # dataset, done, total, message
    prediction_ready = Signal(str, int)  # dataset, episode: call request_annotation to fetch it
    episode_changed = Signal(str, int, int, str)  # dataset, episode, revision, author (someone else's edit)
    queue_loaded = Signal(list)  # list[core.protocol.QueueItem], best first
    error = Signal(str)  # one actionable sentence for the status bar
    connected = Signal(object)  # core.protocol.Welcome, on every (re)connection
    track_progress = Signal(str, int, int)  # track request id, frames done, frames to do
    track_finished = Signal(object)  # core.protocol.TrackResult (status "error" if it was refused)

    _RELAYED = (
        "model_changed",
        "pending_changed",
        "episodes_loaded",
        "annotation_loaded",
        "correction_acked",
        "conflict",
        "rejected",
        "predict_progress",
        "prediction_ready",
        "episode_changed",
        "queue_loaded",
        "error",
        "track_progress",
        "track_finished",
    )

    def __init__(
        self,
        endpoint: str,
        journal_dir: Path,
        user: str,
        curve_dir: Path | None = None,
        parent: QObject | None = None,
        *,
        timing: LinkTiming | None = None,
    ) -> None:
        super().__init__(parent)
        if "://" not in endpoint:
            raise ValueError(f"endpoint = {endpoint!r}: must look like tcp://127.0.0.1:5555")
        if not user:
            raise ValueError("user must be non-empty: corrections are signed with it")
        self.endpoint = endpoint
        self.user = user
        keys = load_client_keys(curve_dir, user) if curve_dir is not None else None
        self.journal = Journal(journal_dir)
        self.journal.requeue_conflicts()
        self.state: str = "connecting"
        self.model: ModelInfo | None = None
        self.welcome: Welcome | None = None
        self._commands: queue.SimpleQueue = queue.SimpleQueue()
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        self._closed = False
        self._started = False
        self._thread = QThread()
        self._thread.setObjectName("backend-link")
        self._worker = _Worker(
            endpoint, self.journal, user, keys, timing or LinkTiming(), self._commands, self._wake_r
        )
        self._worker.moveToThread(self._thread)
        self._thread.started.connect(self._worker.run)
        self._worker.state_changed.connect(self._on_state)
        self._worker.connected.connect(self._on_connected)
        for name in self._RELAYED:
            getattr(self._worker, name).connect(getattr(self, name))

    # ------------------------------------------------------------ lifecycle

    def start(self) -> None:
        """Start the worker (once; later calls do nothing). Connect to the signals first."""
        if self._started:
            return
        self._started = True
        self._thread.start()
        self.pending_changed.emit(self.pending)
        if self.journal.recovered:
            self.error.emit(self.journal.recovered)

    def close(self) -> None:
        """Stop the worker thread; unsent corrections stay in the journal for the next start."""
        if self._closed:
            return
        if self._thread.isRunning():
            self._post(("stop",))
            deadline = time.monotonic() + 10
            while self._thread.isRunning() and time.monotonic() < deadline:
                self._thread.quit()
                self._thread.wait(50)
        self._closed = True
        for fd in (self._wake_r, self._wake_w):
            os.close(fd)
        # The journal stays open: an edit submitted while the window closes is still journaled
        # (and sent by the next link); the connection closes with this object.

    def _post(self, cmd: tuple) -> None:
        if self._closed and cmd[0] != "stop":
            return
        self._commands.put(cmd)
        with contextlib.suppress(BlockingIOError):  # a full pipe holds wake-ups enough
            os.write(self._wake_w, b"x")

    def _on_state(self, state: str) -> None:
        self.state = state
        self.state_changed.emit(state)

    def _on_connected(self, welcome: Welcome) -> None:
        self.welcome = welcome
        self.model = welcome.model
        self.connected.emit(welcome)

    # ------------------------------------------------------------ API

    @property
    def pending(self) -> int:
        return self.journal.count_unacked()

    def submit(self, annotation: EpisodeAnnotation, base_revision: int) -> str:
        """Journal the edit durably (fsync) and return its correction uuid; it is sent now or after a reconnect."""
        try:
            entry = self.journal.append(annotation, base_revision, self.user)
        except JournalError as exc:
            self.error.emit(f"The edit could not be saved locally: {exc}")
            raise
        self._post(("pump",))
        self.pending_changed.emit(self.pending)
        return entry.uuid

    def resolve_conflict(self, conflict: Conflict, keep: Literal["theirs", "mine"]) -> str | None:
        """The person's choice: keep theirs (drop ours, and our later edits of the episode chained on it)
        or mine (resubmit ours on their revision; later edits follow it)."""
        if keep not in ("theirs", "mine"):
            raise ValueError(f"keep = {keep!r}: must be 'theirs' or 'mine'")
        entry = self.journal.get(conflict.uuid)
        new_uuid = None
        if keep == "theirs":
            self.journal.drop(conflict.uuid)
        else:
            ours = (entry.annotation if entry is not None else None) or conflict.yours
            if ours is None:
                self.error.emit(
                    "Your version of the conflicting edit is not available any more; kept theirs."
                )
                self.journal.drop(conflict.uuid)
            elif entry is None:
                new_uuid = self.journal.append(ours, conflict.current.revision, self.user).uuid
            else:
                new_uuid = self.journal.supersede(
                    conflict.uuid, ours, conflict.current.revision, self.user
                ).uuid
        self._post(("pump",))
        self.pending_changed.emit(self.pending)
        return new_uuid

    def request_annotation(self, dataset: str, episode: int) -> None:
        self._read(
            GetAnnotation(id=new_id(), dataset=dataset, episode=episode),
            f"loading {dataset} episode {episode}",
        )

    def predict(self, dataset: str, episodes: list[int], force: bool = False) -> None:
        # kinds left empty: the worker fills in everything the backend's model predicts.
        msg = Predict(id=new_id(), dataset=dataset, episodes=list(episodes), kinds=[], force=force)
        self._read(msg, f"predicting {len(episodes)} episode(s) of {dataset}")

    def request_queue(self, dataset: str | None = None, limit: int = 50) -> None:
        self._read(GetQueue(id=new_id(), dataset=dataset, limit=limit), "loading the review queue")

    def request_episodes(self, dataset: str) -> None:
        self._read(ListEpisodes(id=new_id(), dataset=dataset), f"listing the episodes of {dataset}")

    def request_model(self) -> None:
        self._read(GetModel(id=new_id()), "reading the model's details")

    def track(
        self,
        dataset: str,
        episode: int,
        camera: str,
        target: str,
        anchors: list[tuple[float, tuple[float, ...]]],
        gaps: list[int] | None = None,
        label: str = "",
        kind: str = "current",
    ) -> str:
        """Ask the backend to track; returns the request id (track_progress / track_finished carry it)."""
        msg = Track(
            id=new_id(),
            dataset=dataset,
            episode=episode,
            camera=camera,
            target=target,  # type: ignore[arg-type]
            anchors=[TrackAnchor(t=t, value=[float(v) for v in value]) for t, value in anchors],
            gaps=gaps,
            label=label,
            kind=kind,
        )
        self._read(msg, f"tracking on {camera} in episode {episode}")
        return msg.id

    def cancel_track(self, request_id: str) -> None:
        self._read(CancelTrack(id=new_id(), target=request_id), "cancelling a track")

    def _read(self, msg: Any, what: str) -> None:
        self._post(("read", msg, what))
