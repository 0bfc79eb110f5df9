"""`robo-trainer`: fine-tune on accepted corrections, evaluate, and run active-learning rounds.

    robo-trainer finetune --store S --datasets D... --base-model M --out runs/r1 [--lora] [--deepspeed zero2]
    torchrun --nproc_per_node 8 -m trainer.cli finetune ...          # many GPUs (or deepspeed --module)
    robo-trainer evaluate --model runs/r1 --store S --datasets D... --split heldout
    robo-trainer round --backend tcp://host:5555 --store S --datasets D... --base-model M --runs runs/

Thin over trainer.finetune / evaluate / round; errors are printed as one line naming
the file or field, exit status 1 (2 for bad arguments).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path
from typing import Any

from core.errors import RoboAnnotateError
from core.resources import deepspeed_argument
from core.vlm.samples import TASKS

# SampleConfig options given as their own flags (the rest through --sample-option key=value).
SAMPLE_FLAGS = {
    "max_pixels": int,
    "frame_side": int,
    "sheet_side": int,
    "rate": float,
    "sheet_frames": int,
    "sheets_per_window": int,
}


def _tasks(text: str) -> tuple[str, ...]:
    tasks = tuple(t.strip() for t in text.split(",") if t.strip())
    unknown = [t for t in tasks if t not in TASKS]
    if unknown or not tasks:
        raise argparse.ArgumentTypeError(f"unknown task(s) {unknown or text!r}; known: {', '.join(TASKS)}")
    return tasks


def _key_value(text: str) -> tuple[str, Any]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"{text!r}: expected key=value")
    try:
        return key, json.loads(value)
    except json.JSONDecodeError:
        return key, value


def _add_data_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--store", type=Path, required=True, help="the annotation store (SQLite)")
    p.add_argument(
        "--datasets", type=Path, nargs="+", required=True, help="dataset directories or folders of datasets"
    )
    p.add_argument(
        "--family",
        default=None,
        help="model family, i.e. coordinate convention (default: the checkpoint's, else qwen2_5_vl)",
    )
    p.add_argument(
        "--tasks",
        type=_tasks,
        default=None,
        help=f"comma-separated (default: the checkpoint's when evaluating, else all of {','.join(TASKS)})",
    )
    p.add_argument(
        "--heldout-fraction",
        type=float,
        default=None,
        help="share of episodes held out, by hash (default: the checkpoint's when evaluating, else 0.2)",
    )
    for name, kind in SAMPLE_FLAGS.items():
        p.add_argument(f"--{name.replace('_', '-')}", type=kind, default=None, help=f"sample option {name}")
    p.add_argument(
        "--sample-option",
        type=_key_value,
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="any other core.vlm.samples.SampleConfig option (JSON value)",
    )


def _sample_options(args: argparse.Namespace) -> dict[str, Any]:
    opts = {k: getattr(args, k) for k in SAMPLE_FLAGS if getattr(args, k) is not None}
    opts.update(dict(args.sample_option))
    return opts


def _add_train_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--base-model", required=True, help="local checkpoint directory or hub id")
    p.add_argument("--lora", action="store_true", help="train LoRA adapters (merged into the checkpoint)")
    p.add_argument("--lora-r", type=int, default=16)
    p.add_argument("--lora-alpha", type=int, default=32)
    p.add_argument("--lora-dropout", type=float, default=0.05)
    p.add_argument(
        "--deepspeed",
        type=deepspeed_argument,
        default=None,
        metavar="CONFIG",
        help="DeepSpeed config: a shipped one by name (zero2, zero2_offload, zero3, zero3_offload) or a JSON file",
    )
    p.add_argument("--epochs", type=float, default=1.0)
    p.add_argument("--max-steps", type=int, default=-1, help="overrides --epochs when > 0")
    p.add_argument("--lr", type=float, default=None, help="learning rate (default 2e-4 LoRA, 1e-5 full)")
    p.add_argument("--batch-size", type=int, default=1, help="per device")
    p.add_argument("--grad-accum", type=int, default=1)
    p.add_argument("--warmup-ratio", type=float, default=0.03)
    p.add_argument("--train-vision", action="store_true", help="also train the vision encoder")
    p.add_argument("--no-gradient-checkpointing", dest="gradient_checkpointing", action="store_false")
    p.add_argument("--max-length", type=int, default=4096)
    p.add_argument("--precision", choices=("auto", "bf16", "fp32"), default="auto")
    p.add_argument(
        "--attention", default="auto", help="attn_implementation (auto: flash_attention_2 or sdpa)"
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--workers", type=int, default=0, help="data loader worker processes")


def _add_generation_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--max-new-tokens", type=int, default=512, help="answer budget per prompt")
    p.add_argument("--eval-batch-size", type=int, default=8, help="prompts per generate call")
    p.add_argument("--max-per-task", type=int, default=None, help="score at most this many prompts per task")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="robo-trainer", description="RoboAnnotate trainer.")
    p.add_argument("-v", "--verbose", action="store_true")
    # The deepspeed launcher passes --local_rank=N right after the script (before the subcommand).
    p.add_argument("--local_rank", "--local-rank", type=int, default=None, help=argparse.SUPPRESS)
    sub = p.add_subparsers(dest="command", required=True)

    ft = sub.add_parser("finetune", help="fine-tune a VLM on accepted annotations")
    _add_data_args(ft)
    _add_train_args(ft)
    ft.add_argument("--out", type=Path, required=True, help="checkpoint directory to write")
    ft.add_argument("--round", type=int, default=1, help="active-learning round number (recorded)")

    ev = sub.add_parser("evaluate", help="evaluate a model on held-out reviewed episodes")
    ev.add_argument("--model", required=True, help="checkpoint directory (or hub id) to evaluate")
    _add_data_args(ev)
    ev.add_argument("--split", choices=("heldout", "train", "all"), default="heldout")
    ev.add_argument("--out", type=Path, default=None, help="JSON report (default: MODEL/eval_<split>.json)")
    ev.add_argument(
        "--runs", type=Path, default=None, help="runs folder: also draw metrics across rounds (PNG)"
    )
    _add_generation_args(ev)

    rd = sub.add_parser("round", help="one active-learning round: finetune, evaluate, reload")
    rd.add_argument("--backend", required=True, help="the backend's endpoint, e.g. tcp://127.0.0.1:5555")
    rd.add_argument("--runs", type=Path, required=True, help="folder holding one sub-folder per round")
    _add_data_args(rd)
    _add_train_args(rd)
    rd.add_argument("--nproc", type=int, default=1, help="training processes on this machine (torchrun)")
    rd.add_argument("--promote", choices=("if-better", "always", "never"), default="if-better")
    rd.add_argument("--min-delta", type=float, default=0.0, help="score margin the new model must beat")
    rd.add_argument("--curve", type=Path, default=None, help="client keys directory for a CURVE backend")
    rd.add_argument("--user", default="robo-trainer")
    _add_generation_args(rd)
    return p


def _finetune_config(args: argparse.Namespace, out: Path, round_number: int) -> Any:
    from trainer.finetune import FinetuneConfig

    return FinetuneConfig(
        store=args.store,
        datasets=args.datasets,
        base_model=args.base_model,
        out=out,
        lora=args.lora,
        lora_r=args.lora_r,
        lora_alpha=args.lora_alpha,
        lora_dropout=args.lora_dropout,
        deepspeed=args.deepspeed,
        family=args.family or "qwen2_5_vl",
        tasks=tuple(args.tasks or TASKS),
        epochs=args.epochs,
        max_steps=args.max_steps,
        learning_rate=args.lr,
        batch_size=args.batch_size,
        grad_accum=args.grad_accum,
        warmup_ratio=args.warmup_ratio,
        heldout_fraction=0.2 if args.heldout_fraction is None else args.heldout_fraction,
        train_vision=args.train_vision,
        gradient_checkpointing=args.gradient_checkpointing,
        max_length=args.max_length,
        round=round_number,
        seed=args.seed,
        sample_options=_sample_options(args),
        precision=args.precision,
        attention=args.attention,
        dataloader_workers=args.workers,
    )


def _finetune(args: argparse.Namespace) -> int:
    from trainer.finetune import is_main_process, prepare_environment, run

    prepare_environment(args.local_rank)
    meta = run(_finetune_config(args, args.out, args.round))
    if meta is not None and is_main_process():
        losses = [loss for _, loss in meta.training.loss]
        first, last = (f"{losses[0]:.4f}", f"{losses[-1]:.4f}") if losses else ("-", "-")
        print(
            f"wrote {args.out} (version {meta.version}, {meta.training.steps} steps, "
            f"loss {first} -> {last}, {sum(meta.data.samples.values())} samples)"
        )
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    from trainer.evaluate import evaluate, plot_rounds

    report = evaluate(
        args.model,
        store=args.store,
        datasets=args.datasets,
        split_name=args.split,
        family=args.family,
        tasks=args.tasks,
        heldout_fraction=args.heldout_fraction,
        sample_options=_sample_options(args),
        max_new_tokens=args.max_new_tokens,
        batch_size=args.eval_batch_size,
        max_per_task=args.max_per_task,
        out=args.out,
    )
    print(json.dumps(report["metrics"], indent=2, sort_keys=True))
    if args.runs is not None:
        print(f"plot: {plot_rounds(args.runs)}")
    return 0


def _round(args: argparse.Namespace) -> int:
    from trainer.round import RoundConfig, run_round

    cfg = RoundConfig(
        backend=args.backend,
        runs=args.runs,
        finetune=_finetune_config(args, args.runs / "pending", 0),
        nproc=args.nproc,
        promote=args.promote,
        min_delta=args.min_delta,
        curve=args.curve,
        user=args.user,
        max_new_tokens=args.max_new_tokens,
        eval_batch_size=args.eval_batch_size,
        max_per_task=args.max_per_task,
    )
    outcome = run_round(cfg)
    print(json.dumps(outcome, indent=2, sort_keys=True, default=str))
    return 0


def _finish(status: int) -> int:
    """`status`, reached without interpreter teardown if gloo worker threads are still running.

    finetune leaves the process group so that none is (trainer.teardown); should a library
    still hold a group, its threads can abort the interpreter's teardown (SIGABRT after a
    run that trained and saved), so then this process ends here, with every stream flushed
    (the checkpoint's files are closed by then) and the same status.
    """
    from trainer.teardown import gloo_threads

    left = gloo_threads()
    if not left:
        return status
    print(
        f"robo-trainer: {left} gloo worker thread(s) outlived the process group; "
        f"exiting with status {status} without interpreter teardown",
        file=sys.stderr,
    )
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s"
    )
    try:
        if args.command == "finetune":
            return _finish(_finetune(args))
        if args.command == "evaluate":
            return _evaluate(args)
        return _round(args)
    except (RoboAnnotateError, ValueError, OSError) as exc:
        print(f"robo-trainer {args.command}: error: {exc}", file=sys.stderr)
        return _finish(1) if args.command == "finetune" else 1


if __name__ == "__main__":
    sys.exit(main())
