"""What every VLM engine shares: jobs -> samples -> generate -> parse -> Prediction.

A concrete engine (transformers, vLLM, an OpenAI-compatible server) only says
how to turn a batch of `GenRequest`s into texts and token log-probabilities
(`generate`). Everything else happens here, once:

- prompts and images come from core.vlm.samples (the builder export and the
  trainer use too), for every episode of the batch at once, so the backend can
  batch across episodes;
- segmentation is two passes (describe, then segment with the description), in
  windows for long episodes, stitched into one gap-free cover;
- boundaries can snap to the kinematic engine's gripper events (both in
  backend.engines.vlm_segments);
- each answer is parsed with repair (core.vlm.parse); the prediction's
  uncertainty comes from the model's own token log-probabilities.

An episode whose answers cannot be read comes back `unparseable` with the raw
text, so it stays in the review queue; a broken request is an `error`; nothing
raises out of `predict`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import time
from abc import abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from backend.engines.base import Engine, EpisodeJob, Prediction
from backend.engines.vlm_segments import gripper_events, snap_boundaries, stitch_windows
from core.annotations import ITEM_FIELDS, EpisodeAnnotation, Segment
from core.protocol import ModelInfo
from core.vlm import tasks as vlm_tasks
from core.vlm.parse import ParseResult, parse_answer
from core.vlm.samples import (
    DESCRIBE,
    Sample,
    SampleConfig,
    build_inference_requests,
    render_images,
    with_description,
)

if TYPE_CHECKING:
    from PIL import Image

log = logging.getLogger(__name__)

KINDS: tuple[str, ...] = ITEM_FIELDS
# Confidence lost per repair the parser had to make (sloppy output deserves a look).
REPAIR_PENALTY = 0.9


@dataclass
class GenRequest:
    """One prompt to generate for: the sample, its rendered images, and a token budget."""

    sample: Sample
    images: list[Image.Image]
    max_new_tokens: int


@dataclass
class Generation:
    """A model's answer: text, the log-probability of each generated token, why it stopped.

    `error` is set when no answer came (a failed request), never for a bad answer.
    """

    text: str = ""
    logprobs: list[float] = field(default_factory=list)
    finish: str = ""
    error: str = ""


def confidence_from_logprobs(logprobs: Sequence[float]) -> float | None:
    """The geometric-mean probability of the generated tokens, in [0, 1] (None without any)."""
    vals = [lp for lp in logprobs if lp is not None and not math.isnan(lp)]
    if not vals:
        return None
    mean = sum(max(lp, -50.0) for lp in vals) / len(vals)
    return min(1.0, max(0.0, math.exp(mean)))


@dataclass(frozen=True)
class VLMOptions:
    """Options every VLM engine takes (besides the sample layer's, see `SampleConfig`)."""

    # Caps every task's token budget (its `max_tokens`, core.vlm.tasks) when set.
    max_new_tokens: int | None = None
    # Snap segment boundaries to gripper close/open events within this many seconds (0: off).
    snap_to_gripper_s: float = 0.0
    # Where contact tasks look and which skills dialogue covers: "kinematic" or "none".
    context: str = "kinematic"

    def __post_init__(self) -> None:
        if self.max_new_tokens is not None and self.max_new_tokens < 1:
            raise ValueError(f"max_new_tokens = {self.max_new_tokens}: must be >= 1")
        if self.snap_to_gripper_s < 0:
            raise ValueError(f"snap_to_gripper_s = {self.snap_to_gripper_s}: must be >= 0")
        if self.context not in ("kinematic", "none"):
            raise ValueError(f"context = {self.context!r}: must be 'kinematic' or 'none'")

    @classmethod
    def from_options(cls, options: dict[str, Any]) -> VLMOptions:
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in options.items() if k in known})


