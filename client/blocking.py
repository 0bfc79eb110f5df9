"""A blocking client for scripts, the trainer's rounds, tests and benchmarks.

One DEALER socket; requests may be pipelined (`send` now, `recv` later) and
replies are matched to requests by id. Not thread-safe: one client per thread.
The desktop app drives the same protocol without blocking (client.loop, on a
worker thread); both share the handshake, the keys and the reply errors.
"""

from __future__ import annotations

import time
from collections import defaultdict, deque
from collections.abc import Callable
from typing import TypeVar

import msgspec
import zmq

from client import handshake
from client.errors import BackendError, BackendTimeout, UnexpectedReply
from client.keys import ClientKeys
from core.protocol import (
    Accepted,
    Ack,
    AnnotationReply,
    Conflict,
    Correction,
    Error,
    Event,
    GetAnnotation,
    GetHistory,
    GetModel,
    GetQueue,
    HistoryReply,
    ModelInfo,
    ModelReply,
    Ping,
    Pong,
    Predict,
    PredictDone,
    PredictResult,
    Progress,
    QueueItem,
    QueueReply,
    ReloadModel,
    Reply,
    Submit,
    Welcome,
    decode_event,
    decode_reply,
    encode,
    new_id,
)

__all__ = ["BackendClient", "BackendError", "BackendTimeout", "EventListener", "UnexpectedReply"]

CLIENT_NAME = "robo-backend-client"

R = TypeVar("R")


class BackendClient:
    def __init__(
        self, endpoint: str, *, user: str = "script", timeout: float = 30.0, keys: ClientKeys | None = None
    ) -> None:
        self.endpoint = endpoint
        self.user = user
        self.timeout = timeout
        self.keys = keys
        self.ctx = zmq.Context.instance()
        self.sock = handshake.socket(self.ctx, zmq.DEALER, endpoint, keys)
        # A DEALER with no peer blocks in send (between a refused CURVE handshake and the
        # reconnect there is none): give up after the timeout instead of hanging.
        self.sock.sndtimeo = max(1, int(timeout * 1000))
        self._pending: dict[str, deque[Reply]] = defaultdict(deque)
        self.welcome: Welcome | None = None

    def close(self) -> None:
        self.sock.close(linger=0)

    def __enter__(self) -> BackendClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------ plumbing

    def send(self, msg: msgspec.Struct) -> str:
        if not msg.id:
            msg.id = new_id()
        self.send_raw(encode(msg))
        return msg.id

    def send_raw(self, data: bytes) -> None:
        try:
            self.sock.send(data)
        except zmq.Again:
            raise BackendTimeout(
                f"could not send to {self.endpoint} within {self.timeout:g} s: no connection"
            ) from None

    def recv_any(self, timeout: float | None = None) -> Reply:
        timeout = self.timeout if timeout is None else timeout
        if not self.sock.poll(timeout * 1000):
            raise BackendTimeout(f"no reply from {self.endpoint} within {timeout:g} s")
        return decode_reply(self.sock.recv())

    def recv(self, msg_id: str, timeout: float | None = None) -> Reply:
        """The next reply to request `msg_id` (others are kept for their own recv)."""
        timeout = self.timeout if timeout is None else timeout
        deadline = time.monotonic() + timeout
        while True:
            if self._pending.get(msg_id):
                return self._pending[msg_id].popleft()
            left = deadline - time.monotonic()
            if left <= 0:
                raise BackendTimeout(f"no reply to {msg_id} from {self.endpoint} within {timeout:g} s")
            reply = self.recv_any(left)
            self._pending[reply.id].append(reply)

    def request(self, msg: msgspec.Struct, timeout: float | None = None) -> Reply:
        reply = self.recv(self.send(msg), timeout)
        if isinstance(reply, Error):
            raise BackendError(reply)
        return reply

    def expect(self, msg: msgspec.Struct, *types: type[R], timeout: float | None = None) -> R:
        """`request`, and the reply must be one of `types` (else UnexpectedReply naming both)."""
        reply = self.request(msg, timeout)
        if not isinstance(reply, types):
            raise UnexpectedReply(msg, reply, types)
        return reply

    # ------------------------------------------------------------ API

    def hello(self) -> Welcome:
        reply = self.expect(handshake.hello(CLIENT_NAME, self.user), Welcome)
        self.welcome = handshake.check_welcome(reply, self.endpoint)
        return reply

    def ping(self, timeout: float | None = None) -> Pong:
        return self.expect(Ping(), Pong, timeout=timeout)

    def annotation(self, dataset: str, episode: int, revision: int | None = None):
        reply = self.expect(
            GetAnnotation(dataset=dataset, episode=episode, revision=revision), AnnotationReply
        )
        return reply.annotation

    def suggestion(self, dataset: str, episode: int):
        """A model prediction waiting for review on an episode a person already edited."""
        reply = self.expect(GetAnnotation(dataset=dataset, episode=episode), AnnotationReply)
        return reply.suggestion

    def history(self, dataset: str, episode: int):
        reply = self.expect(GetHistory(dataset=dataset, episode=episode), HistoryReply)
        return reply.revisions

    def submit(self, correction: Correction) -> Ack | Conflict:
        return self.expect(Submit(correction=correction), Ack, Conflict)

    def queue(self, dataset: str | None = None, limit: int = 20) -> list[QueueItem]:
        reply = self.expect(GetQueue(dataset=dataset, limit=limit), QueueReply)
        return reply.items

    def model(self) -> ModelInfo:
        reply = self.expect(GetModel(), ModelReply)
        return reply.model

    def reload(self, path: str, version: str = "", repredict: bool = True, timeout: float = 600) -> ModelInfo:
        reply = self.expect(
            ReloadModel(path=path, version=version, repredict=repredict), ModelReply, timeout=timeout
        )
        return reply.model

    def predict(
        self,
        dataset: str,
        episodes: list[int],
        kinds: list[str] | None = None,
        force: bool = False,
        options: dict | None = None,
        on_progress: Callable[[Progress], None] | None = None,
        timeout: float = 600,
    ) -> tuple[list[PredictResult], PredictDone]:
        """Predict and wait: results per episode, then the summary."""
        msg = Predict(
            dataset=dataset,
            episodes=episodes,
            kinds=kinds or ["segments"],
            force=force,
            options=options or {},
        )
        self.expect(msg, Accepted, timeout=timeout)
        results: list[PredictResult] = []
        while True:
            reply = self.recv(msg.id, timeout)
            if isinstance(reply, Progress):
                if on_progress:
                    on_progress(reply)
            elif isinstance(reply, PredictResult):
                results.append(reply)
            elif isinstance(reply, PredictDone):
                return results, reply
            elif isinstance(reply, Error):
                raise BackendError(reply)
            else:
                raise UnexpectedReply(msg, reply, (Progress, PredictResult, PredictDone))


class EventListener:
    """A SUB socket on the backend's events (heartbeats, changes, reloads)."""

    def __init__(self, endpoint: str, kinds: tuple[str, ...] = ("",), keys: ClientKeys | None = None) -> None:
        self.sock = handshake.socket(zmq.Context.instance(), zmq.SUB, endpoint, keys)
        for k in kinds:
            self.sock.subscribe(k.encode())

    def next(self, timeout: float = 5.0) -> Event | None:
        if not self.sock.poll(timeout * 1000):
            return None
        _topic, data = self.sock.recv_multipart()
        return decode_event(data)

    def close(self) -> None:
        self.sock.close(linger=0)
