"""Evaluate a model on accepted episodes it was not trained on.

The held-out episodes are chosen by the same hash rule as training (trainer.data),
so a checkpoint is scored on episodes it never saw, and two models compared in a
round are scored on the same ones. Every held-out episode is turned into the same
samples training makes (core.vlm.samples: the prompts the engines ask); the model
answers each prompt greedily, core.vlm.parse reads the answer, and the accepted
annotation, as written in the sample's answer (the coordinates the model is taught
in), is the truth. Metrics are pooled by trainer.metrics.

The report is JSON (metrics, the episodes and revisions scored, a few raw answers
that did not parse); `plot_rounds` draws the metrics of every round in a runs
folder into one PNG (matplotlib, Agg: no display needed).
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from core.annotations import EpisodeAnnotation, Segment, repair_cover
from core.dataset import Dataset
from core.vlm.parse import parse_answer
from core.vlm.samples import TASKS, Sample, build_samples, render_images
from trainer.checkpoint import CheckpointMeta, has_meta, read_meta, update_meta, write_json
from trainer.data import TrainingDataError, find_datasets, load_accepted, sample_config, split, triples
from trainer.metrics import Pool

log = logging.getLogger(__name__)

BOX_TASKS = ("box_current", "box_final", "box_contact", "gripper")
POINT_METRIC = {"trajectory": "traj_px", "trajectory_from_start": "traj_start_px"}


class Generator:
    """Greedy, batched answers from a checkpoint, encoded exactly as the engines and training encode.

    Left padding, so every prompt's answer starts right after it; bf16 on a GPU,
    fp32 on CPU.
    """

    def __init__(self, model: str | Path, max_new_tokens: int = 512, batch_size: int = 8) -> None:
        import torch
        from transformers import AutoModelForImageTextToText, AutoProcessor

        from trainer.model import attention_implementation

        self.device = "cuda" if torch.cuda.is_available() else "cpu"
        dtype = torch.bfloat16 if self.device == "cuda" and torch.cuda.is_bf16_supported() else torch.float32
        self.processor = AutoProcessor.from_pretrained(str(model))
        self.processor.tokenizer.padding_side = "left"
        self.model = AutoModelForImageTextToText.from_pretrained(
            str(model),
            dtype=dtype,
            attn_implementation=attention_implementation(half=dtype == torch.bfloat16),
        ).to(self.device)
        self.model.eval()
        self.max_new_tokens = max_new_tokens
        self.batch_size = batch_size

    def close(self) -> None:
        import torch

        del self.model
        if torch.cuda.is_available():
            torch.cuda.empty_cache()

    def __call__(self, batch: Sequence[tuple[Sample, list[Any]]]) -> list[str]:
        import torch

        from trainer.collate import AnswerOnlyCollator

        out: list[str] = []
        prompt_of = AnswerOnlyCollator(self.processor).prompt_text
        for i in range(0, len(batch), self.batch_size):
            chunk = batch[i : i + self.batch_size]
            texts = [prompt_of(s) for s, _ in chunk]
            images = [im for _, ims in chunk for im in ims]
            enc = self.processor(text=texts, images=images or None, padding=True, return_tensors="pt").to(
                self.device
            )
            with torch.inference_mode():
                gen = self.model.generate(**enc, max_new_tokens=self.max_new_tokens, do_sample=False)
            new = gen[:, enc["input_ids"].shape[1] :]
            out.extend(self.processor.batch_decode(new, skip_special_tokens=True))
        return out


def _pick(anns: list[EpisodeAnnotation], name: str, fraction: float) -> list[EpisodeAnnotation]:
    parts = split(anns, fraction)
    return {"heldout": parts.heldout, "train": parts.train, "all": list(anns)}[name]


def _cap(samples: list[Sample], per_task: int | None) -> list[Sample]:
    if per_task is None:
        return samples
    seen: dict[str, int] = defaultdict(int)
    kept = []
    for s in samples:
        if seen[s.task] < per_task:
            kept.append(s)
            seen[s.task] += 1
    return kept


def evaluate(
    model: str | Path,
    *,
    store: str | Path,
    datasets: Sequence[str | Path],
    split_name: str = "heldout",
    family: str | None = None,
    tasks: Sequence[str] | None = None,
    heldout_fraction: float | None = None,
    sample_options: dict[str, Any] | None = None,
    max_new_tokens: int = 512,
    batch_size: int = 8,
    max_per_task: int | None = None,
    out: str | Path | None = None,
    generator: Generator | None = None,
    record: bool = True,
) -> dict[str, Any]:
    """Score `model` on the accepted episodes of `split_name`; returns (and writes) the report.

    Family, sample options and held-out fraction default to those the checkpoint was
    trained with (robo_trainer.json), so it is asked the way it was taught. For a
    checkpoint with robo_trainer.json and the held-out split, the metrics are also
    written into it (unless `record` is False: a previous round's model scored anew).
    """
    if split_name not in ("heldout", "train", "all"):
        raise ValueError(f"split = {split_name!r}: must be heldout, train or all")
    meta: CheckpointMeta | None = read_meta(model) if has_meta(model) else None
    family = family or (meta.data.family if meta else "qwen2_5_vl")
    fraction = (
        heldout_fraction if heldout_fraction is not None else (meta.data.heldout_fraction if meta else 0.2)
    )
    options = dict(meta.data.sample_options) if meta else {}
    options.update(sample_options or {})
    cfg = sample_config(options)
    tasks = tuple(tasks or (meta.data.samples if meta and meta.data.samples else TASKS))

    paths = find_datasets(datasets)
    anns = _pick(load_accepted(store, paths), split_name, fraction)
    if not anns:
        raise TrainingDataError(
            f"{store}: no accepted episodes in the {split_name} split (held-out fraction {fraction}); "
            "accept more episodes or change --heldout-fraction"
        )
    opened = {n: Dataset(paths[n]) for n in sorted({a.dataset for a in anns})}
    samples: list[Sample] = []
    for ann in anns:
        samples.extend(
            s for s in build_samples(ann, opened[ann.dataset], family, tasks, config=cfg) if s.answer
        )
    samples = _cap(samples, max_per_task)
    if not samples:
        raise TrainingDataError(
            f"{store}: the {split_name} episodes have no data for tasks {', '.join(tasks)}"
        )

    started = time.perf_counter()
    own = generator is None
    gen = generator or Generator(model, max_new_tokens=max_new_tokens, batch_size=batch_size)
    try:
        from core.video import FrameReader

        reader = FrameReader(cache_bytes=128 * 2**20)
        try:
            batch = [(s, render_images(s, opened[s.dataset], reader)) for s in samples]
        finally:
            reader.close()
        answers = gen(batch)
    finally:
        if own:
            gen.close()
    seconds = time.perf_counter() - started

    pool = Pool()
    by_key = {a.key: a for a in anns}
    seg_pred: dict[tuple[str, int], list[Segment]] = defaultdict(list)
    seg_seen: set[tuple[str, int]] = set()
    failures: list[dict[str, str]] = []
    for s, text in zip(samples, answers, strict=True):
        got = parse_answer(s.task, text, s.meta)
        gold = parse_answer(s.task, s.answer, s.meta)
        if not gold.ok:  # our own answer must read back; if not, it is a bug to show, not to score
            raise TrainingDataError(f"sample {s.id}: its accepted answer does not parse back ({gold.error})")
        pool.add_answer(s.task, got.ok)
        if not got.ok and len(failures) < 5:
            failures.append({"sample": s.id, "error": got.error, "raw": text[:300]})
        items = got.items if got.ok else []
        sizes = _sizes(opened[s.dataset])
        if s.task == "segmentation":
            seg_seen.add((s.dataset, s.episode))
            seg_pred[(s.dataset, s.episode)].extend(i for i in items if isinstance(i, Segment))
        elif s.task in BOX_TASKS:
            pool.add_boxes(gold.items, items)  # type: ignore[arg-type]
        elif s.task in POINT_METRIC:
            pool.add_trajectories(gold.items, items, sizes, POINT_METRIC[s.task])  # type: ignore[arg-type]
        elif s.task == "contact_point":
            pool.add_contacts(gold.items, items, sizes)  # type: ignore[arg-type]
    for key in sorted(seg_seen):
        ann = by_key[key]
        pred = repair_cover(seg_pred[key], ann.duration, ann.fps)
        pool.add_segments(ann.segments, pred, ann.n_frames, ann.fps)

    metrics = pool.summary()
    report: dict[str, Any] = {
        "model": str(model),
        "version": meta.version if meta else "",
        "round": meta.round if meta else 0,
        "split": split_name,
        "heldout_fraction": fraction,
        "episodes": triples(anns),
        "samples": {
            t: sum(1 for s in samples if s.task == t) for t in tasks if any(s.task == t for s in samples)
        },
        "metrics": metrics,
        "unparseable_examples": failures,
        "seconds": seconds,
        "created": time.time(),
    }
    target = (
        Path(out)
        if out is not None
        else (Path(model) / f"eval_{split_name}.json" if Path(model).is_dir() else None)
    )
    if target is not None:
        write_json(target, report)
        report["path"] = str(target)
    if record and meta is not None and split_name == "heldout":
        update_meta(model, metrics={k: v for k, v in metrics.items() if v == v})
    return report


def _sizes(ds: Dataset) -> dict[str, tuple[int, int]]:
    out = {}
    for cam in ds.cameras:
        h, w = ds.camera_shape(cam)
        out[cam] = (w, h)
    return out


# ---------------------------------------------------------------- plot

PLOT_UNIT = ("f1@0.25", "f1@0.5", "f1@1.0", "label_acc", "box_iou", "unparseable", "score")
PLOT_PIXELS = ("traj_px", "traj_start_px", "contact_px")


def round_history(runs: str | Path) -> list[tuple[int, str, dict[str, float], bool]]:
    """(round, version, metrics, promoted) of every evaluated checkpoint under `runs`, by round."""
    rows = []
    for d in sorted(Path(runs).iterdir()) if Path(runs).is_dir() else []:
        if d.is_dir() and has_meta(d):
            m = read_meta(d)
            if m.metrics:
                rows.append((m.round, m.version, dict(m.metrics), m.promoted))
    baseline = Path(runs) / "baseline.json"
    if baseline.is_file():
        import json

        b = json.loads(baseline.read_text())
        rows.append((0, "base", {k: v for k, v in b.get("metrics", {}).items() if v is not None}, True))
    return sorted(rows, key=lambda r: r[0])


def plot_rounds(runs: str | Path, out: str | Path | None = None) -> Path:
    """Metrics across rounds as a PNG (left: scores in [0, 1]; right: pixel errors)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = round_history(runs)
    if not rows:
        raise TrainingDataError(f"{runs}: no evaluated checkpoints (robo_trainer.json with metrics) to plot")
    target = Path(out) if out is not None else Path(runs) / "metrics.png"
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    rounds = [r[0] for r in rows]
    for name in PLOT_UNIT:
        ys = [r[2].get(name, float("nan")) for r in rows]
        if any(y == y for y in ys):
            left.plot(rounds, ys, marker="o", label=name, linewidth=2.5 if name == "score" else 1.2)
    for name in PLOT_PIXELS:
        ys = [r[2].get(name, float("nan")) for r in rows]
        if any(y == y for y in ys):
            right.plot(rounds, ys, marker="o", label=name)
    for r, _v, m, promoted in rows:
        if promoted and "score" in m:
            left.annotate(
                "served", (r, m["score"]), textcoords="offset points", xytext=(0, 8), ha="center", fontsize=7
            )
    left.set(
        title="held-out scores (higher is better; unparseable: lower)", xlabel="round", ylim=(-0.02, 1.02)
    )
    right.set(title="pixel errors (lower is better)", xlabel="round", ylabel="pixels")
    right.set_ylim(bottom=0)
    for ax in (left, right):
        ax.set_xticks(rounds)
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7)
    fig.tight_layout()
    target.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(target, dpi=110)
    plt.close(fig)
    return target
