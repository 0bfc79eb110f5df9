"""The `export` subcommand: `robo-annotate export DATASET --store PATH --format F --out DIR`.

`register(subparsers)` adds it to a parent parser (app/cli.py); `run(args)` does
it with a progress bar. `python -m core.export.cli ...` runs it standalone.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from core.errors import RoboAnnotateError
from core.hub import add_dataset_argument, prefetch, resolve_args

FORMAT_HELP = {
    "lerobot-language": "copy of the dataset with lerobot 0.6 language_persistent/language_events columns",
    "lerobot-subtasks": "copy of the dataset with subtask_index, skills.json, subtasks.parquet (+ dialogue tables)",
    "llava": "LLaVA-OneVision conversation JSON, normalized [0,1] coordinates, JPEG frames",
    "qwen": "Qwen2.5-VL conversation JSON, absolute pixels of images sized for the trainer's pixel budget, JPEG frames",
}


def add_arguments(p: argparse.ArgumentParser) -> None:
    from core.export import FORMATS

    add_dataset_argument(
        p,
        help="LeRobot dataset: a directory (its name is its id in the store) or a Hub repo id (owner--name)",
    )
    p.add_argument("--store", type=Path, required=True, help="annotation store (SQLite) to read")
    p.add_argument(
        "--format",
        required=True,
        choices=FORMATS,
        help="; ".join(f"{k}: {v}" for k, v in FORMAT_HELP.items()),
    )
    p.add_argument("--out", type=Path, required=True, help="output directory (refused if it exists)")
    p.add_argument(
        "--include-unreviewed", action="store_true", help="also export episodes not yet accepted in review"
    )
    p.add_argument(
        "--min-pixels",
        type=int,
        default=None,
        help="qwen: the trainer's --min_pixels; every image is written at a size its resize keeps (default 3136)",
    )
    p.add_argument(
        "--max-pixels",
        type=int,
        default=None,
        help="qwen: the trainer's --max_pixels (default 12845056, RoboInterVLM's recipe)",
    )
    p.add_argument("--force", action="store_true", help="replace an existing --out")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def register(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add the `export` subcommand to a parent parser's subparsers."""
    p = subparsers.add_parser(
        "export",
        help="export reviewed annotations (LeRobot language/subtasks, LLaVA, Qwen)",
        description="Export the store's accepted annotations of DATASET. Written beside --out and renamed "
        "into place when complete; the dataset itself is never modified.",
    )
    add_arguments(p)
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    """Export as `args` say; prints a summary and warnings. 0 on success, 1 on an error."""
    from tqdm import tqdm

    from core.export import export

    with tqdm(desc=f"export {args.format}", unit="file", disable=getattr(args, "quiet", False)) as bar:

        def progress(done: int, total: int) -> None:
            bar.total = total
            bar.update(done - bar.n)

        try:
            dataset = resolve_args(args)
            if args.format.startswith("lerobot-"):
                from core.dataset import Dataset

                prefetch(Dataset(dataset))  # these copy the dataset whole: a Hub one is downloaded first
            report = export(
                dataset,
                args.store,
                args.format,
                args.out,
                include_unreviewed=args.include_unreviewed,
                force=args.force,
                progress=progress,
                min_pixels=getattr(args, "min_pixels", None),
                max_pixels=getattr(args, "max_pixels", None),
            )
        except RoboAnnotateError as exc:
            bar.close()
            print(f"error: {exc}", file=sys.stderr)
            return 1
    for warning in report.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    print(report.summary())
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m core.export.cli", description=__doc__)
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
