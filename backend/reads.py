"""The backend's read requests: answered at once on the I/O thread from a WAL reader.

SQLite lets a reader run beside the writer, so a hello, an annotation, a history,
the episode list or the review queue never waits for a correction or a prediction
being written.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING

import msgspec

from backend.config import ServerConfig
from backend.handling import Envelope, RequestError
from backend.registry import DatasetRegistry
from backend.review_queue import Candidate, rank
from core.errors import DatasetError
from core.protocol import (
    PROTOCOL_VERSION,
    AnnotationReply,
    DatasetInfo,
    EpisodesReply,
    Error,
    GetAnnotation,
    GetHistory,
    GetModel,
    GetQueue,
    Hello,
    HistoryReply,
    ListEpisodes,
    ModelReply,
    Ping,
    Pong,
    QueueReply,
    Welcome,
)
from core.store import Head, Store

if TYPE_CHECKING:
    from backend.engine_work import EngineWork

log = logging.getLogger("robo.backend")
SERVER_NAME = "robo-backend/0.1"


class Reads:
    """Hello, ping, annotations, history, the episode list, the review queue and the model."""

    def __init__(self, config: ServerConfig, registry: DatasetRegistry, work: EngineWork) -> None:
        self.config = config
        self.registry = registry
        self.work = work
        self.reader: Store | None = None  # opened on the I/O thread when serving starts

    def handlers(self) -> dict[type, object]:
        return {
            Hello: self.hello,
            Ping: self.ping,
            GetAnnotation: self.get_annotation,
            GetHistory: self.get_history,
            ListEpisodes: self.list_episodes,
            GetQueue: self.get_queue,
            GetModel: self.get_model,
        }

    def get_model(self, envelope: Envelope, req: GetModel) -> msgspec.Struct:
        return ModelReply(id=req.id, model=self.work.model)

    def hello(self, envelope: Envelope, req: Hello) -> msgspec.Struct:
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
            model=self.work.model,
            datasets=infos,
            heartbeat_s=self.config.heartbeat_s,
            events=self.config.events or "",
        )

    def ping(self, envelope: Envelope, req: Ping) -> msgspec.Struct:
        return Pong(id=req.id, time=time.time(), busy=self.work.busy)

    def get_annotation(self, envelope: Envelope, req: GetAnnotation) -> msgspec.Struct:
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

    def get_history(self, envelope: Envelope, req: GetHistory) -> msgspec.Struct:
        self.registry.check_episode(req.dataset, req.episode)
        return HistoryReply(
            id=req.id,
            dataset=req.dataset,
            episode=req.episode,
            revisions=self.reader.history(req.dataset, req.episode),
        )

    def list_episodes(self, envelope: Envelope, req: ListEpisodes) -> msgspec.Struct:
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

    def get_queue(self, envelope: Envelope, req: GetQueue) -> msgspec.Struct:
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
