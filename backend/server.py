"""`robo-backend serve`: a ROUTER socket for requests and a PUB socket for events.

Threads, and who owns what:
- the I/O thread owns both sockets: it decodes requests, answers reads at once
  (SQLite WAL readers never wait for the writer) and forwards replies and events
  that other threads put in the outbox;
- the store writer (backend/writer.py) applies corrections and predictions in
  group commits and resolves their futures once durable;
- the engine thread runs predictions and model reloads one job at a time.
So a slow prediction never holds up a correction: they meet only in the outbox.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, wait
from dataclasses import dataclass
from functools import partial
from queue import Queue
from typing import Any

import msgspec
import zmq

from backend.config import ServerConfig
from backend.engines import Engine, EpisodeJob, Prediction, make_engine
from backend.exemplars import ExemplarIndex
from backend.propagation import Debouncer
from backend.registry import DatasetRegistry, RegistryError
from backend.review_queue import Candidate, rank
from backend.security import CurveServer
from backend.track_service import TrackRequestError, TrackService
from backend.writer import StoreWriter
from core.annotations import CAMERA_FIELDS, EpisodeAnnotation
from core.dataset import Dataset
from core.errors import DatasetError
from core.protocol import (
    PROTOCOL_VERSION,
    Accepted,
    Ack,
    AnnotationReply,
    Conflict,
    DatasetInfo,
    EpisodesReply,
    Error,
    Event,
    GetAnnotation,
    GetHistory,
    GetModel,
    GetQueue,
    Hello,
    HistoryReply,
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
    ReloadModel,
    Submit,
    Welcome,
    WireError,
    decode_request,
    encode,
)
from core.store import Applied, Conflicted, Head, Rejected, Store

log = logging.getLogger("robo.backend")
SERVER_NAME = "robo-backend/0.1"
Envelope = list[bytes]


class RequestError(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


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


@dataclass
class _EngineTask:
    run: Callable[[], None]
    label: str


def validate_for_dataset(ann: EpisodeAnnotation, ds: Dataset) -> None:
    """An annotation must fit its episode: duration, frame rate and cameras."""
    ep = ds.episode(ann.episode)
    if abs(ann.duration - ep.duration) > 0.5 / ds.fps:
        raise RequestError(
            "invalid",
            f"annotation.duration = {ann.duration}: episode {ann.episode} lasts {ep.duration:.4f} s",
        )
    if abs(ann.fps - ds.fps) > 1e-6:
        raise RequestError("invalid", f"annotation.fps = {ann.fps}: the dataset runs at {ds.fps:g} fps")
    cams = set(ds.cameras)
    for name in CAMERA_FIELDS:
        for i, item in enumerate(getattr(ann, name)):
            if item.camera not in cams:
                raise RequestError(
                    "invalid",
                    f"annotation.{name}[{i}].camera = {item.camera!r}: not a camera of this dataset",
                )


class BackendServer:
    def __init__(self, config: ServerConfig, engine: Engine | None = None) -> None:
        self.config = config
        self.registry = DatasetRegistry(config.datasets)
        self.engine = engine if engine is not None else make_engine(config.engine, **config.engine_options)
        self.model: ModelInfo = self.engine.info()
        self.ctx = zmq.Context()
        self.writer = StoreWriter(config.store)
        self._engine_q: Queue[_EngineTask | None] = Queue()
        self._busy = 0
        self._busy_lock = threading.Lock()
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._outbox_endpoint = f"inproc://robo-outbox-{id(self)}"
        self.outbox = Outbox(self.ctx, self._outbox_endpoint)
        self.curve: CurveServer | None = None
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None
        # Re-proposals from exemplars after acceptances (engines that learn from them only).
        self.repropose: Debouncer | None = None
        self._keys: dict[str, dict[int, str]] = {}
        self._propagations = 0
        self._handlers: dict[type, Callable[[Envelope, Any], msgspec.Struct | None]] = {
            Hello: self._hello,
            Ping: self._ping,
            GetAnnotation: self._get_annotation,
            GetHistory: self._get_history,
            ListEpisodes: self._list_episodes,
            Submit: self._submit,
            Predict: self._predict,
            GetQueue: self._get_queue,
            GetModel: lambda env, req: ModelReply(id=req.id, model=self.model),
            ReloadModel: self._reload,
        }
        # Track / CancelTrack: checked here, tracked on the service's own worker thread.
        self.tracks = TrackService(self.registry, self.outbox, config.tracker, config.tracker_options)
        self._handlers.update(self.tracks.handlers())

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
        self._engine_thread = threading.Thread(target=self._engine_loop, name="backend-engine", daemon=True)
        self._engine_thread.start()
        if getattr(self.engine, "supports_exemplars", False) and cfg.propagation_delay > 0:
            self.repropose = Debouncer(cfg.propagation_delay, self._schedule_repropose)
            # Proposals a crash or a restart left behind their exemplars are made again.
            self._enqueue(_EngineTask(self._sweep_stale, "propagation sweep"))
        log.info(
            "serving %s on %s (events %s), engine %s",
            ", ".join(self.registry.ids),
            cfg.bind,
            cfg.events,
            self.model.tag,
        )

    def _teardown(self) -> None:
        if self.repropose is not None:
            self.repropose.close()
        self.tracks.close()
        self._engine_q.put(None)
        if getattr(self, "_engine_thread", None) is not None:
            self._engine_thread.join(timeout=30)
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
        self.engine.close()
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
                    Event(kind="heartbeat", time=time.time(), busy=self._busy, model=self.model.tag)
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
        except (RequestError, RegistryError, TrackRequestError) as exc:
            reply = Error(id=msg_id, code=exc.code, message=str(exc))
        except DatasetError as exc:
            reply = Error(id=msg_id, code="not_found", message=str(exc))
        except Exception as exc:  # a bug: say so and keep serving
            log.exception("request failed")
            reply = Error(id=msg_id, code="internal", message=f"internal error ({type(exc).__name__}: {exc})")
        if reply is not None:
            self._send(envelope, reply)

    # ------------------------------------------------------------ reads

    def _hello(self, envelope: Envelope, req: Hello) -> msgspec.Struct:
        if req.protocol != PROTOCOL_VERSION:
            return Error(
                id=req.id,
                code="version",
                message=f"client speaks protocol {req.protocol}, this server speaks {PROTOCOL_VERSION}: upgrade the older side",
            )
        infos = []
        for ds_id in self.registry.ids:
            try:
                ds = self.registry.get(ds_id)
            except DatasetError as exc:
                log.warning("dataset %s unusable: %s", ds_id, exc)
                continue
            infos.append(DatasetInfo(id=ds_id, episodes=len(ds), fps=ds.fps, cameras=ds.cameras))
        return Welcome(
            id=req.id,
            protocol=PROTOCOL_VERSION,
            server=SERVER_NAME,
            model=self.model,
            datasets=infos,
            heartbeat_s=self.config.heartbeat_s,
            events=self.config.events or "",
        )

    def _ping(self, envelope: Envelope, req: Ping) -> msgspec.Struct:
        return Pong(id=req.id, time=time.time(), busy=self._busy)

    def _get_annotation(self, envelope: Envelope, req: GetAnnotation) -> msgspec.Struct:
        self.registry.check_episode(req.dataset, req.episode)
        if req.revision is None:
            ann = self.reader.head(req.dataset, req.episode)
        else:
            ann = self.reader.get(req.dataset, req.episode, req.revision)
            if ann is None:
                raise RequestError(
                    "not_found", f"{req.dataset} episode {req.episode} has no revision {req.revision}"
                )
        suggestion = self.reader.suggestion(req.dataset, req.episode) if req.revision is None else None
        return AnnotationReply(
            id=req.id, dataset=req.dataset, episode=req.episode, annotation=ann, suggestion=suggestion
        )

    def _get_history(self, envelope: Envelope, req: GetHistory) -> msgspec.Struct:
        self.registry.check_episode(req.dataset, req.episode)
        return HistoryReply(
            id=req.id,
            dataset=req.dataset,
            episode=req.episode,
            revisions=self.reader.history(req.dataset, req.episode),
        )

    def _list_episodes(self, envelope: Envelope, req: ListEpisodes) -> msgspec.Struct:
        ds = self.registry.get(req.dataset)
        heads = {h.episode: h for h in self.reader.heads(req.dataset)}
        rows = []
        for ep in ds.episodes:
            h = heads.get(ep)
            rows.append(
                (ep, h.revision, h.review, -1.0 if h.uncertainty is None else h.uncertainty)
                if h
                else (ep, 0, "unreviewed", -1.0)
            )
        return EpisodesReply(id=req.id, dataset=req.dataset, episodes=rows)

    def _get_queue(self, envelope: Envelope, req: GetQueue) -> msgspec.Struct:
        ids = [req.dataset] if req.dataset is not None else self.registry.ids
        candidates = []
        for ds_id in ids:
            ds = self.registry.get(ds_id)
            # (episode, uncertainty, status): episodes with a head not yet accepted, and episodes a
            # model answered but nothing could be applied to (no head at all).
            waiting = [
                (h.episode, h.uncertainty, self._head_status(ds_id, h))
                for h in self.reader.heads(ds_id)
                if h.review != "accepted"
            ] + self.reader.headless_predictions(ds_id)
            for episode, uncertainty, status in waiting:
                if episode not in ds.episodes:
                    continue
                info = ds.episode(episode)
                candidates.append(
                    Candidate(
                        dataset=ds_id,
                        episode=episode,
                        uncertainty=1.0 if uncertainty is None else uncertainty,
                        task=info.task,
                        duration=info.duration,
                        status=status,
                    )
                )
        return QueueReply(id=req.id, items=rank(candidates, max(0, min(req.limit, 1000))))

    def _head_status(self, ds_id: str, head: Head) -> str:
        """The status of the prediction that made the head's model version ("" if none did)."""
        pred = self.reader.prediction(ds_id, head.episode, head.model) if head.model else None
        return pred["status"] if pred else ""

    # ------------------------------------------------------------ corrections

    def _submit(self, envelope: Envelope, req: Submit) -> None:
        c = req.correction
        ds = self.registry.check_episode(c.dataset, c.episode)
        if c.annotation is not None:
            if (c.annotation.dataset, c.annotation.episode) != (c.dataset, c.episode):
                raise RequestError("invalid", "correction.annotation is for another dataset or episode")
            validate_for_dataset(c.annotation, ds)
        future = self.writer.submit(lambda store: store.apply_correction(c))
        future.add_done_callback(partial(self._corrected, envelope, req))
        return None

    def _corrected(self, envelope: Envelope, req: Submit, future: Future) -> None:
        c = req.correction
        try:
            outcome = future.result()
        except Exception as exc:
            self.outbox.reply(
                envelope, Error(id=req.id, code="internal", message=f"store write failed: {exc}")
            )
            return
        if isinstance(outcome, Applied):
            self.outbox.reply(
                envelope, Ack(id=req.id, uuid=c.uuid, revision=outcome.revision, duplicate=outcome.duplicate)
            )
            if (
                not outcome.duplicate
                and self.repropose is not None
                and (outcome.annotation.review == "accepted" or outcome.previous_review == "accepted")
            ):
                # The task's exemplar set changed: its other episodes deserve new proposals.
                self.repropose.touch((c.dataset, self._task_key(c.dataset, c.episode)))
            if not outcome.duplicate:
                self.outbox.event(
                    Event(
                        kind="episode_changed",
                        time=time.time(),
                        dataset=c.dataset,
                        episode=c.episode,
                        revision=outcome.revision,
                        author=f"human:{c.user}",
                    )
                )
        elif isinstance(outcome, Conflicted):
            self.outbox.reply(
                envelope,
                Conflict(
                    id=req.id,
                    uuid=c.uuid,
                    base_revision=c.base_revision,
                    current=outcome.current,
                    yours=outcome.yours,
                ),
            )
        elif isinstance(outcome, Rejected):
            self.outbox.reply(envelope, Error(id=req.id, code=outcome.code, message=outcome.message))

    # ------------------------------------------------------------ engine work

    def _enqueue(self, task: _EngineTask) -> None:
        with self._busy_lock:
            self._busy += 1
        self._engine_q.put(task)

    def _engine_loop(self) -> None:
        # The engine thread reads the store (exemplars, what was predicted) on its own connection.
        self.engine_reader = Store(self.config.store, readonly=True)
        try:
            self._engine_tasks()
        finally:
            self.engine_reader.close()

    def _engine_tasks(self) -> None:
        while True:
            task = self._engine_q.get()
            if task is None:
                return
            try:
                task.run()
            except Exception:
                log.exception("engine task %s failed", task.label)
            finally:
                with self._busy_lock:
                    self._busy -= 1

    def _predict(self, envelope: Envelope, req: Predict) -> msgspec.Struct:
        ds = self.registry.get(req.dataset)
        missing = [e for e in req.episodes if e not in ds.episodes]
        if missing:
            raise RequestError("not_found", f"dataset '{req.dataset}' has no episode(s) {missing[:10]}")
        unknown = sorted(set(req.kinds) - set(self.engine.kinds))
        if unknown or not req.kinds:
            raise RequestError(
                "invalid",
                f"the {self.model.engine} engine predicts {list(self.engine.kinds)}, not {unknown or req.kinds}",
            )
        if self._busy >= self.config.max_pending:
            raise RequestError("busy", f"{self._busy} engine jobs are waiting; try again later")
        todo, skipped = [], []
        index = self._exemplars(self.reader, req.dataset, ds)
        for e in dict.fromkeys(req.episodes):
            tag = self.engine.job_tag(self._job(req, ds, e, index))
            done = None if req.force else self.reader.prediction(req.dataset, e, tag)
            (skipped if done and done["status"] in ("ok", "unparseable") else todo).append(e)
        if todo:
            self._enqueue(
                _EngineTask(partial(self._run_predict, envelope, req, ds, todo), f"predict {req.dataset}")
            )
        else:
            self.outbox.reply(envelope, PredictDone(id=req.id, ok=0, failed=0, skipped=len(skipped)))
        return Accepted(id=req.id, total=len(todo), skipped=skipped)

    def _exemplars(self, store: Store, dataset_id: str, ds: Dataset) -> ExemplarIndex | None:
        """The dataset's accepted episodes by task, for engines that learn from them."""
        if not getattr(self.engine, "supports_exemplars", False):
            return None
        return ExemplarIndex.load(store, dataset_id, ds)

    def _job(self, req: Predict, ds: Dataset, episode: int, index: ExemplarIndex | None) -> EpisodeJob:
        exemplars = index.for_episode(episode) if index is not None else ()
        return EpisodeJob(req.dataset, ds, episode, tuple(req.kinds), dict(req.options), exemplars)

    def _run_predict(
        self,
        envelope: Envelope | None,
        req: Predict,
        ds: Dataset,
        episodes: list[int],
        index: ExemplarIndex | None = None,
        batch_size: int | None = None,
    ) -> None:
        if index is None:
            index = self._exemplars(self.engine_reader, req.dataset, ds)
        futures: list[Future] = []
        outcomes: dict[int, str] = {}
        done = 0
        batch = batch_size or self.config.batch_size
        for start in range(0, len(episodes), batch):
            chunk = episodes[start : start + batch]
            jobs = [self._job(req, ds, e, index) for e in chunk]
            try:
                preds = self.engine.predict(jobs)
                if len(preds) != len(jobs):
                    raise RuntimeError(f"engine returned {len(preds)} predictions for {len(jobs)} episodes")
            except Exception as exc:
                log.exception("engine failed")
                preds = [Prediction(status="error", error=f"engine failed: {exc}") for _ in jobs]
            for job, p in zip(jobs, preds, strict=True):
                e = job.episode
                outcomes[e] = p.status
                # A job with exemplars is answered by the version its exemplar set makes.
                model = self.engine.job_tag(job) if job.exemplars else self.model.tag
                kinds = list(p.kinds) if p.kinds is not None else list(req.kinds)
                fut = self.writer.submit(partial(_store_prediction, req.dataset, e, model, p, kinds))
                fut.add_done_callback(partial(self._predicted, envelope, req, e, p, model))
                futures.append(fut)
                done += 1
                self.outbox.reply(envelope, Progress(id=req.id, done=done, total=len(episodes), episode=e))
        ok = sum(1 for s in outcomes.values() if s == "ok")
        done_msg = PredictDone(id=req.id, ok=ok, failed=len(outcomes) - ok, skipped=0)
        # Through the writer too: its callbacks run in order on one thread, so the
        # summary reaches the client after every PredictResult.
        last = self.writer.submit(lambda store: None)
        last.add_done_callback(lambda _f: self.outbox.reply(envelope, done_msg))
        wait([*futures, last])

    def _predicted(
        self, envelope, req: Predict, episode: int, p: Prediction, model: str, future: Future
    ) -> None:
        try:
            revision, stored = future.result()
        except Exception as exc:
            self.outbox.reply(
                envelope, Error(id=req.id, code="internal", message=f"store write failed: {exc}")
            )
            return
        notes = dict(p.notes)
        if revision is None and p.status == "ok":
            notes["suggestion"] = True  # a person already edited this episode: not applied
        self.outbox.reply(
            envelope,
            PredictResult(
                id=req.id,
                dataset=req.dataset,
                episode=episode,
                status=p.status,
                model=model,
                annotation=stored or p.annotation,
                revision=revision,
                raw=p.raw,
                error=p.error,
                notes=notes,
            ),
        )
        self.outbox.event(
            Event(
                kind="prediction_ready",
                time=time.time(),
                dataset=req.dataset,
                episode=episode,
                revision=revision or 0,
                model=model,
            )
        )

    # ------------------------------------------------------------ propagation

    def _task_key(self, dataset_id: str, episode: int) -> str:
        from backend.exemplars import task_keys

        keys = self._keys.get(dataset_id)
        if keys is None:
            keys = self._keys[dataset_id] = task_keys(self.registry.get(dataset_id))
        return keys.get(episode, "")

    def _schedule_repropose(self, key: tuple[str, str]) -> None:
        self._enqueue(_EngineTask(partial(self._run_repropose, *key), f"propagate {key[0]}"))

    def _run_repropose(self, dataset_id: str, task_key: str) -> None:
        """New proposals for every episode of the task that nobody accepted (on the engine thread)."""
        ds = self.registry.get(dataset_id)
        index = ExemplarIndex.load(self.engine_reader, dataset_id, ds)
        for ep, why in sorted(index.unusable.items()):
            log.warning("%s: accepted episode %d cannot serve as an exemplar: %s", dataset_id, ep, why)
        heads = {h.episode: h for h in self.engine_reader.heads(dataset_id)}
        req = Predict(
            id=f"propagate-{self._propagations}",
            dataset=dataset_id,
            episodes=[],
            kinds=list(self.engine.kinds),
        )
        self._propagations += 1
        todo = []
        for e in index.episodes_of_task(task_key):
            head = heads.get(e)
            if head is not None and head.review == "accepted":
                continue
            job = self._job(req, ds, e, index)
            if not job.exemplars:
                continue
            done = self.engine_reader.prediction(dataset_id, e, self.engine.job_tag(job))
            if done is None or done["status"] not in ("ok", "unparseable"):
                todo.append(e)
        if todo:
            log.info(
                "re-proposing %d episode(s) of %s from %s", len(todo), dataset_id, task_key or "its task"
            )
            # Large batches: the kinematic engine spreads them over its worker processes.
            self._run_predict(
                None, msgspec.structs.replace(req, episodes=todo), ds, todo, index, batch_size=256
            )

    def _sweep_stale(self) -> None:
        """At start: tasks whose proposals are older than their exemplars are re-proposed."""
        for ds_id in self.registry.ids:
            try:
                ds = self.registry.get(ds_id)
            except DatasetError:
                continue
            index = ExemplarIndex.load(self.engine_reader, ds_id, ds)
            for key in index.groups:
                self._run_repropose(ds_id, key)

    def _reload(self, envelope: Envelope, req: ReloadModel) -> None:
        self._enqueue(_EngineTask(partial(self._run_reload, envelope, req), "reload"))

    def _run_reload(self, envelope: Envelope, req: ReloadModel) -> None:
        try:
            info = self.engine.reload(req.path, req.version)
        except NotImplementedError as exc:
            self.outbox.reply(envelope, Error(id=req.id, code="invalid", message=str(exc)))
            return
        except Exception as exc:
            log.exception("reload failed")
            self.outbox.reply(
                envelope, Error(id=req.id, code="engine", message=f"reload of {req.path} failed: {exc}")
            )
            return
        self.model = info
        self.outbox.event(Event(kind="model_reloaded", time=time.time(), model=info.tag))
        self.outbox.reply(envelope, ModelReply(id=req.id, model=info))
        if req.repredict:
            for ds_id in self.registry.ids:
                ds = self.registry.get(ds_id)
                eps = [
                    h.episode
                    for h in self.reader.heads(ds_id)
                    if h.review == "unreviewed" and h.episode in ds.episodes
                ]
                if eps:
                    sub = Predict(
                        id=f"{req.id}:{ds_id}", dataset=ds_id, episodes=eps, kinds=list(self.engine.kinds)
                    )
                    self._enqueue(
                        _EngineTask(partial(self._run_predict, None, sub, ds, eps), f"repredict {ds_id}")
                    )


def _store_prediction(dataset: str, episode: int, model: str, p: Prediction, kinds: list[str], store: Store):
    revision = store.add_prediction(dataset, episode, model, p.status, p.annotation, kinds, p.raw, p.error)
    return revision, (store.get(dataset, episode, revision) if revision is not None else None)