def checkpoint_version(path: str) -> str:
    """A short stable version for a checkpoint: a hash of its config and weight files' sizes and
    times for a local directory, the name itself for a hub id."""
    p = Path(path)
    if not p.is_dir():
        return hashlib.sha256(path.encode()).hexdigest()[:8]
    h = hashlib.sha256()
    for f in sorted(p.iterdir()):
        if f.is_file() and (f.suffix in (".json", ".safetensors", ".bin") or f.name.endswith(".jinja")):
            st = f.stat()
            h.update(f"{f.name}:{st.st_size}:{st.st_mtime_ns}".encode())
    return h.hexdigest()[:8]


# Written by the trainer beside every checkpoint it makes (trainer.checkpoint); read here as
# plain JSON, since the backend never imports the trainer.
CARD_FILE = "robo_trainer.json"


def checkpoint_card(path: str) -> tuple[int | None, dict[str, float], str]:
    """(round, held-out metrics, version) from a trainer checkpoint's card; (None, {}, "")
    for any other checkpoint, or when the card is unreadable (logged, never fatal)."""
    card = Path(path) / CARD_FILE
    if not card.is_file():
        return None, {}, ""
    try:
        meta = json.loads(card.read_text())
        rnd = meta.get("round")
        metrics = {str(k): float(v) for k, v in (meta.get("metrics") or {}).items()}
        return (int(rnd) if rnd is not None else None), metrics, str(meta.get("version") or "")
    except (OSError, ValueError, TypeError, AttributeError) as exc:
        log.warning("%s: unreadable (%s); the model is served without its round and metrics", card, exc)
        return None, {}, ""


def model_name(path: str) -> str:
    """What the provenance calls a model: the checkpoint directory's or hub id's last part."""
    return Path(path.rstrip("/")).name or path


# ---------------------------------------------------------------- the engine


@dataclass
class _EpisodeWork:
    job: EpisodeJob
    samples: list[Sample] = field(default_factory=list)
    results: dict[str, ParseResult] = field(default_factory=dict)
    confidences: dict[str, float | None] = field(default_factory=dict)
    failures: dict[str, str] = field(default_factory=dict)
    error: str = ""
    notes: dict[str, Any] = field(default_factory=dict)


