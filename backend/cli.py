"""`robo-backend`: the inference backend's command line."""

from __future__ import annotations

import argparse
import sys

PENDING = {
    "serve": "serve the ZeroMQ backend",
    "annotate": "batch pre-annotation into the store",
    "keygen": "make CURVE keys",
    "evaluate": "score an engine against the demo ground truth",
}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="robo-backend", description="RoboAnnotate inference backend.")
    sub = p.add_subparsers(dest="command", required=True)
    for name, text in PENDING.items():
        sub.add_parser(name, help=f"{text} (not yet)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    print(f"robo-backend {args.command}: not yet implemented", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
