"""One active-learning round: fine-tune on everything accepted, compare, and serve the better model.

    runs/round-001/   checkpoint + robo_trainer.json + eval_heldout.json + eval_previous.json
                      + round.json (the decision) + finetune.log
    runs/baseline.json  the base model's held-out metrics (round 0), for the plot
    runs/metrics.png    metrics across rounds

The previous model is the checkpoint the backend serves now (found in `runs/` by
its version), else the newest promoted round, else the base model. Training runs
in a child process (`torchrun --standalone` for several processes), so its memory
and process group are gone before evaluation; both models are then scored on the
same held-out episodes with the same prompts. If the new one is better (see
trainer.metrics.is_better) the backend is told to load it (ReloadModel, through
the `client` package, the backend's one client) and re-predicts unreviewed episodes.
The backend must see the checkpoint at the same path (same machine or a shared
file system).
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from core.config import setting, validate
from core.errors import RoboAnnotateError
from trainer.checkpoint import CheckpointMeta, has_meta, read_meta, update_meta, write_json
from trainer.config import FinetuneConfig, finetune_argv
from trainer.data import find_datasets, load_accepted, split
from trainer.evaluate import evaluate, plot_rounds
from trainer.metrics import is_better

log = logging.getLogger(__name__)

PROMOTE = ("if-better", "always", "never")


class RoundError(RoboAnnotateError):
    """A round could not finish: training failed, or the backend refused the new model."""


@dataclass
class RoundConfig:
    backend: str = setting(help="the backend's ROUTER endpoint, e.g. tcp://127.0.0.1:5555")
    runs: Path = setting(help="folder holding one sub-folder per round")
    finetune: FinetuneConfig = setting(
        cli=False, help="how to fine-tune (its out and round are set by the round)"
    )
    nproc: int = setting(
        1, ge=1, help="training processes on this machine (1: a plain child process; more: torchrun)"
    )
    promote: str = setting(
        "if-better", choices=PROMOTE, help="if-better: reload only a better model; always / never: regardless"
    )
    min_delta: float = setting(0.0, help="score margin the new model must beat the previous one by")
    curve: Path | None = setting(
        None, help="client keys directory (server.key + clients/<user>.key_secret) for a CURVE backend"
    )
    user: str = setting("robo-trainer", help="who the round is, to the backend")
    max_new_tokens: int = setting(512, help="evaluation: answer budget per prompt")
    eval_batch_size: int = setting(8, help="evaluation: prompts per generate call")
    max_per_task: int | None = setting(None, help="evaluation: score at most this many prompts per task")
    connect_timeout: float = setting(30.0, cli=False, help="seconds to wait for the backend's first answer")
    timeout: float = setting(600.0, cli=False, help="seconds to wait for a reload (which loads the model)")
    env: dict[str, str] = setting(
        default_factory=dict,
        cli=False,
        help="extra environment for the training child (e.g. TORCH_EXTENSIONS_DIR)",
    )

    def __post_init__(self) -> None:
        validate(self)
        self.runs = Path(self.runs)
        if "://" not in self.backend:
            raise ValueError(
                f"backend = {self.backend!r}: must be a ZeroMQ endpoint like tcp://127.0.0.1:5555"
            )


# ---------------------------------------------------------------- runs folder


def checkpoints(runs: Path) -> list[tuple[Path, CheckpointMeta]]:
    """Finished round checkpoints under `runs`, by round number."""
    if not runs.is_dir():
        return []
    found = [(d, read_meta(d)) for d in sorted(runs.iterdir()) if d.is_dir() and has_meta(d)]
    return sorted(found, key=lambda x: x[1].round)


def previous_model(runs: Path, served_version: str, base_model: str) -> tuple[str, CheckpointMeta | None]:
    """The model to beat: the served checkpoint, else the newest promoted one, else the base."""
    done = checkpoints(runs)
    for d, m in reversed(done):
        if m.version == served_version:
            return str(d), m
    for d, m in reversed(done):
        if m.promoted:
            return str(d), m
    return base_model, None


def run_finetune(cfg: FinetuneConfig, nproc: int = 1, env: dict[str, str] | None = None) -> CheckpointMeta:
    """Train in a child process (torchrun for nproc > 1); the log goes to out/finetune.log."""
    if nproc > 1:
        launcher = [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            f"--nproc_per_node={nproc}",
        ]
    else:
        launcher = [sys.executable]
    cmd = [*launcher, "-m", "trainer.cli", "-v", *finetune_argv(cfg)]
    cfg.out.mkdir(parents=True, exist_ok=True)
    logfile = cfg.out / "finetune.log"
    log.info("training: %s", " ".join(cmd))
    with open(logfile, "w") as f:
        proc = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})})
    if proc.returncode != 0 or not has_meta(cfg.out):
        tail = logfile.read_text(errors="replace")[-3000:]
        raise RoundError(f"training failed (exit {proc.returncode}); see {logfile}:\n{tail}")
    return read_meta(cfg.out)


# ---------------------------------------------------------------- the round


def _check_heldout(ft: FinetuneConfig) -> None:
    """Refuse before training when there is nothing to compare the models on."""
    anns = load_accepted(ft.store, find_datasets(ft.datasets))
    parts = split(anns, ft.heldout_fraction)
    if not parts.heldout or not parts.train:
        raise RoundError(
            f"{ft.store}: {len(parts.train)} accepted episode(s) to train on and {len(parts.heldout)} held out "
            f"(held-out fraction {ft.heldout_fraction}); a round needs both: accept more episodes"
        )


def _client(cfg: RoundConfig) -> Any:
    from client import BackendClient, ClientKeys

    keys = ClientKeys.from_dir(cfg.curve, cfg.user) if cfg.curve is not None else None
    return BackendClient(cfg.backend, user=cfg.user, timeout=cfg.connect_timeout, keys=keys)


def run_round(cfg: RoundConfig) -> dict[str, Any]:
    """Fine-tune, evaluate new against previous, reload if better; returns the round's record."""
    from client import BackendTimeout

    runs = cfg.runs
    runs.mkdir(parents=True, exist_ok=True)
    with _client(cfg) as client:
        try:
            served = client.hello().model
        except BackendTimeout as exc:
            raise RoundError(f"backend {cfg.backend} does not answer: {exc}") from exc
        _check_heldout(cfg.finetune)
        prev_path, prev_meta = previous_model(runs, served.version, cfg.finetune.base_model)
        number = max([m.round for _, m in checkpoints(runs)] + [0]) + 1
        out = runs / f"round-{number:03d}"
        if out.exists():
            log.warning("%s: left over from an unfinished round; starting it again", out)
            shutil.rmtree(out)
        started = time.time()
        ft = replace(cfg.finetune, out=out, round=number)
        meta = run_finetune(ft, cfg.nproc, cfg.env)

        common = {
            "store": ft.store,
            "datasets": ft.datasets,
            "max_new_tokens": cfg.max_new_tokens,
            "batch_size": cfg.eval_batch_size,
            "max_per_task": cfg.max_per_task,
        }
        new = evaluate(out, split_name="heldout", **common)
        # The previous model is asked exactly as the new one: same episodes, tasks and prompts.
        old = evaluate(
            prev_path,
            split_name="heldout",
            family=meta.data.family,
            tasks=tuple(meta.data.samples),
            heldout_fraction=meta.data.heldout_fraction,
            sample_options=meta.data.sample_options,
            out=out / "eval_previous.json",
            record=False,
            **common,
        )
        if new["episodes"] != old["episodes"]:
            raise RoundError("new and previous models were scored on different episodes (the store changed?)")
        if prev_meta is None and not (runs / "baseline.json").exists():
            write_json(runs / "baseline.json", old)
        better = is_better(new["metrics"], old["metrics"], cfg.min_delta)
        promote = {"if-better": better, "always": True, "never": False}[cfg.promote]
        record: dict[str, Any] = {
            "round": number,
            "checkpoint": str(out.resolve()),
            "version": meta.version,
            "previous": prev_path,
            "previous_version": prev_meta.version if prev_meta else served.version,
            "served_before": served.tag,
            "metrics": new["metrics"],
            "previous_metrics": old["metrics"],
            "better": better,
            "promoted": False,
            "heldout": new["episodes"],
            "seconds": 0.0,
        }
        if promote:
            try:
                info = client.reload(
                    str(out.resolve()), version=meta.version, repredict=True, timeout=cfg.timeout
                )
            except RoboAnnotateError as exc:
                record["reload_error"] = str(exc)
                write_json(out / "round.json", record)
                raise RoundError(f"backend {cfg.backend} did not load {out}: {exc}") from exc
            update_meta(out, promoted=True)
            record["promoted"] = True
            record["served_after"] = info.tag
        record["seconds"] = time.time() - started
    write_json(out / "round.json", record)
    try:
        record["plot"] = str(plot_rounds(runs))
    except RoboAnnotateError as exc:
        log.warning("no plot: %s", exc)
    return record
