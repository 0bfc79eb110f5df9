"""`robo-backend serve`: the ZeroMQ frontend, a ROUTER socket for requests and a PUB socket for events.

This module only moves messages: it owns the sockets, decodes each request, hands it
to the handler of its type and sends what comes back. The handling lives apart from it,
as vLLM keeps its engine core apart from the process that serves it:
- backend/reads.py answers reads at once on the I/O thread (SQLite WAL readers never
  wait for the writer);
- backend/corrections.py validates corrections and answers once the store writer
  (backend/writer.py) has them on disk;
- backend/engine_work.py runs predictions, reloads and re-proposals on the engine thread;
- backend/track_service.py runs tracks on its own worker.
Threads other than the I/O thread reply through the outbox (backend/outbox.py), so a
slow prediction never holds up a correction: they meet only there.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

import msgspec
import zmq

from backend.config import ServerConfig
from backend.corrections import Corrections
from backend.engine_work import EngineWork
from backend.engines import Engine, make_engine
from backend.handling import Envelope, RequestError
from backend.outbox import Outbox
from backend.reads import SERVER_NAME, Reads
from backend.registry import DatasetRegistry, RegistryError
from backend.security import CurveServer
from backend.track_service import TrackService
from backend.writer import StoreWriter
from core.errors import DatasetError
from core.protocol import Error, Event, ModelInfo, WireError, decode_request, encode
from core.store import Store

__all__ = ["SERVER_NAME", "BackendServer"]

log = logging.getLogger("robo.backend")


class BackendServer:
    def __init__(self, config: ServerConfig, engine: Engine | None = None) -> None:
        self.config = config
        self.registry = DatasetRegistry(config.datasets)
        self.engine = engine if engine is not None else make_engine(config.engine, **config.engine_options)
        self.ctx = zmq.Context()
        self.writer = StoreWriter(config.store)
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._outbox_endpoint = f"inproc://robo-outbox-{id(self)}"
        self.outbox = Outbox(self.ctx, self._outbox_endpoint)
        self.curve: CurveServer | None = None
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None
        self.work = EngineWork(config, self.registry, self.engine, self.writer, self.outbox)
        self.reads = Reads(config, self.registry, self.work)
        self.corrections = Corrections(self.registry, self.writer, self.outbox, self.work)
        # Track / CancelTrack: checked here, tracked on the service's own worker thread.
        self.tracks = TrackService(self.registry, self.outbox, config.tracker, config.tracker_options)
        self._handlers: dict[type, Callable[[Envelope, Any], msgspec.Struct | None]] = {}
        for part in (self.reads, self.corrections, self.work, self.tracks):
            self._handlers.update(part.handlers())

    @property
    def model(self) -> ModelInfo:
        """What the engine serves now (a reload changes it)."""
        return self.work.model

    # ------------------------------------------------------------ lifecycle

    def start(self) -> None:
        """Serve on a background thread; returns once the sockets are bound."""
        self._thread = threading.Thread(target=self.serve_forever, name="backend-io", daemon=True)
        self._thread.start()
        self._ready.wait(30)
        if self._error is not None:
            raise self._error

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def serve_forever(self) -> None:
        # The engine thread may hold the GIL for long stretches (numpy, ruptures);
        # a short switch interval keeps socket replies prompt.
        sys.setswitchinterval(0.0005)
        try:
            self._setup()
        except BaseException as exc:
            self._error = exc
            self._ready.set()
            self._teardown()
            raise
        self._ready.set()
        try:
            self._loop()
        finally:
            self._teardown()

    def _setup(self) -> None:
        cfg = self.config
        self.writer.start()
        self.reader = Store(cfg.store, readonly=True)
        self.pull = self.ctx.socket(zmq.PULL)
        self.pull.bind(self._outbox_endpoint)
        self.router = self.ctx.socket(zmq.ROUTER)
        self.pub = self.ctx.socket(zmq.PUB)
        if cfg.curve_dir is not None:
            self.curve = CurveServer(self.ctx, cfg.curve_dir)
            self.curve.apply(self.router)
            self.curve.apply(self.pub)
        for sock in (self.router, self.pub):
            sock.linger = 0
        # A hard cap far above the polite limit: a huge message drops the peer
        # instead of filling memory; anything up to it gets a 'too_large' reply.
        self.router.maxmsgsize = cfg.max_message_bytes * 4
        self.router.router_mandatory = False
        self.router.bind(cfg.bind)
        self.pub.bind(cfg.events)
        self.reads.reader = self.work.reader = self.reader
        self.work.start()
        log.info(
            "serving %s on %s (events %s), engine %s",
            ", ".join(self.registry.ids),
            cfg.bind,
            cfg.events,
            self.model.tag,
        )

    def _teardown(self) -> None:
        self.tracks.close()
        self.work.close()
        self.writer.stop()
        self.outbox.close()
        for name in ("router", "pub", "pull"):
            sock = getattr(self, name, None)
            if sock is not None:
                sock.close(linger=0)
        if getattr(self, "reader", None) is not None:
            self.reader.close()
        if self.curve is not None:
            self.curve.stop()
        self.ctx.term()

    # ------------------------------------------------------------ I/O loop

    def _loop(self) -> None:
        poller = zmq.Poller()
        poller.register(self.router, zmq.POLLIN)
        poller.register(self.pull, zmq.POLLIN)
        hb = self.config.heartbeat_s
        next_beat = time.monotonic()
        while not self._stop.is_set():
            now = time.monotonic()
            if now >= next_beat:
                self._publish(
                    Event(kind="heartbeat", time=time.time(), busy=self.work.busy, model=self.model.tag)
                )
                next_beat = now + hb
            timeout = min(100.0, max(0.0, (next_beat - now) * 1000))
            ready = dict(poller.poll(timeout))
            if self.pull in ready:
                for _ in range(1000):
                    try:
                        frames = self.pull.recv_multipart(zmq.NOBLOCK)
                    except zmq.Again:
                        break
                    if frames[0] == b"R":
                        self.router.send_multipart(frames[1:])
                    else:
                        self.pub.send_multipart(frames[1:])
            if self.router in ready:
                for _ in range(1000):
                    try:
                        frames = self.router.recv_multipart(zmq.NOBLOCK, copy=True)
                    except zmq.Again:
                        break
                    if len(frames) < 2:
                        continue
                    self._handle(frames[:-1], frames[-1])

    def _publish(self, ev: Event) -> None:
        self.pub.send_multipart([ev.kind.encode(), encode(ev)])

    def _send(self, envelope: Envelope, msg: msgspec.Struct) -> None:
        self.router.send_multipart([*envelope, encode(msg)])

    def _handle(self, envelope: Envelope, payload: bytes) -> None:
        msg_id = ""
        try:
            req = decode_request(payload, self.config.max_message_bytes)
            msg_id = req.id
            reply = self._handlers[type(req)](envelope, req)
        except WireError as exc:
            reply = Error(id=exc.id, code=exc.code, message=str(exc))
        except (RequestError, RegistryError) as exc:
            reply = Error(id=msg_id, code=exc.code, message=str(exc))
        except DatasetError as exc:
            reply = Error(id=msg_id, code="not_found", message=str(exc))
        except Exception as exc:  # a bug: say so and keep serving
            log.exception("request failed")
            reply = Error(id=msg_id, code="internal", message=f"internal error ({type(exc).__name__}: {exc})")
        if reply is not None:
            self._send(envelope, reply)
