"""`robo-trainer`: fine-tune on accepted corrections, evaluate, and run active-learning rounds.

    robo-trainer finetune --store S --datasets D... --base-model M --out runs/r1 [--lora] [--deepspeed zero2]
    torchrun --nproc_per_node 8 -m trainer.cli finetune ...          # many GPUs (or deepspeed --module)
    robo-trainer evaluate --model runs/r1 --store S --datasets D... --split heldout
    robo-trainer round --backend tcp://host:5555 --store S --datasets D... --base-model M --runs runs/

Each command's flags are derived from the fields of its configs (FinetuneConfig,
RoundConfig, SampleConfig) by transformers' HfArgumentParser, so a field's default and
help are written once: `--lora-r` and `--lora_r` both work, a boolean takes `--lora` or
`--lora false`, a default-true one also `--no-gradient-checkpointing`. (draccus, which
lerobot installs, gives a field one flag spelling and no aliases: `--base-model`,
`--lr`, `--workers` would have changed.) Thin over trainer.finetune / evaluate / round;
errors are printed as one line naming the file or field, exit status 1 (2 for bad arguments).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import sys
from pathlib import Path
from typing import Any

from core.config import argument_fields
from core.errors import MissingExtraError, RoboAnnotateError
from core.vlm.config import SampleConfig
from trainer.config import FinetuneConfig, finetune_arguments
from trainer.round import RoundConfig

# SampleConfig options given as their own flags (the rest through --sample-option key=value).
SAMPLE_FLAGS = ("max_pixels", "frame_side", "sheet_side", "rate", "sheet_frames", "sheets_per_window")
# What evaluate shares with finetune; unset (None) means the checkpoint's own.
DATA_FIELDS = ("store", "datasets", "family", "tasks", "heldout_fraction")
GENERATION_FIELDS = ("max_new_tokens", "eval_batch_size", "max_per_task")


def _key_value(text: str) -> tuple[str, Any]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"{text!r}: expected key=value")
    try:
        return key, json.loads(value)
    except json.JSONDecodeError:
        return key, value


def _sample_arguments() -> type:
    return argument_fields(SampleConfig, include=SAMPLE_FLAGS, defaults=dict.fromkeys(SAMPLE_FLAGS))


def _add_sample_option(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--sample-option",
        type=_key_value,
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="any other core.vlm.config.SampleConfig option (JSON value)",
    )


def _sample_options(args: argparse.Namespace) -> dict[str, Any]:
    opts = {k: getattr(args, k) for k in SAMPLE_FLAGS if getattr(args, k) is not None}
    opts.update(dict(args.sample_option))
    return opts


def build_parser() -> argparse.ArgumentParser:
    """The flags of each command come from the fields of its configs (trainer.config, trainer.round)."""
    try:
        from transformers import HfArgumentParser
    except ImportError as exc:
        raise MissingExtraError("transformers", "train", "robo-trainer") from exc

    p = argparse.ArgumentParser(prog="robo-trainer", description="RoboAnnotate trainer.")
    p.add_argument("-v", "--verbose", action="store_true")
    # The deepspeed launcher passes --local_rank=N right after the script (before the subcommand).
    p.add_argument("--local_rank", "--local-rank", type=int, default=None, help=argparse.SUPPRESS)
    sub = p.add_subparsers(dest="command", required=True, parser_class=HfArgumentParser)

    samples = _sample_arguments()
    ft = sub.add_parser(
        "finetune",
        help="fine-tune a VLM on accepted annotations",
        dataclass_types=[finetune_arguments(), samples],
    )
    _add_sample_option(ft)

    generation = argument_fields(RoundConfig, include=GENERATION_FIELDS, name="Generation")
    data = argument_fields(
        FinetuneConfig,
        include=DATA_FIELDS,
        defaults={"family": None, "tasks": None, "heldout_fraction": None},
        name="EvaluationData",
    )
    ev = sub.add_parser(
        "evaluate",
        help="evaluate a model on held-out reviewed episodes (unset data options: the checkpoint's)",
        dataclass_types=[data, samples, generation],
    )
    ev.add_argument("--model", required=True, help="checkpoint directory (or hub id) to evaluate")
    ev.add_argument("--split", choices=("heldout", "train", "all"), default="heldout")
    ev.add_argument("--out", type=Path, default=None, help="JSON report (default: MODEL/eval_<split>.json)")
    ev.add_argument(
        "--runs", type=Path, default=None, help="runs folder: also draw metrics across rounds (PNG)"
    )
    _add_sample_option(ev)

    rd = sub.add_parser(
        "round",
        help="one active-learning round: finetune, evaluate, reload",
        dataclass_types=[argument_fields(RoundConfig), finetune_arguments(exclude=("out", "round")), samples],
    )
    _add_sample_option(rd)
    return p


def _fields(cls: type, args: argparse.Namespace) -> dict[str, Any]:
    """The parsed flags that are `cls`'s fields."""
    return {f.name: getattr(args, f.name) for f in dataclasses.fields(cls) if hasattr(args, f.name)}


def _finetune_config(args: argparse.Namespace, **fixed: Any) -> FinetuneConfig:
    values = {**_fields(FinetuneConfig, args), "sample_options": _sample_options(args), **fixed}
    return FinetuneConfig(**values)


def _finetune(args: argparse.Namespace) -> int:
    from trainer.finetune import is_main_process, prepare_environment, run

    prepare_environment(args.local_rank)
    meta = run(_finetune_config(args))
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
    from trainer.round import run_round

    finetune = _finetune_config(args, out=args.runs / "pending", round=0)
    cfg = RoundConfig(**_fields(RoundConfig, args), finetune=finetune)
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
    try:
        parser = build_parser()
    except MissingExtraError as exc:
        print(f"robo-trainer: error: {exc}", file=sys.stderr)
        return 1
    args = parser.parse_args(argv)
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
