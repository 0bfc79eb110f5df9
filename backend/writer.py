"""The store's single writer: group commits, acknowledged only once durable.

Every write (a correction, a prediction) is queued here. The thread takes
everything queued, applies it in one transaction (a savepoint per job, so one
bad job cannot undo the others) and commits once; only then are the jobs'
futures resolved and their acknowledgements sent. One fsync thus covers a
whole burst, which is how durability does not cost throughput.

For bench/backend.py, `ROBO_WRITER_TRACE=<file>` makes the writer append one line
per group commit: `<begin> <applied> <committed> <jobs>`, the first three in
`time.monotonic()` seconds (CLOCK_MONOTONIC: comparable across processes on one
machine), so `committed - applied` is the COMMIT itself, i.e. the WAL write and
its fsync (and a WAL checkpoint when one is due).
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from core.store import Store

log = logging.getLogger(__name__)
MAX_BATCH = 512
TRACE_ENV = "ROBO_WRITER_TRACE"


@dataclass
class WriteJob:
    """`apply(store)` runs inside the group's transaction; its return value resolves `future`."""

    apply: Callable[[Store], Any]
    future: Future = field(default_factory=Future)


class StoreWriter(threading.Thread):
    def __init__(self, path: Path, max_batch: int = MAX_BATCH) -> None:
        super().__init__(name="store-writer", daemon=True)
        self.path = path
        self.max_batch = max_batch
        self._q: queue.Queue[WriteJob | None] = queue.Queue()
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self.batches = 0
        self.jobs = 0
        self._trace: IO[str] | None = None

    def start(self) -> None:
        super().start()
        self._ready.wait()
        if self._error is not None:
            raise self._error

    def submit(self, apply: Callable[[Store], Any]) -> Future:
        job = WriteJob(apply)
        self._q.put(job)
        return job.future

    def stop(self) -> None:
        self._q.put(None)
        self.join(timeout=10)

    def run(self) -> None:
        try:
            store = Store(self.path)
        except BaseException as exc:  # reported by start()
            self._error = exc
            self._ready.set()
            return
        if os.environ.get(TRACE_ENV):
            self._trace = open(os.environ[TRACE_ENV], "a", buffering=1 << 16)  # noqa: SIM115 (closed when the thread ends)
        self._ready.set()
        try:
            while True:
                job = self._q.get()
                if job is None:
                    return
                batch = [job]
                stop = False
                while len(batch) < self.max_batch:
                    try:
                        nxt = self._q.get_nowait()
                    except queue.Empty:
                        break
                    if nxt is None:
                        stop = True
                        break
                    batch.append(nxt)
                self._commit(store, batch)
                if stop:
                    return
        finally:
            store.close()
            if self._trace is not None:
                self._trace.close()

    def _commit(self, store: Store, batch: list[WriteJob]) -> None:
        results: list[tuple[WriteJob, Any, BaseException | None]] = []
        begin = time.monotonic()
        try:
            with store.transaction() as conn:
                for i, job in enumerate(batch):
                    conn.execute(f"SAVEPOINT j{i}")
                    try:
                        results.append((job, job.apply(store), None))
                        conn.execute(f"RELEASE j{i}")
                    except Exception as exc:  # one job's bug must not undo the others
                        conn.execute(f"ROLLBACK TO j{i}")
                        conn.execute(f"RELEASE j{i}")
                        log.exception("store write failed")
                        results.append((job, None, exc))
                applied = time.monotonic()
        except Exception as exc:
            log.exception("store commit failed")
            for job in batch:
                job.future.set_exception(exc)
            return
        if self._trace is not None:
            self._trace.write(f"{begin:.9f} {applied:.9f} {time.monotonic():.9f} {len(batch)}\n")
        self.batches += 1
        self.jobs += len(batch)
        # Committed (and fsynced): only now may anyone be told.
        for job, value, exc in results:
            if exc is None:
                job.future.set_result(value)
            else:
                job.future.set_exception(exc)
