"""Track requests in the server: checked on the I/O thread, tracked on a worker of their own.

A `Track` is validated at once (dataset, episode, camera, keyframes, engine) and
answered with `Accepted` (the frames to track); one worker thread then decodes
and tracks, sending `Progress` a few times a second and one `TrackResult`
through the server's outbox, so neither socket I/O nor predictions wait for it
(and tracks do not fight each other for the CPU). `CancelTrack` sets the
request's flag; the loop stops at the next frame and the result carries what was
tracked. Engines are built on the worker on first use and kept.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import msgspec

from backend.handling import RequestError
from backend.tracking import TRACK_ENGINES, TrackEngine, TrackingError, make_track_engine
from backend.tracking.job import TrackJob, run_track, total_frames
from backend.tracking.propagate import EpisodeFrames
from core.dataset import Dataset
from core.errors import RoboAnnotateError
from core.protocol import Accepted, Cancelled, CancelTrack, Progress, Track, TrackResult

log = logging.getLogger("robo.backend.track")
# Progress messages at most this often (seconds).
PROGRESS_EVERY_S = 0.1


# A track request the server refuses: the backend's one refusal (code as in core.protocol.ERROR_CODES).
TrackRequestError = RequestError


class TrackService:
    """Runs `Track` requests for a BackendServer (registry for datasets, outbox for replies)."""

    def __init__(
        self,
        registry: Any,
        outbox: Any,
        engine: str = "cpu",
        engine_options: dict[str, Any] | None = None,
        max_pending: int = 16,
    ) -> None:
        self.registry = registry
        self.outbox = outbox
        self.engine = engine  # the tracker a request with engine "" gets
        self.engine_options = dict(engine_options or {})
        self.max_pending = max_pending
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="tracker")
        self._cancels: dict[str, threading.Event] = {}
        self._lock = threading.Lock()
        self._engines: dict[str, TrackEngine] = {}
        self._closed = False

    def handlers(self) -> dict[type, Callable[[Any, Any], msgspec.Struct | None]]:
        return {Track: self.handle_track, CancelTrack: self.handle_cancel}

    # ------------------------------------------------------------ I/O thread

    def handle_track(self, envelope: Any, req: Track) -> msgspec.Struct:
        ds: Dataset = self.registry.check_episode(req.dataset, req.episode)
        if req.camera not in ds.cameras:
            raise TrackRequestError(
                "not_found",
                f"dataset '{req.dataset}' has no camera '{req.camera}' (cameras: {', '.join(ds.cameras)})",
            )
        name = req.engine or self.engine
        if name not in TRACK_ENGINES:
            raise TrackRequestError(
                "invalid", f"track.engine = {name!r}: known trackers are {', '.join(TRACK_ENGINES)}"
            )
        if name != "cpu" and not self._options(name).get("model"):
            raise TrackRequestError(
                "engine",
                f"the {name} tracker has no weights on this server: start it with --tracker {name} "
                "--tracker-model CHECKPOINT",
            )
        try:
            job = TrackJob(
                kind=req.target,
                camera=req.camera,
                fps=ds.fps,
                anchors=[(a.t, tuple(a.value)) for a in req.anchors],
                gaps=req.gaps,
                label=req.label,
                box_kind=req.kind,
                task=ds.episode(req.episode).task,
                tolerance_px=req.tolerance_px,
            )
            total = total_frames(job, ds.episode(req.episode).length)
        except TrackingError as exc:
            raise TrackRequestError("invalid", str(exc)) from exc
        with self._lock:
            if self._closed:
                raise TrackRequestError("busy", "the server is shutting down")
            if len(self._cancels) >= self.max_pending:
                raise TrackRequestError("busy", f"{len(self._cancels)} tracks are waiting; try again later")
            cancel = self._cancels.setdefault(req.id, threading.Event())
        self._pool.submit(self._run, envelope, req, job, ds, name, cancel, total)
        return Accepted(id=req.id, total=total)

    def handle_cancel(self, envelope: Any, req: CancelTrack) -> msgspec.Struct:
        with self._lock:
            flag = self._cancels.get(req.target)
        if flag is not None:
            flag.set()
        return Cancelled(id=req.id, target=req.target, found=flag is not None)

    # ------------------------------------------------------------ worker

    def _options(self, name: str) -> dict[str, Any]:
        return self.engine_options if name == self.engine else {}

    def _engine_for(self, name: str) -> TrackEngine:
        engine = self._engines.get(name)
        if engine is None:
            engine = make_track_engine(name, **self._options(name))
            self._engines[name] = engine
        return engine

    def _run(
        self,
        envelope: Any,
        req: Track,
        job: TrackJob,
        ds: Dataset,
        name: str,
        cancel: threading.Event,
        total: int,
    ) -> None:
        base = {
            "id": req.id,
            "dataset": req.dataset,
            "episode": req.episode,
            "camera": req.camera,
            "target": req.target,
        }
        last = [0.0]

        def progress(done: int, total_: int) -> None:
            now = time.monotonic()
            if now - last[0] >= PROGRESS_EVERY_S or done == total_:
                last[0] = now
                self.outbox.reply(
                    envelope, Progress(id=req.id, done=done, total=total_, message=f"tracking {req.camera}")
                )

        t0 = time.perf_counter()
        try:
            if cancel.is_set():
                result = TrackResult(**base, status="cancelled", engine=name)
            else:
                engine = self._engine_for(name)
                source = EpisodeFrames(ds, req.episode, req.camera)
                out = run_track(job, engine, source, cancel, progress)
                result = TrackResult(
                    **base,
                    status=out.status,
                    engine=out.engine,
                    spans=out.spans,
                    boxes=out.boxes,
                    points=out.points,
                    lost=out.lost,
                    frames=out.frames,
                    seconds=time.perf_counter() - t0,
                    error="; ".join(out.errors),
                    notes=out.notes,
                )
        except RoboAnnotateError as exc:
            result = TrackResult(**base, status="error", engine=name, error=str(exc))
        except Exception as exc:  # a bug: say so, keep serving
            log.exception("track %s failed", req.id)
            result = TrackResult(
                **base, status="error", engine=name, error=f"internal error ({type(exc).__name__}: {exc})"
            )
        finally:
            with self._lock:
                self._cancels.pop(req.id, None)
        self.outbox.reply(envelope, result)

    def close(self) -> None:
        """Cancel everything, wait for the worker, release the engines."""
        with self._lock:
            self._closed = True
            for flag in self._cancels.values():
                flag.set()
        self._pool.shutdown(wait=True, cancel_futures=False)
        for engine in self._engines.values():
            engine.close()
        self._engines.clear()
