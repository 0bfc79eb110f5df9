"""Large batches of kinematic predictions across CPU cores.

Re-proposing a thousand episodes after an acceptance is pure CPU work per episode
(signals, events, an alignment), so the engine spreads a large batch over worker
processes. Workers are started with `spawn` (the backend has socket threads, which a
fork would copy half-alive), reopen each dataset from its path once, and keep their
own engine, so an exemplar set is prepared once per worker, not per episode.
Results come back in the batch's order.
"""

from __future__ import annotations

import multiprocessing
import os
import threading
import time
from collections.abc import Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import asdict
from pathlib import Path
from typing import Any

from backend.engines.base import EpisodeJob, Prediction
from core.dataset import Dataset

# Fewer jobs than this are not worth shipping to another process.
PARALLEL_FROM = 48

_engine: Any = None
_datasets: dict[str, Dataset] = {}


def default_workers() -> int:
    """Worker processes for large batches: the cores this process may use, at most four."""
    try:
        n = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        n = os.cpu_count() or 1
    return max(1, min(4, n))


# How often (seconds) a worker checks that the process that started it is still there.
PARENT_CHECK_S = 1.0


def _init(options: dict[str, Any], parent: int) -> None:
    global _engine
    from backend.engines.kinematic.engine import KinematicEngine

    _engine = KinematicEngine(**options, workers=1)
    # The parent's pid comes from the parent: one killed while this worker still imported is
    # already gone here, and os.getppid() would name whoever adopted the orphan.
    threading.Thread(target=_exit_with_parent, args=(parent,), daemon=True).start()


def _exit_with_parent(parent: int) -> None:
    """End this worker when its parent is gone. A backend killed outright (SIGKILL, the OOM
    killer) cannot shut its pool down, and a pool worker never sees end-of-file on its task
    queue (it holds that queue's write end too): without this it would wait forever."""
    while os.getppid() == parent:
        time.sleep(PARENT_CHECK_S)
    os._exit(0)


def _warm() -> int:
    """Import what the first episode would (the libraries the engine loads lazily)."""
    import dtaidistance.dtw_ndim  # noqa: F401
    import ruptures  # noqa: F401
    import scipy.ndimage  # noqa: F401

    return os.getpid()


def _run(chunk: list[tuple[str, str, int, tuple[str, ...], dict[str, Any], tuple]]) -> list[Prediction]:
    jobs = []
    for root, dataset_id, episode, kinds, options, exemplars in chunk:
        ds = _datasets.get(root)
        if ds is None:
            ds = _datasets[root] = Dataset(root)
        jobs.append(EpisodeJob(dataset_id, ds, episode, kinds, options, exemplars))
    return _engine.predict(jobs)


class WorkerPool:
    """A lazily started pool of engine processes, kept for the engine's lifetime."""

    def __init__(self, workers: int, options: dict[str, Any]) -> None:
        self.workers = workers
        self.options = options
        self._pool: ProcessPoolExecutor | None = None

    def usable(self, jobs: Sequence[EpisodeJob]) -> bool:
        """Worth it, and possible: every job's dataset can be reopened from its path."""
        return (
            self.workers > 1
            and len(jobs) >= PARALLEL_FROM
            and all(type(j.dataset) is Dataset and Path(j.dataset.root).is_dir() for j in jobs)
        )

    def _executor(self) -> ProcessPoolExecutor:
        if self._pool is None:
            self._pool = ProcessPoolExecutor(
                max_workers=self.workers,
                mp_context=multiprocessing.get_context("spawn"),
                initializer=_init,
                initargs=(self.options, os.getpid()),
            )
        return self._pool

    def warm(self) -> list[Future]:
        """Start the workers and their imports now, in the background (spawning and importing
        take a second or two that the first re-proposal after an acceptance would wait for)."""
        if self.workers <= 1:
            return []
        pool = self._executor()
        return [pool.submit(_warm) for _ in range(self.workers)]

    def predict(self, jobs: Sequence[EpisodeJob]) -> list[Prediction]:
        self._executor()
        # Contiguous chunks keep one exemplar set (one task) together in one worker.
        per = max(1, -(-len(jobs) // (self.workers * 2)))
        chunks = [jobs[i : i + per] for i in range(0, len(jobs), per)]
        futures = [
            self._pool.submit(
                _run,
                [
                    (str(j.dataset.root), j.dataset_id, j.episode, j.kinds, j.options, j.exemplars)
                    for j in chunk
                ],
            )
            for chunk in chunks
        ]
        out: list[Prediction] = []
        for f in futures:
            out.extend(f.result())
        return out

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None


def engine_options(opts: Any) -> dict[str, Any]:
    return {k: v for k, v in asdict(opts).items() if k != "workers"}
