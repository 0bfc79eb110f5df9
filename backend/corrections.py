"""Corrections: validated on the I/O thread, applied by the store writer, acknowledged once durable.

An acknowledgement leaves only after the writer's group commit has the correction on
disk; a correction based on an old revision comes back as a conflict with both
versions. An acceptance also tells the engine side that its task's exemplars changed.
"""

from __future__ import annotations

import time
from concurrent.futures import Future
from functools import partial
from typing import TYPE_CHECKING

from backend.handling import Envelope, RequestError
from backend.outbox import Outbox
from backend.registry import DatasetRegistry
from backend.writer import StoreWriter
from core.annotations import CAMERA_FIELDS, EpisodeAnnotation
from core.dataset import Dataset
from core.protocol import Ack, Conflict, Error, Event, Submit
from core.store import Applied, Conflicted, Rejected

if TYPE_CHECKING:
    from backend.engine_work import EngineWork


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


class Corrections:
    """Submit: check it fits the dataset, hand it to the writer, answer when it is durable."""

    def __init__(
        self, registry: DatasetRegistry, writer: StoreWriter, outbox: Outbox, work: EngineWork
    ) -> None:
        self.registry = registry
        self.writer = writer
        self.outbox = outbox
        self.work = work

    def handlers(self) -> dict[type, object]:
        return {Submit: self.submit}

    def submit(self, envelope: Envelope, req: Submit) -> None:
        c = req.correction
        ds = self.registry.check_episode(c.dataset, c.episode)
        if c.annotation is not None:
            if (c.annotation.dataset, c.annotation.episode) != (c.dataset, c.episode):
                raise RequestError("invalid", "correction.annotation is for another dataset or episode")
            validate_for_dataset(c.annotation, ds)
        future = self.writer.submit(lambda store: store.apply_correction(c))
        future.add_done_callback(partial(self.corrected, envelope, req))
        return None

    def corrected(self, envelope: Envelope, req: Submit, future: Future) -> None:
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
                and self.work.repropose is not None
                and (outcome.annotation.review == "accepted" or outcome.previous_review == "accepted")
            ):
                # The task's exemplar set changed: its other episodes deserve new proposals.
                self.work.repropose.touch((c.dataset, self.work.task_key(c.dataset, c.episode)))
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