class VLMEngine(Engine):
    """The shared VLM engine; subclasses implement `generate` (and loading)."""

    engine_name = "vlm"
    kinds = KINDS

    def __init__(self, *, family: str = "qwen2_5_vl", version: str = "", **options: Any) -> None:
        self.family = family
        self.version = version or "0"
        self.name = self.engine_name
        # From the checkpoint's trainer card, when it has one: the app shows them.
        self.round: int | None = None
        self.metrics: dict[str, float] = {}
        self.sample_config = SampleConfig.from_options(options)
        self.vlm_options = VLMOptions.from_options(options)
        self._reader = None

    # ------------------------------------------------------------ identity

    def info(self) -> ModelInfo:
        return ModelInfo(
            engine=self.engine_name,
            name=self.name,
            version=self.version,
            device=self.device,
            kinds=list(self.kinds),
            round=self.round,
            metrics=dict(self.metrics),
        )

    def identify(self, path: str, version: str) -> None:
        """Name, version, round and metrics of the checkpoint at `path` (version: the caller's,
        else the trainer card's, else a hash of the files)."""
        rnd, metrics, card_version = checkpoint_card(path)
        self.path = path
        self.name = model_name(path)
        self.version = version or card_version or checkpoint_version(path)
        self.round, self.metrics = rnd, metrics

    # ------------------------------------------------------------ to implement

    @abstractmethod
    def generate(self, requests: Sequence[GenRequest]) -> list[Generation]:
        """One Generation per request, in order; batch as the backend likes."""

    # ------------------------------------------------------------ shared flow

    def budget(self, task: str) -> int:
        known = vlm_tasks.REGISTRY.get(task)
        n = known.max_tokens if known is not None else 256
        cap = self.vlm_options.max_new_tokens
        return min(n, cap) if cap else n

    @property
    def reader(self):
        if self._reader is None:
            from core.video import FrameReader

            self._reader = FrameReader(cache_bytes=128 * 2**20)
        return self._reader

    def close(self) -> None:
        if self._reader is not None:
            self._reader.close()
            self._reader = None

    def _context(self, job: EpisodeJob, tasks: Sequence[str]) -> EpisodeAnnotation | None:
        needs = any(vlm_tasks.get(t).needs_context for t in tasks)
        if not needs or self.vlm_options.context == "none":
            return None
        from backend.engines.kinematic import KinematicEngine

        pred = KinematicEngine().predict_one(EpisodeJob(job.dataset_id, job.dataset, job.episode))
        return pred.annotation if pred.status == "ok" else None

    def _prepare(self, job: EpisodeJob) -> _EpisodeWork:
        work = _EpisodeWork(job)
        try:
            kind_tasks = vlm_tasks.kind_tasks()
            unknown = [k for k in job.kinds if k not in kind_tasks]
            if unknown:
                raise ValueError(
                    f"kinds {unknown}: the {self.engine_name} engine predicts {list(self.kinds)}"
                )
            tasks = [t for k in job.kinds for t in kind_tasks[k]]
            cfg = self.sample_config
            if job.options:
                merged = {**{f: getattr(cfg, f) for f in cfg.__dataclass_fields__}, **job.options}
                cfg = SampleConfig.from_options(merged)
            context = self._context(job, tasks)
            if context is not None:
                work.notes["context"] = context.model
            work.samples = build_inference_requests(
                job.dataset,
                job.episode,
                self.family,
                tasks,
                config=cfg,
                context=context,
                dataset_id=job.dataset_id,
            )
        except Exception as exc:
            work.error = f"{job.dataset_id} episode {job.episode}: {type(exc).__name__}: {exc}"
        return work

    def _run(self, pairs: list[tuple[_EpisodeWork, Sample]]) -> None:
        """Render, generate (one batch for all episodes), parse."""
        reqs: list[GenRequest] = []
        owners: list[tuple[_EpisodeWork, Sample]] = []
        for work, s in pairs:
            try:
                images = render_images(s, work.job.dataset, self.reader)
            except Exception as exc:
                work.failures[s.id] = f"frames: {type(exc).__name__}: {exc}"
                continue
            reqs.append(GenRequest(s, images, self.budget(s.task)))
            owners.append((work, s))
        if not reqs:
            return
        try:
            gens = self.generate(reqs)
            if len(gens) != len(reqs):
                raise RuntimeError(f"generate returned {len(gens)} answers for {len(reqs)} prompts")
        except Exception as exc:
            log.exception("%s generate failed", self.engine_name)
            gens = [Generation(error=f"{type(exc).__name__}: {exc}") for _ in reqs]
        for (work, s), gen in zip(owners, gens, strict=True):
            if gen.error:
                work.failures[s.id] = gen.error
                continue
            conf = confidence_from_logprobs(gen.logprobs)
            r = parse_answer(s.task, gen.text, s.meta, source=self.tag, confidence=conf)
            if r.ok and r.repairs and conf is not None:
                conf *= REPAIR_PENALTY ** min(len(r.repairs), 3)
                for item in r.items:
                    item.confidence = conf
            if gen.finish == "length":
                r.repairs.append("stopped at the token budget")
            work.results[s.id] = r
            work.confidences[s.id] = conf if r.ok else 0.0

    def predict(self, jobs: Sequence[EpisodeJob]) -> list[Prediction]:
        t0 = time.perf_counter()
        works = [self._prepare(j) for j in jobs]
        live = [w for w in works if not w.error]
        first = [(w, s) for w in live for s in w.samples if "after" not in s.meta]
        self._run(first)
        second = []
        for w in live:
            for s in w.samples:
                after = s.meta.get("after")
                if not after:
                    continue
                desc = w.results.get(after)
                text = desc.text if desc is not None and desc.ok else ""
                second.append((w, with_description(s, text) if text else s))
        self._run(second)
        preds = [self._assemble(w) for w in works]
        log.info("%s: %d episodes in %.1fs", self.tag, len(jobs), time.perf_counter() - t0)
        return preds

    # ------------------------------------------------------------ assembly

    def _assemble(self, work: _EpisodeWork) -> Prediction:
        job = work.job
        if work.error:
            return Prediction(status="error", error=work.error)
        try:
            return self._assemble_ok(work)
        except Exception as exc:  # a bug or bad data in one episode must not sink the batch
            log.exception("assembling %s episode %s", job.dataset_id, job.episode)
            return Prediction(
                status="error", error=f"{job.dataset_id} episode {job.episode}: {type(exc).__name__}: {exc}"
            )

    def _assemble_ok(self, work: _EpisodeWork) -> Prediction:
        job = work.job
        info = job.dataset.episode(job.episode)
        fps = float(job.dataset.fps)
        duration = info.length / fps
        tag = self.tag
        items: dict[str, list] = {k: [] for k in KINDS}
        windows: list[tuple[tuple[float, float], list[Segment]]] = []
        unparseable: dict[str, dict[str, Any]] = {}
        repairs: dict[str, list[str]] = {}
        for s in work.samples:
            if s.task == DESCRIBE:
                continue
            r = work.results.get(s.id)
            if r is None:
                continue
            if not r.ok:
                unparseable[s.id] = {"task": s.task, "error": r.error, "raw": r.raw}
                continue
            if r.repairs:
                repairs[s.id] = r.repairs
            if s.task == "segmentation":
                windows.append((tuple(s.meta["window"]), r.items))  # type: ignore[arg-type]
            else:
                items[vlm_tasks.get(s.task).kind].extend(r.items)  # type: ignore[index]
        wanted = [s for s in work.samples if s.task != DESCRIBE]
        failed = {sid: err for sid, err in work.failures.items() if any(s.id == sid for s in wanted)}
        notes: dict[str, Any] = dict(work.notes)
        if windows:
            segs = stitch_windows(windows, duration, fps)
            if len(windows) > 1:
                notes["windows"] = len(windows)
            if self.vlm_options.snap_to_gripper_s > 0 and segs:
                try:
                    events = gripper_events(job)
                    segs, moved = snap_boundaries(
                        segs, events, self.vlm_options.snap_to_gripper_s, duration, fps
                    )
                    notes["snapped_boundaries"] = moved
                except Exception as exc:
                    notes["snap_failed"] = f"{type(exc).__name__}: {exc}"
            items["segments"] = segs
        if repairs:
            notes["repairs"] = repairs
        if failed:
            notes["failed_requests"] = failed
        confs = [work.confidences.get(s.id) for s in wanted if s.id in work.results]
        confs += [0.0] * len(failed)
        known = [c for c in confs if c is not None]
        # Unknown confidence (no log-probs) counts as a coin toss.
        mean = (sum(known) + 0.5 * (len(confs) - len(known))) / len(confs) if confs else 0.0
        uncertainty = round(min(1.0, max(0.0, 1.0 - mean)), 4)
        # A requested kind with nothing readable must not replace what the store holds.
        missing = [k for k in job.kinds if not items.get(k)]
        ann_fields = {k: items[k] for k in job.kinds}
        if failed and not work.results:
            return Prediction(
                status="error",
                error="; ".join(f"{sid}: {e}" for sid, e in list(failed.items())[:3]),
                notes=notes,
            )
        ann = EpisodeAnnotation(
            dataset=job.dataset_id,
            episode=job.episode,
            duration=duration,
            fps=fps,
            task=info.task,
            uncertainty=uncertainty if not missing else 1.0,
            model=tag,
            **ann_fields,
        )
        if missing:
            notes["unparseable"] = unparseable
            raw = "\n\n".join(f"[{sid}] {u['raw']}" for sid, u in unparseable.items())
            errors = [u["error"] for u in unparseable.values()] + list(failed.values())
            has_any = any(items[k] for k in job.kinds)
            return Prediction(
                status="unparseable",
                annotation=ann if has_any else None,
                raw=raw,
                error=f"nothing readable for {', '.join(missing)}: " + "; ".join(errors[:3]),
                notes=notes,
            )
        if unparseable:
            notes["unparseable"] = unparseable
        return Prediction(status="ok", annotation=ann, notes=notes)
