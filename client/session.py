"""The protocol's state on one client's side, without sockets: unit-testable as it is.

A `Session` knows what the backend said (welcome, heartbeats, replies) and what is
in flight, and decides what to send and when the backend counts as dead; a
`Transport` (client.loop's sockets, or a test's list) sends and reconnects for it,
and everything the person should hear about leaves as a `Note`. Time comes from
`clock`, so a test can move it.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import msgspec

from client import handshake
from client.corrections import CorrectionBook, CorrectionPump
from client.errors import ProtocolMismatch
from client.messages import Command, Note, Notify, Pump, Read, Request
from core.config import setting, validate
from core.protocol import (
    Accepted,
    Ack,
    AnnotationReply,
    Cancelled,
    Conflict,
    EpisodesReply,
    Error,
    GetModel,
    ModelInfo,
    ModelReply,
    Ping,
    Pong,
    Predict,
    PredictDone,
    PredictResult,
    Progress,
    QueueReply,
    Track,
    TrackResult,
    Welcome,
    WireError,
    decode_event,
    decode_reply,
    new_id,
)

log = logging.getLogger("robo.client")

CLIENT_NAME = "robo-annotate/0.1"
RECENT_KEPT = 1000


@dataclass
class LinkTiming:
    """How patient the link is; the defaults suit a person, tests shorten them."""

    hello_interval_s: float = setting(1.0, gt=0, help="seconds between hello attempts while not connected")
    connect_timeout_s: float = setting(
        5.0, gt=0, help='seconds without a welcome after start before the state turns "dead"'
    )
    dead_after_beats: float = setting(
        3.0, gt=0, help="missed heartbeats (in the backend's own interval) before the backend counts as dead"
    )
    min_dead_after_s: float = setting(
        1.0, ge=0, help="... but never fewer seconds than this (a loaded machine delays heartbeats)"
    )
    resend_after_s: float = setting(
        15.0,
        gt=0,
        help="an unanswered correction is sent again after this many seconds (resends are idempotent)",
    )
    retry_after_s: float = setting(
        2.0, ge=0, help="after a transient error (busy, internal), wait this long before sending again"
    )
    window: int = setting(256, ge=1, help="corrections in flight at once")

    def __post_init__(self) -> None:
        validate(self, label="LinkTiming.{name}")


class Transport(Protocol):
    def send(self, msg: msgspec.Struct) -> bool:
        """Send now or return False (no peer connected yet); never blocks."""

    def reconnect(self) -> None:
        """A fresh request socket: nothing of the old connection arrives any more."""

    def listen(self, events: str) -> None:
        """Subscribe to the backend's events at `events` ("" for none)."""


