"""Batch pre-annotation of a dataset into the store, resumable.

Episodes the same model version already predicted (ok or unparseable) are
skipped, so an interrupted run picks up where it stopped; an episode that failed
is recorded with its error and the run goes on (and retries it next time). For an
engine that learns from accepted episodes the version includes the fingerprint of
the episode's exemplar set, so a run re-predicts exactly the episodes whose
exemplars changed since.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from backend.engines import Engine, EpisodeJob, Prediction
from backend.exemplars import ExemplarIndex
from core.dataset import Dataset
from core.store import Store


@dataclass
class AnnotateReport:
    predicted: int = 0
    skipped: int = 0
    failed: dict[int, str] = field(default_factory=dict)
    unparseable: list[int] = field(default_factory=list)
    # Accepted episodes that cannot teach the engine, and why (e.g. accepted with no segments).
    unusable_exemplars: dict[int, str] = field(default_factory=dict)


def annotate_dataset(
    root: Path,
    store_path: Path,
    engine: Engine,
    episodes: list[int] | None = None,
    kinds: tuple[str, ...] = ("segments",),
    batch_size: int = 8,
    progress: Callable[[int, int], None] | None = None,
    dataset_id: str | None = None,
) -> AnnotateReport:
    ds = Dataset(root)
    ds_id = dataset_id or ds.name
    wanted = ds.select(episodes)
    report = AnnotateReport()
    with Store(store_path) as store:
        index = ExemplarIndex.load(store, ds_id, ds) if getattr(engine, "supports_exemplars", False) else None
        if index is not None:
            report.unusable_exemplars = dict(index.unusable)
        accepted = {h.episode for h in store.heads(ds_id) if h.review == "accepted"}

        def job(e: int) -> EpisodeJob:
            return EpisodeJob(ds_id, ds, e, kinds, exemplars=index.for_episode(e) if index else ())

        todo = []
        for e in wanted:
            prev = store.prediction(ds_id, e, engine.job_tag(job(e)))
            if (prev and prev["status"] in ("ok", "unparseable")) or e in accepted:
                report.skipped += 1
            else:
                todo.append(e)
        done = report.skipped
        if progress:
            progress(done, len(wanted))
        for start in range(0, len(todo), batch_size):
            chunk = todo[start : start + batch_size]
            jobs = [job(e) for e in chunk]
            try:
                preds = engine.predict(jobs)
            except Exception as exc:  # the engine itself broke: every episode of the batch failed
                preds = [Prediction(status="error", error=f"engine failed: {exc}") for _ in jobs]
            with store.transaction():
                for j, p in zip(jobs, preds, strict=True):
                    e = j.episode
                    model = engine.job_tag(j)
                    got = list(p.kinds) if p.kinds is not None else list(kinds)
                    store.add_prediction(ds_id, e, model, p.status, p.annotation, got, p.raw, p.error)
                    if p.status == "ok":
                        report.predicted += 1
                    elif p.status == "unparseable":
                        report.unparseable.append(e)
                    else:
                        report.failed[e] = p.error
            done += len(chunk)
            if progress:
                progress(done, len(wanted))
    return report
