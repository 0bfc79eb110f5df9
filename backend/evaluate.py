"""Score an engine's segments against a dataset's `ground_truth.json`.

The demo generator writes `ground_truth.json` beside the dataset (the simulator's
own phase labels), and any dataset with one in that layout (per episode
`episode_index`, `task`, `segments` of `name`, `start`, `end`) can be measured the
same way without a person: boundary F1 at a few tolerances, frame label accuracy,
and the uncertainty the engine claimed, per episode and on average, beside a peer
that needs no model at all (an equal split). With exemplars, the evaluation is one
active-learning step: what the engine proposes after a person accepted K episodes
of each task. The same metrics (core.metrics) score the trainer.
"""

from __future__ import annotations

import math
import tempfile
import uuid
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from backend.engines.base import Engine, EpisodeJob
from backend.exemplars import ExemplarIndex, task_keys
from core.annotations import EpisodeAnnotation, Segment, repair_cover
from core.dataset import Dataset
from core.metrics import boundary_f1, frame_label_accuracy
from core.protocol import Correction
from core.store import Applied, Store

GROUND_TRUTH = "ground_truth.json"

TOLERANCES = (0.25, 0.5, 1.0)
METRICS = ("f1@0.25", "f1@0.5", "f1@1.0", "label_acc", "uncertainty")


def true_segments(record: dict[str, Any], duration: float, fps: float) -> list[Segment]:
    """A ground-truth record's segments as a cover of [0, duration] (its rounding repaired)."""
    segs = []
    for s in record.get("segments") or []:
        start, end = float(s["start"]), min(float(s["end"]), duration)
        if end > start:
            segs.append(Segment(name=str(s["name"]), start=start, end=end))
    return repair_cover(segs, duration, fps)


def accept_ground_truth(
    store: Store, ds: Dataset, dataset_id: str, records: dict[int, dict[str, Any]], k: int
) -> dict[str, list[int]]:
    """Accept the K lowest-index episodes of each task with their true segments, as a person would
    (a correction through the store); returns task -> accepted episodes."""
    keys = task_keys(ds)
    chosen: dict[str, list[int]] = {}
    for ep in sorted(records):
        group = chosen.setdefault(keys[ep], [])
        if len(group) < k:
            group.append(ep)
    with store.transaction():
        for eps in chosen.values():
            for ep in eps:
                info = ds.episode(ep)
                ann = EpisodeAnnotation(
                    dataset=dataset_id,
                    episode=ep,
                    duration=info.duration,
                    fps=ds.fps,
                    task=info.task,
                    segments=true_segments(records[ep], info.duration, ds.fps),
                    review="accepted",
                )
                c = Correction(
                    uuid=uuid.uuid4().hex,
                    dataset=dataset_id,
                    episode=ep,
                    base_revision=0,
                    user="evaluate",
                    annotation=ann,
                )
                outcome = store.apply_correction(c)
                if not isinstance(outcome, Applied):
                    raise RuntimeError(f"could not accept episode {ep} in the evaluation store: {outcome}")
    return {key: eps for key, eps in chosen.items() if eps}


def equal_split(duration: float, names: list[str]) -> list[Segment]:
    """The no-model peer: the episode cut into len(names) equal parts, named in order."""
    n = max(1, len(names))
    return [
        Segment(
            name=names[i] if i < len(names) else "segment", start=duration * i / n, end=duration * (i + 1) / n
        )
        for i in range(n)
    ]


