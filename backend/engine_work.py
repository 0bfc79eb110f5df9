"""The engine's side of the backend: one thread for predictions, reloads and re-proposals.

Requests to predict or reload are checked on the I/O thread and queued; the engine
thread runs them one at a time, hands each prediction to the store writer and replies
through the outbox, so a slow prediction never holds up a correction. After an
acceptance the task's other episodes are re-proposed from its exemplars (debounced,
backend/propagation.py), and at start whatever a crash left behind its exemplars.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, wait
from dataclasses import dataclass
from functools import partial
from queue import Queue

import msgspec

from backend.config import ServerConfig
from backend.engines import Engine, EpisodeJob, Prediction
from backend.exemplars import ExemplarIndex
from backend.handling import Envelope, RequestError
from backend.outbox import Outbox
from backend.propagation import Debouncer
from backend.registry import DatasetRegistry
from backend.writer import StoreWriter
from core.dataset import Dataset
from core.errors import DatasetError
from core.protocol import (
    Accepted,
    Error,
    Event,
    ModelInfo,
    ModelReply,
    Predict,
    PredictDone,
    PredictResult,
    Progress,
    ReloadModel,
)
from core.store import Store

log = logging.getLogger("robo.backend")


@dataclass
class _EngineTask:
    run: Callable[[], None]
    label: str


class EngineWork:
    """Predict and ReloadModel, the engine thread that runs them, and re-proposals from exemplars."""

    def __init__(
        self,
        config: ServerConfig,
        registry: DatasetRegistry,
        engine: Engine,
        writer: StoreWriter,
        outbox: Outbox,
    ) -> None:
        self.config = config
        self.registry = registry
        self.engine = engine
        self.writer = writer
        self.outbox = outbox
        self.model: ModelInfo = engine.info()
        self._engine_q: Queue[_EngineTask | None] = Queue()
        self._busy = 0
        self._busy_lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self.reader: Store | None = None  # the I/O thread's reader, set when serving starts
        # Re-proposals from exemplars after acceptances (engines that learn from them only).
        self.repropose: Debouncer | None = None
        self._keys: dict[str, dict[int, str]] = {}
        self._propagations = 0

    @property
    def busy(self) -> int:
        """Engine jobs queued or running."""
        return self._busy

    def handlers(self) -> dict[type, object]:
        return {Predict: self.predict, ReloadModel: self.reload}

    def start(self) -> None:
        self._thread = threading.Thread(target=self._engine_loop, name="backend-engine", daemon=True)
        self._thread.start()
        if getattr(self.engine, "supports_exemplars", False) and self.config.propagation_delay > 0:
            self.repropose = Debouncer(self.config.propagation_delay, self._schedule_repropose)
            # Proposals a crash or a restart left behind their exemplars are made again.
            self._enqueue(_EngineTask(self._sweep_stale, "propagation sweep"))

    def close(self) -> None:
        if self.repropose is not None:
            self.repropose.close()
        self._engine_q.put(None)
        if self._thread is not None:
            self._thread.join(timeout=30)
        self.engine.close()

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

    def predict(self, envelope: Envelope, req: Predict) -> msgspec.Struct:
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

    def task_key(self, dataset_id: str, episode: int) -> str:
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

    def reload(self, envelope: Envelope, req: ReloadModel) -> None:
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
