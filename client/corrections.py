"""The correction pump: which journaled corrections to send, which are in flight, what to resend.

Corrections live in the caller's journal (the app's is app.link.journal, on
disk) until the backend says each one is durable; the pump only decides. It
sends the oldest first, a window at a time, each on the revision it was made
on (or on the revision the person's earlier edit of the episode became), stops
for good on an answer that can never change (REJECT_CODES), waits a while after
a transient one, and forgets what went unanswered for `resend_after_s` so it is
sent again (resends are idempotent: the backend keys corrections by uuid).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Protocol

import msgspec

from client.errors import REJECT_CODES
from client.messages import Note, Notify, Request
from core.annotations import EpisodeAnnotation
from core.protocol import Ack, Conflict, Correction, Error, Submit, new_id

OWN_REVISIONS_KEPT = 1000


class BookEntry(Protocol):
    uuid: str
    dataset: str
    episode: int
    state: str

    @property
    def annotation(self) -> EpisodeAnnotation | None: ...
    @property
    def problem(self) -> str: ...
    def correction(self, base_revision: int) -> Correction: ...


class CorrectionBook(Protocol):
    """What the pump needs of a journal (app.link.journal.Journal is one)."""

    path: Path

    def unacked(self) -> Iterable[BookEntry]: ...
    def effective_base(self, entry: BookEntry) -> int | None: ...
    def mark_acked(self, uuid: str, revision: int) -> bool: ...
    def mark_rejected(self, uuid: str, reason: str) -> bool: ...
    def mark_conflict(self, uuid: str) -> bool: ...
    def count_unacked(self) -> int: ...


class CorrectionPump:
    def __init__(
        self,
        journal: CorrectionBook,
        endpoint: str,
        *,
        window: int,
        retry_after_s: float,
        resend_after_s: float,
        send: Callable[[msgspec.Struct], bool],
        can_send: Callable[[], bool],
        track: Callable[[Request], None],
        notify: Notify,
    ) -> None:
        self.journal = journal
        self.endpoint = endpoint
        self.window = window
        self.retry_after_s = retry_after_s
        self.resend_after_s = resend_after_s
        self.send = send
        self.can_send = can_send  # welcomed on the current connection
        self.track = track  # the session's request book: replies find their Request there
        self.notify = notify
        # Corrections sent and not yet answered: uuid -> (when sent, dataset, episode).
        self.inflight: dict[str, tuple[float, str, int]] = {}
        self.retry_at: dict[str, float] = {}
        self.served: set[str] = set()
        self.waiting_datasets: set[str] = set()
        self.own_revisions: OrderedDict[tuple[str, int, int], None] = OrderedDict()

    def serve(self, datasets: Iterable[str]) -> None:
        """A (new) welcome: the datasets this backend serves."""
        self.served = set(datasets)
        self.waiting_datasets.clear()

    def pump(self, now: float) -> None:
        """Send every journaled correction that can go now, oldest first."""
        if not self.can_send():
            return
        rejected = False
        for entry in self.journal.unacked():
            if len(self.inflight) >= self.window:
                break
            if entry.state != "pending" or entry.uuid in self.inflight:
                continue
            if self.retry_at.get(entry.uuid, 0.0) > now:
                continue
            if entry.dataset not in self.served:
                if entry.dataset not in self.waiting_datasets:
                    self.waiting_datasets.add(entry.dataset)
                    self._error(
                        f"Corrections for dataset '{entry.dataset}' wait in {self.journal.path}: "
                        f"the backend at {self.endpoint} does not serve it."
                    )
                continue
            if entry.annotation is None:
                self.journal.mark_rejected(entry.uuid, entry.problem)
                self.notify(Note("rejected", (entry.uuid, entry.problem)))
                rejected = True
                continue
            base = self.journal.effective_base(entry)
            if base is None:
                continue  # waits for the ack of this person's earlier edit of the episode
            msg = Submit(id=new_id(), correction=entry.correction(base))
            if not self.send(msg):
                break
            self.inflight[entry.uuid] = (now, entry.dataset, entry.episode)
            self.retry_at.pop(entry.uuid, None)
            what = f"saving an edit of {entry.dataset} episode {entry.episode}"
            self.track(Request(msg, what, uuid=entry.uuid, sent=now))
        if rejected:
            self._pending()

    def sweep(self, now: float) -> None:
        """Forget corrections unanswered for `resend_after_s`: the next pump sends them again."""
        stale = [u for u, (sent, _ds, _ep) in self.inflight.items() if now - sent > self.resend_after_s]
        for u in stale:
            del self.inflight[u]

    def drop_in_flight(self) -> None:
        """The connection is gone: nothing is in flight on the next one."""
        self.inflight.clear()

    def in_flight_on(self, dataset: str, episode: int) -> bool:
        return any((ds, ep) == (dataset, episode) for _t, ds, ep in self.inflight.values())

    def is_own_revision(self, dataset: str, episode: int, revision: int) -> bool:
        return (dataset, episode, revision) in self.own_revisions

    # ------------------------------------------------------------ answers

    def on_ack(self, req: Request, reply: Ack, now: float) -> None:
        corr = req.msg.correction
        self.inflight.pop(reply.uuid, None)
        self.own_revisions[(corr.dataset, corr.episode, reply.revision)] = None
        while len(self.own_revisions) > OWN_REVISIONS_KEPT:
            self.own_revisions.popitem(last=False)
        if self.journal.mark_acked(reply.uuid, reply.revision):
            self.notify(Note("correction_acked", (reply.uuid, reply.revision)))
            self._pending()
        self.pump(now)

    def on_conflict(self, reply: Conflict) -> None:
        self.inflight.pop(reply.uuid, None)
        self.journal.mark_conflict(reply.uuid)
        self.notify(Note("conflict", (reply,)))

    def on_error(self, req: Request, reply: Error, now: float) -> None:
        self.inflight.pop(req.uuid, None)
        if reply.code in REJECT_CODES:
            if self.journal.mark_rejected(req.uuid, f"{reply.code}: {reply.message}"):
                self.notify(Note("rejected", (req.uuid, reply.message)))
                self._pending()
            self.pump(now)
        else:
            self.retry_at[req.uuid] = now + self.retry_after_s
            self._error(
                f"The backend could not store an edit just now ({reply.code}: {reply.message}); "
                "it stays journaled and is sent again."
            )

    def _pending(self) -> None:
        self.notify(Note("pending_changed", (self.journal.count_unacked(),)))

    def _error(self, message: str) -> None:
        self.notify(Note("error", (message,)))