def _peer_names(exemplars: tuple[EpisodeAnnotation, ...], own: list[Segment]) -> list[str]:
    """As many parts as the exemplars' median count (named like the exemplar nearest it), or the
    engine's own count and names when there are no exemplars."""
    if not exemplars:
        return [s.name for s in own] or ["segment"]
    counts = sorted(len(e.segments) for e in exemplars)
    median = counts[len(counts) // 2]
    nearest = min(exemplars, key=lambda e: (abs(len(e.segments) - median), e.episode))
    return [s.name for s in nearest.segments]


def _scores(got: list[Segment], true: list[Segment], length: int, fps: float) -> dict[str, float]:
    row = {f"f1@{tol}": boundary_f1(got, true, tol)[2] for tol in TOLERANCES}
    row["label_acc"] = frame_label_accuracy(got, true, length, fps)
    return row


def _means(rows: list[dict[str, Any]], n_all: int, metrics: Iterable[str]) -> dict[str, float]:
    mean: dict[str, float] = {}
    for m in metrics:
        vals = [r[m] for r in rows if m in r and not math.isnan(r[m])]
        if m == "uncertainty":
            mean[m] = sum(vals) / len(vals) if vals else math.nan
        else:
            mean[m] = sum(vals) / n_all if n_all else math.nan
    return mean


def evaluate_engine(
    dataset_root: str | Path,
    engine: Engine,
    episodes: Iterable[int] | None = None,
    exemplars: int = 0,
) -> dict[str, Any]:
    """Run `engine` on the episodes of a dataset with a ground_truth.json and score them.

    With `exemplars` = K > 0, the K lowest-index episodes of each task that have ground
    truth are first accepted with their true segments in a scratch store, exactly as a
    reviewer's acceptance lands in the backend's, and the engine gets them as exemplars
    through the same index the backend uses; those episodes are not scored.

    Returns {"dataset", "engine", "exemplars", "episodes": [row...], "mean": {metric: value},
    "peer": {...}, "errors": [{"episode", "status", "error"}...]}. A row holds the metrics of
    one episode the engine answered; episodes it failed on are listed in "errors" and count as
    zero in the means of the scores (a failure is not a free pass), and are left out of the mean
    uncertainty, which only they could not report. "peer" holds the same scores for the equal
    split into as many parts as the exemplars' median count (K = 0: the engine's own count).
    """
    # core.demo.writer pulls in the renderer (Pillow): only pay for it when evaluating.
    from core.demo.writer import load_ground_truth

    if exemplars < 0:
        raise ValueError(f"exemplars = {exemplars}: must be >= 0")
    root = Path(dataset_root)
    ds = Dataset(root)
    truth = load_ground_truth(root)
    by_index: dict[int, dict[str, Any]] = {}
    for i, r in enumerate(truth.get("episodes", [])):
        try:
            by_index[int(r["episode_index"])] = r
        except (KeyError, TypeError, ValueError):
            raise ValueError(f"{root / GROUND_TRUTH}: episodes[{i}] has no usable 'episode_index'") from None
    unknown = sorted(e for e in by_index if e not in ds.episodes)
    if unknown:
        raise ValueError(f"{root / GROUND_TRUTH}: episode(s) {unknown[:10]} are not in the dataset")
    wanted = sorted(by_index) if episodes is None else [int(e) for e in episodes]
    missing = [e for e in wanted if e not in by_index]
    if missing:
        raise ValueError(f"{root}: no ground truth for episode(s) {', '.join(map(str, missing))}")
    with tempfile.TemporaryDirectory(prefix="robo-evaluate-") as tmp, Store(Path(tmp) / "store.db") as store:
        accepted = accept_ground_truth(store, ds, ds.name, by_index, exemplars) if exemplars else {}
        index = ExemplarIndex.load(store, ds.name, ds)
    done = {e for eps in accepted.values() for e in eps}
    scored = [e for e in wanted if e not in done]
    jobs = [
        EpisodeJob(dataset_id=ds.name, dataset=ds, episode=e, exemplars=index.for_episode(e)) for e in scored
    ]
    preds = engine.predict(jobs)
    if len(preds) != len(jobs):
        raise RuntimeError(f"engine {engine.tag} answered {len(preds)} predictions for {len(jobs)} jobs")
    rows: list[dict[str, Any]] = []
    peer_rows: list[dict[str, Any]] = []
    errors: list[dict[str, Any]] = []
    for job, pred in zip(jobs, preds, strict=True):
        ep = job.episode
        info = ds.episode(ep)
        true = true_segments(by_index[ep], info.duration, ds.fps)
        got = pred.annotation.segments if pred.status == "ok" and pred.annotation is not None else []
        peer = equal_split(info.duration, _peer_names(job.exemplars, got))
        peer_rows.append({"episode": ep, **_scores(peer, true, info.length, ds.fps), "segments": len(peer)})
        if not got:
            errors.append({"episode": ep, "status": pred.status, "error": pred.error or pred.raw})
            continue
        row: dict[str, Any] = {"episode": ep, **_scores(got, true, info.length, ds.fps)}
        unc = pred.annotation.uncertainty
        row["uncertainty"] = math.nan if unc is None else float(unc)
        row["segments"] = len(got)
        row["true_segments"] = len(true)
        row["notes"] = pred.notes
        rows.append(row)
    peer_mean = _means(peer_rows, len(scored), METRICS[:-1])
    return {
        "dataset": str(root),
        "engine": engine.tag,
        "exemplars": {"k": exemplars, "accepted": accepted},
        "episodes": rows,
        "mean": _means(rows, len(scored), METRICS),
        "peer": {"method": "equal split", **peer_mean, "mean": peer_mean, "episodes": peer_rows},
        "errors": errors,
    }


def format_report(result: dict[str, Any]) -> str:
    """A plain-text table: one row per episode, then the mean, the peer's mean, any failures."""
    head = f"{'episode':>7}  " + "  ".join(f"{m:>11}" for m in METRICS) + f"  {'segs':>4}  evidence"
    k = (result.get("exemplars") or {}).get("k", 0)
    accepted = (result.get("exemplars") or {}).get("accepted") or {}
    lines = [f"engine {result['engine']} on {result['dataset']}"]
    if k:
        shown = ", ".join(str(e) for eps in accepted.values() for e in eps)
        lines.append(f"exemplars: {k} per task (accepted episodes {shown or 'none'})")
    lines += [head, "-" * len(head)]

    def fmt(v: float | None) -> str:
        return f"{'-':>11}" if v is None or math.isnan(v) else f"{v:>11.3f}"

    for r in result["episodes"]:
        notes = r.get("notes") or {}
        if notes.get("origin"):
            evidence = notes["origin"]
        else:
            grip = notes.get("gripper_channel")
            how = notes.get("gripper_found_by", "")
            evidence = f"{grip} ({how})" if grip else (how or "")
        lines.append(
            f"{r['episode']:>7}  "
            + "  ".join(fmt(r[m]) for m in METRICS)
            + f"  {r['segments']:>4}  {evidence}"
        )
    for e in result["errors"]:
        lines.append(f"{e['episode']:>7}  {e['status']}: {e['error']}")
    lines.append("-" * len(head))
    lines.append(f"{'mean':>7}  " + "  ".join(fmt(result["mean"][m]) for m in METRICS))
    peer = result.get("peer")
    if peer:
        lines.append(
            f"{'peer':>7}  " + "  ".join(fmt(peer["mean"].get(m)) for m in METRICS) + f"  ({peer['method']})"
        )
    return "\n".join(lines)
