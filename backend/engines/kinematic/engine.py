"""The kinematic engine: proposals from an episode's own signals, no GPU, no weights.

With accepted episodes of the same task (the job's exemplars) it aligns the episode
to them and carries their annotations over (propagate.py); without, or when no
exemplar can be aligned, it reads the episode's kinematics alone (zeroshot.py).
The model tag says which: `kinematic@V` for zero-shot, `kinematic@V+ex-<fp>` with
the fingerprint of the exemplar set, so `robo-backend annotate` re-predicts an
episode exactly when the exemplars it would learn from changed.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Sequence
from concurrent.futures import Future
from dataclasses import asdict
from typing import Any

from backend.engines.base import Engine, EpisodeJob, Prediction
from backend.engines.kinematic.options import KinematicOptions
from backend.engines.kinematic.propagate import (
    Exemplar,
    ExemplarModel,
    PropagationError,
    fingerprint,
    layout,
)
from backend.engines.kinematic.workers import WorkerPool, default_workers, engine_options
from backend.engines.kinematic.zeroshot import ZeroShot
from core.annotations import ITEM_FIELDS, EpisodeAnnotation
from core.dataset import Dataset, EpisodeSignals

log = logging.getLogger("robo.backend.kinematic")

# Exemplar models kept ready (per dataset and exemplar set): one per task being reviewed.
MODEL_CACHE = 16


class KinematicEngine(Engine):
    """Segments (and, from exemplars, every time-anchored kind) from kinematics alone."""

    name = "kinematic"
    version = "2.0"
    kinds = ITEM_FIELDS
    device = "cpu"
    supports_exemplars = True

    def __init__(self, **options: Any) -> None:
        self.options = KinematicOptions.parse(options)
        self._zero = ZeroShot()
        self._models: OrderedDict[tuple[str, str], ExemplarModel | PropagationError] = OrderedDict()
        workers = int(self.options.workers) or default_workers()
        self._pool = WorkerPool(workers, engine_options(self.options))

    def warm(self) -> list[Future]:
        """Start the worker processes; the futures resolve once each has imported its libraries."""
        return self._pool.warm()

    def close(self) -> None:
        self._pool.close()

    def job_tag(self, job: EpisodeJob) -> str:
        base = f"{self.name}@{self.version}"
        return f"{base}+ex-{fingerprint(job.exemplars)}" if job.exemplars else base

    def predict(self, jobs: Sequence[EpisodeJob]) -> list[Prediction]:
        if self._pool.usable(jobs):
            try:
                return self._pool.predict(jobs)
            except Exception:  # a broken pool must not lose the batch: do it here instead
                log.exception("kinematic worker processes failed; predicting in this process")
                self._pool.close()
        out: list[Prediction] = []
        for job in jobs:
            try:
                out.append(self.predict_one(job))
            except Exception as exc:  # one bad episode must not sink the batch
                out.append(
                    Prediction(
                        status="error",
                        error=f"kinematic engine, {job.dataset_id} episode {job.episode}: "
                        f"{type(exc).__name__}: {exc}",
                    )
                )
        return out

    def predict_one(self, job: EpisodeJob) -> Prediction:
        # Per-job options override the engine's; other engines' options are not ours to refuse.
        opts = KinematicOptions.parse({**asdict(self.options), **job.options}, strict=False)
        base = f"{self.name}@{self.version}"
        fallback = ""
        if job.exemplars:
            try:
                return self._propagate(job, opts)
            except PropagationError as exc:
                fallback = str(exc)
        pred = self._zero.predict(job, opts, base)
        pred.kinds = ("segments",)
        if fallback:
            pred.notes["exemplars_unused"] = fallback
        return pred

    # ------------------------------------------------------------ propagation

    def _exemplar_signals(self, ds: Dataset, ann: EpisodeAnnotation) -> EpisodeSignals:
        return ds.signals(ann.episode)

    def _model(self, job: EpisodeJob, target: EpisodeSignals) -> tuple[ExemplarModel, list[str]]:
        """The exemplars that share the target's layout, ready to align to (cached per set)."""
        ds = job.dataset
        want = layout(target)
        usable, notes = [], []
        for ann in job.exemplars:
            if ann.episode not in ds.episodes:
                notes.append(f"exemplar episode {ann.episode} is not in the dataset")
                continue
            sig = self._exemplar_signals(ds, ann)
            if layout(sig) != want:
                notes.append(f"exemplar episode {ann.episode} has another state/action layout")
                continue
            usable.append(Exemplar(ann, sig))
        if not usable:
            raise PropagationError("; ".join(notes) or "no usable exemplar")
        key = (job.dataset_id, fingerprint([e.annotation for e in usable]))
        model = self._models.get(key)
        if model is None:
            try:
                model = ExemplarModel(usable, float(ds.fps))
            except PropagationError as exc:
                model = exc
            self._models[key] = model
            while len(self._models) > MODEL_CACHE:
                self._models.popitem(last=False)
        else:
            self._models.move_to_end(key)
        if isinstance(model, PropagationError):
            raise model
        return model, notes

    def _propagate(self, job: EpisodeJob, opts: KinematicOptions) -> Prediction:
        ds = job.dataset
        info = ds.episode(job.episode)
        fps = float(ds.fps)
        duration = info.length / fps
        target = ds.signals(job.episode)
        model, skipped = self._model(job, target)
        tag = self.job_tag(job)
        out = model.propose(target, duration, tag, opts.min_segment, info.task)
        notes = dict(out.notes)
        if skipped:
            notes["exemplars_skipped"] = skipped
        eps = notes["aligned_to"]
        origin = "aligned to episode" + ("s " if len(eps) > 1 else " ") + _and(eps)
        carried = ["segments"] + [k for k in ITEM_FIELDS if k != "segments" and out.items.get(k)]
        kinds = [k for k in carried if k in job.kinds] or ["segments"]
        ann = EpisodeAnnotation(
            dataset=job.dataset_id,
            episode=job.episode,
            duration=duration,
            fps=fps,
            task=info.task,
            segments=out.segments,
            uncertainty=out.uncertainty,
            model=tag,
            origin=origin,
            **{k: v for k, v in out.items.items() if k in kinds},
        )
        notes["origin"] = origin
        return Prediction(status="ok", annotation=ann, notes=notes, kinds=tuple(kinds))


def _and(items: Sequence[Any]) -> str:
    words = [str(i) for i in items]
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " and " + words[-1]