class Session:
    """One connection's worth of protocol state (and what survives reconnections)."""

    def __init__(
        self,
        endpoint: str,
        journal: CorrectionBook,
        user: str,
        transport: Transport,
        notify: Notify,
        *,
        timing: LinkTiming | None = None,
        encrypted: bool = False,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.endpoint = endpoint
        self.journal = journal
        self.user = user
        self.transport = transport
        self.notify = notify
        self.timing = timing or LinkTiming()
        self.encrypted = encrypted
        self.clock = clock
        now = clock()
        self.state: str = ""
        self.welcomed = False
        self.started = now
        self.heartbeat_s = 1.0
        self.last_seen = now
        self.next_hello = now
        self.next_ping = now
        self.next_sweep = now
        self.hello_ids: set[str] = set()  # hellos sent on the current connection
        self.model: ModelInfo | None = None
        self.requests: dict[str, Request] = {}  # by request id, on the current connection
        self.reads: OrderedDict[str, Request] = OrderedDict()  # reads and predicts until answered
        self.recent_ready: OrderedDict[tuple, None] = OrderedDict()
        t = self.timing
        self.corrections = CorrectionPump(
            journal,
            endpoint,
            window=t.window,
            retry_after_s=t.retry_after_s,
            resend_after_s=t.resend_after_s,
            send=transport.send,
            can_send=lambda: self.welcomed,
            track=self._track,
            notify=notify,
        )

    def start(self) -> None:
        self._set_state("connecting")

    # ------------------------------------------------------------ small helpers

    def _set_state(self, state: str) -> None:
        if state != self.state:
            self.state = state
            self.notify(Note("state_changed", (state,)))

    def _error(self, message: str) -> None:
        self.notify(Note("error", (message,)))

    def _track(self, req: Request) -> None:
        self.requests[req.msg.id] = req

    def _finish(self, msg_id: str) -> None:
        self.requests.pop(msg_id, None)
        self.reads.pop(msg_id, None)

    def poll_interval_ms(self) -> int:
        return 50 if not self.welcomed else 100

    # ------------------------------------------------------------ commands

    def command(self, cmd: Command) -> None:
        if isinstance(cmd, Pump):
            self.corrections.pump(self.clock())
        elif isinstance(cmd, Read):
            self.reads[cmd.msg.id] = Request(cmd.msg, cmd.what)
            self.send_reads()

    def send_reads(self) -> None:
        if not self.welcomed:
            return
        now = self.clock()
        for req in self.reads.values():
            if req.sent:
                continue
            if isinstance(req.msg, Predict) and not req.msg.kinds:
                req.msg.kinds = list(self.model.kinds) if self.model and self.model.kinds else ["segments"]
            if not self.transport.send(req.msg):
                return
            req.sent = now
            self.requests[req.msg.id] = req

    # ------------------------------------------------------------ replies

    def on_reply(self, frames: list[bytes]) -> None:
        if len(frames) != 1:
            self._error(f"The backend at {self.endpoint} sent a {len(frames)}-part reply; ignored it.")
            return
        try:
            reply = decode_reply(frames[0])
        except WireError as exc:
            self._error(
                f"The backend at {self.endpoint} sent a reply this app cannot read ({exc}); ignored it."
            )
            return
        now = self.clock()
        self.last_seen = now
        if isinstance(reply, Error) and reply.id in self.hello_ids:
            self._error(f"The backend at {self.endpoint} refused this app: {reply.message}")
            self._set_state("dead")
            self.next_hello = now + 10 * self.timing.hello_interval_s
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
                self._error(f"The backend reported: {reply.message}")
            return  # a late answer to something from before a reconnect
        self._dispatch(req, reply, now)

    def _dispatch(self, req: Request, reply: msgspec.Struct, now: float) -> None:
        if isinstance(reply, Error):
            self._on_error(req, reply, now)
        elif isinstance(reply, Ack) and req.uuid == reply.uuid:
            self._finish(reply.id)
            self.corrections.on_ack(req, reply, now)
        elif isinstance(reply, Conflict) and req.uuid == reply.uuid:
            self._finish(reply.id)
            self.corrections.on_conflict(reply)
        elif isinstance(reply, AnnotationReply):
            self._finish(reply.id)
            self.notify(
                Note("annotation_loaded", (reply.dataset, reply.episode, reply.annotation, reply.suggestion))
            )
        elif isinstance(reply, EpisodesReply):
            self._finish(reply.id)
            episodes = {e: (r, s, u) for e, r, s, u in reply.episodes}
            self.notify(Note("episodes_loaded", (reply.dataset, episodes)))
        elif isinstance(reply, QueueReply):
            self._finish(reply.id)
            self.notify(Note("queue_loaded", (list(reply.items),)))
        elif isinstance(reply, ModelReply):
            self._finish(reply.id)
            self.model = reply.model
            self.notify(Note("model_changed", (reply.model,)))
        elif isinstance(req.msg, Predict) and isinstance(
            reply, Accepted | Progress | PredictResult | PredictDone
        ):
            self._on_predict(req, reply)
        elif isinstance(req.msg, Track) and isinstance(reply, Accepted | Progress | TrackResult):
            self._on_track(reply)
        elif isinstance(reply, Cancelled):
            self._finish(reply.id)
        else:
            self._error(f"The backend answered {req.what} with an unexpected '{type(reply).__name__}'.")

    def _on_track(self, reply: Accepted | Progress | TrackResult) -> None:
        if isinstance(reply, Accepted):
            self.notify(Note("track_progress", (reply.id, 0, reply.total)))
        elif isinstance(reply, Progress):
            self.notify(Note("track_progress", (reply.id, reply.done, reply.total)))
        else:
            self._finish(reply.id)
            self.notify(Note("track_finished", (reply,)))

    def _on_error(self, req: Request, reply: Error, now: float) -> None:
        self._finish(reply.id)
        if isinstance(req.msg, Track):  # the track never started: its caller waits for a result
            m = req.msg
            result = TrackResult(
                id=reply.id,
                dataset=m.dataset,
                episode=m.episode,
                camera=m.camera,
                target=m.target,
                status="error",
                error=reply.message,
            )
            self.notify(Note("track_finished", (result,)))
        elif req.uuid:
            self.corrections.on_error(req, reply, now)
        else:
            self._error(f"The backend could not finish {req.what}: {reply.message}")

    def _on_predict(self, req: Request, reply: Accepted | Progress | PredictResult | PredictDone) -> None:
        ds = req.msg.dataset
        if isinstance(reply, Accepted):
            req.total = reply.total
            for e in reply.skipped:  # already predicted by this model: fetch what is there
                self._ready(ds, e, ("skipped", ds, e, req.msg.id))
            if reply.total:
                self.notify(Note("predict_progress", (ds, 0, reply.total, "queued")))
        elif isinstance(reply, Progress):
            msg = reply.message or (f"episode {reply.episode}" if reply.episode is not None else "")
            self.notify(Note("predict_progress", (ds, reply.done, reply.total, msg)))
        elif isinstance(reply, PredictResult):
            if reply.status == "ok":
                key = (reply.dataset, reply.episode, reply.model, reply.revision or 0)
                self._ready(reply.dataset, reply.episode, key)
            else:
                why = reply.error or "the model's answer could not be parsed"
                self._error(f"Prediction of {reply.dataset} episode {reply.episode} failed: {why}")
        else:
            self._finish(reply.id)
            total = req.total or reply.ok + reply.failed
            parts = [f"{reply.ok} predicted"]
            if reply.failed:
                parts.append(f"{reply.failed} failed")
            if reply.skipped:
                parts.append(f"{reply.skipped} already done")
            self.notify(Note("predict_progress", (ds, total, total, "done: " + ", ".join(parts))))

    def _ready(self, dataset: str, episode: int, key: tuple) -> None:
        """One prediction_ready per prediction, whether the reply or the event tells first."""
        if key in self.recent_ready:
            return
        self.recent_ready[key] = None
        while len(self.recent_ready) > RECENT_KEPT:
            self.recent_ready.popitem(last=False)
        self.notify(Note("prediction_ready", (dataset, episode)))

    def _on_welcome(self, reply: Welcome) -> None:
        if self.welcomed or reply.id not in self.hello_ids:
            return  # an answer to another hello of this connection, or of an earlier one
        try:
            handshake.check_welcome(reply, self.endpoint)
        except ProtocolMismatch as exc:
            self._error(str(exc))
            self._set_state("dead")
            return
        now = self.clock()
        self.welcomed = True
        self.heartbeat_s = max(0.01, reply.heartbeat_s)
        self.last_seen = now
        self.corrections.serve(d.id for d in reply.datasets)
        self.transport.listen(handshake.events_endpoint(reply.events, self.endpoint))
        self.model = reply.model
        self.notify(Note("connected", (reply,)))
        self.notify(Note("model_changed", (reply.model,)))
        self._set_state("alive")
        self.send_reads()
        self.corrections.pump(now)

    # ------------------------------------------------------------ events

    def on_event(self, frames: list[bytes]) -> None:
        try:
            ev = decode_event(frames[-1])
        except WireError as exc:
            log.warning("undecodable event: %s", exc)
            return
        now = self.clock()
        if ev.kind == "heartbeat":
            self.last_seen = now
            if self.welcomed:
                self._set_state("busy" if ev.busy else "alive")
            else:
                self.next_hello = min(self.next_hello, now)  # it is back: say hello at once
        elif ev.kind == "prediction_ready":
            self._ready(ev.dataset, ev.episode, (ev.dataset, ev.episode, ev.model, ev.revision))
        elif ev.kind == "episode_changed":
            own_in_flight = ev.author == f"human:{self.user}" and self.corrections.in_flight_on(
                ev.dataset, ev.episode
            )
            if not own_in_flight and not self.corrections.is_own_revision(
                ev.dataset, ev.episode, ev.revision
            ):
                self.notify(Note("episode_changed", (ev.dataset, ev.episode, ev.revision, ev.author)))
        elif ev.kind == "model_reloaded" and self.welcomed:
            msg = GetModel(id=new_id())
            self.reads[msg.id] = Request(msg, "reading the new model's details")
            self.send_reads()

    # ------------------------------------------------------------ timers

    def tick(self) -> None:
        now = self.clock()
        t = self.timing
        if self.welcomed:
            dead_after = max(t.min_dead_after_s, t.dead_after_beats * self.heartbeat_s)
            silence = now - self.last_seen
            if silence > dead_after:
                self.go_dead(
                    f"The backend at {self.endpoint} stopped answering ({silence:.1f} s without a heartbeat); "
                    "edits are kept and sent when it is back."
                )
                return
            if silence > 1.5 * self.heartbeat_s and now >= self.next_ping:
                self.next_ping = now + self.heartbeat_s
                self.transport.send(Ping(id=new_id()))
        else:
            if now >= self.next_hello:
                hello = handshake.hello(CLIENT_NAME, self.user)
                sent = self.transport.send(hello)
                if sent:
                    self.hello_ids.add(hello.id)
                # Not connected yet: try again soon (a cheap local check), else wait for the welcome.
                self.next_hello = now + (0.05 if not sent else t.hello_interval_s)
            if self.state == "connecting" and now - self.started > t.connect_timeout_s:
                hint = " (it uses encryption: check the keys given with --curve)" if self.encrypted else ""
                self._set_state("dead")
                self._error(
                    f"No answer from the backend at {self.endpoint}{hint}; is `robo-backend serve` running "
                    "there? Edits are kept and sent when it answers."
                )
        if now >= self.next_sweep:
            self.next_sweep = now + 0.5
            self.corrections.sweep(now)
            self.corrections.pump(now)

    def go_dead(self, message: str) -> None:
        """The connection is lost: forget what was in flight, reconnect, say hello again."""
        self.welcomed = False
        self.requests.clear()
        self.corrections.drop_in_flight()
        for req in self.reads.values():
            req.sent = 0.0
        self.hello_ids = set()
        self.transport.reconnect()
        self.next_hello = self.clock()
        self._set_state("dead")
        self._error(message)
