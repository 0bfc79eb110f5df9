"""How threads other than the I/O thread reply and publish: each through its own PUSH socket.

ZeroMQ sockets are not thread-safe, so only the I/O thread touches the ROUTER and PUB
sockets; the writer's callbacks, the engine thread and the tracker queue their replies
and events here, and the I/O thread forwards them.
"""

from __future__ import annotations

import threading

import msgspec
import zmq

from backend.handling import Envelope
from core.protocol import Event, encode


class Outbox:
    """How other threads hand replies and events to the I/O thread (one PUSH socket per thread)."""

    def __init__(self, ctx: zmq.Context, endpoint: str) -> None:
        self.ctx = ctx
        self.endpoint = endpoint
        self._local = threading.local()
        self._sockets: list[zmq.Socket] = []
        self._lock = threading.Lock()

    def _sock(self) -> zmq.Socket:
        sock = getattr(self._local, "sock", None)
        if sock is None:
            sock = self.ctx.socket(zmq.PUSH)
            sock.linger = 0
            sock.connect(self.endpoint)
            self._local.sock = sock
            with self._lock:
                self._sockets.append(sock)
        return sock

    def reply(self, envelope: Envelope | None, msg: msgspec.Struct) -> None:
        if envelope is not None:
            self._sock().send_multipart([b"R", *envelope, encode(msg)])

    def event(self, ev: Event) -> None:
        self._sock().send_multipart([b"E", ev.kind.encode(), encode(ev)])

    def close(self) -> None:
        with self._lock:
            for sock in self._sockets:
                sock.close(linger=0)
            self._sockets.clear()
