"""`robo-trainer`: fine-tuning and evaluation rounds from reviewed corrections."""

from __future__ import annotations

import argparse
import sys

PENDING = {
    "finetune": "fine-tune a VLM on accepted annotations",
    "evaluate": "evaluate a model on held-out reviewed episodes",
    "round": "one active-learning round: finetune, evaluate, reload",
}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="robo-trainer", description="RoboAnnotate trainer.")
    sub = p.add_subparsers(dest="command", required=True)
    for name, text in PENDING.items():
        sub.add_parser(name, help=f"{text} (not yet)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    print(f"robo-trainer {args.command}: not yet implemented", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
