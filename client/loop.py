"""The non-blocking client's socket loop: one thread, a DEALER for requests, a SUB for events.

`LinkLoop.run` owns the sockets and drives a `client.session.Session`; other
threads talk to it only through `post` (a queue and a wake-up pipe the poller
watches), so no lock is needed anywhere. The app runs it on a QThread
(app.link.backend_link); nothing here knows Qt.
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue

import msgspec
import zmq

from client import handshake
from client.corrections import CorrectionBook
from client.keys import ClientKeys
from client.messages import Command, Note, Notify, Stop
from client.session import LinkTiming, Session
from core.protocol import encode

log = logging.getLogger("robo.client")

DRAIN_AT_ONCE = 1000


class Mailbox:
    """Commands for the loop's thread, with a pipe that wakes its poller."""

    def __init__(self) -> None:
        self._queue: queue.SimpleQueue[Command] = queue.SimpleQueue()
        self.wake_r, self._wake_w = os.pipe()
        os.set_blocking(self.wake_r, False)
        os.set_blocking(self._wake_w, False)
        self.closed = False

    def post(self, cmd: Command) -> None:
        if self.closed:
            return
        self._queue.put(cmd)
        with contextlib.suppress(BlockingIOError):  # a full pipe holds wake-ups enough
            os.write(self._wake_w, b"x")

    def take(self) -> list[Command]:
        """Everything posted since the last call (the loop's thread only)."""
        with contextlib.suppress(BlockingIOError):
            os.read(self.wake_r, 4096)
        cmds: list[Command] = []
        while True:
            try:
                cmds.append(self._queue.get_nowait())
            except queue.Empty:
                return cmds

    def close(self) -> None:
        """After the loop has ended: release the pipe (later posts are dropped)."""
        if self.closed:
            return
        self.closed = True
        for fd in (self.wake_r, self._wake_w):
            os.close(fd)


class LinkLoop:
    """The transport of a Session: sockets made, replaced and closed on the loop's own thread."""

    def __init__(
        self,
        endpoint: str,
        journal: CorrectionBook,
        user: str,
        keys: ClientKeys | None,
        timing: LinkTiming,
        mailbox: Mailbox,
    ) -> None:
        self.endpoint = endpoint
        self.journal = journal
        self.user = user
        self.keys = keys
        self.timing = timing
        self.mailbox = mailbox
        self.ctx: zmq.Context | None = None
        self.dealer: zmq.Socket | None = None
        self.sub: zmq.Socket | None = None
        self.sub_endpoint = ""

    # ------------------------------------------------------------ Transport

    def send(self, msg: msgspec.Struct) -> bool:
        try:
            self.dealer.send(encode(msg), zmq.NOBLOCK)
            return True
        except zmq.Again:
            return False

    def reconnect(self) -> None:
        if self.dealer is not None:
            self.dealer.close(linger=0)
        self.dealer = handshake.socket(
            self.ctx, zmq.DEALER, self.endpoint, self.keys, immediate=True, max_message=handshake.MAX_MESSAGE
        )

    def listen(self, events: str) -> None:
        if events == self.sub_endpoint and self.sub is not None:
            return
        if self.sub is not None:
            self.sub.close(linger=0)
            self.sub = None
        self.sub_endpoint = events
        if not events:
            return
        self.sub = handshake.socket(self.ctx, zmq.SUB, events, self.keys, max_message=handshake.MAX_MESSAGE)
        self.sub.subscribe(b"")

    # ------------------------------------------------------------ loop

    def run(self, notify: Notify) -> None:
        """Until a Stop is posted; an internal error ends it with a note (the journal keeps every edit)."""
        try:
            self._run(notify)
        except Exception as exc:  # a bug: say so
            log.exception("backend link failed")
            notify(
                Note(
                    "error",
                    (
                        f"The backend link stopped after an internal error ({type(exc).__name__}: {exc}); "
                        f"edits stay in {self.journal.path} and are sent on the next start.",
                    ),
                )
            )
            notify(Note("state_changed", ("dead",)))

    def _run(self, notify: Notify) -> None:
        self.ctx = zmq.Context()
        session = Session(
            self.endpoint,
            self.journal,
            self.user,
            self,
            notify,
            timing=self.timing,
            encrypted=self.keys is not None,
        )
        self.reconnect()
        session.start()
        try:
            while self._step(session):
                pass
        finally:
            for sock in (self.dealer, self.sub):
                if sock is not None:
                    sock.close(linger=0)
            self.ctx.term()

    def _step(self, session: Session) -> bool:
        poller = zmq.Poller()
        poller.register(self.mailbox.wake_r, zmq.POLLIN)
        poller.register(self.dealer, zmq.POLLIN)
        if self.sub is not None:
            poller.register(self.sub, zmq.POLLIN)
        ready = dict(poller.poll(session.poll_interval_ms()))
        if self.mailbox.wake_r in ready:
            for cmd in self.mailbox.take():
                if isinstance(cmd, Stop):
                    return False
                session.command(cmd)
        dealer, sub = self.dealer, self.sub
        if dealer in ready:
            self._drain(dealer, session.on_reply)
        if sub is not None and sub in ready:
            self._drain(sub, session.on_event)
        session.tick()
        return True

    @staticmethod
    def _drain(sock: zmq.Socket, handle) -> None:
        for _ in range(DRAIN_AT_ONCE):
            if sock.closed:
                return
            try:
                frames = sock.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return
            handle(frames)
