"""`robo-annotate`: the desktop app's command line.

Thin over the modules it calls; heavy imports happen inside each command so
`robo-annotate --help` stays instant.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from core.errors import RoboAnnotateError

DEFAULT_DEMO_DIR = Path("demo-data") / "demo"


def _size(text: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"size '{text}' must look like 640x480") from None
    if not (16 <= w <= 4096 and 16 <= h <= 4096) or w % 2 or h % 2:
        raise argparse.ArgumentTypeError(f"size '{text}': width and height must be even, 16..4096")
    return w, h


def _make_demo(out: Path, episodes: int, seed: int, size: tuple[int, int], fps: int, cycles: int = 1) -> None:
    from tqdm import tqdm

    from core.demo.writer import write_demo

    with tqdm(total=episodes, desc=f"writing {out}", unit="episode") as bar:
        write_demo(
            out,
            episodes=episodes,
            seed=seed,
            width=size[0],
            height=size[1],
            fps=fps,
            cycles=cycles,
            progress=lambda done, total: bar.update(done - bar.n),
        )


def cmd_make_demo(args: argparse.Namespace) -> int:
    _make_demo(args.out, args.episodes, args.seed, args.size, args.fps, args.cycles)
    from core.dataset import Dataset

    print(Dataset(args.out).summary())
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from core.dataset import Dataset

    if not (args.data / "meta" / "info.json").is_file():
        print(f"generating the demo dataset in {args.data} (once)")
        _make_demo(args.data, args.episodes, 0, (640, 480), 30)
    print(Dataset(args.data).summary())
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    from core.dataset import Dataset

    print(Dataset(args.dataset).summary())
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="robo-annotate", description="Review and correct robot demonstration annotations."
    )
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("make-demo", help="write the simulated pick-and-place demo dataset (LeRobot v3)")
    s.add_argument("out", type=Path, help="output directory (must not exist)")
    s.add_argument("--episodes", type=int, default=8, help="number of episodes (default 8)")
    s.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    s.add_argument("--size", type=_size, default=(640, 480), help="camera size WxH (default 640x480)")
    s.add_argument("--fps", type=int, default=30, help="frames per second (default 30)")
    s.add_argument("--cycles", type=int, default=1, help="pick-and-place scenes per episode (default 1)")
    s.set_defaults(func=cmd_make_demo)

    s = sub.add_parser("demo", help="generate the demo dataset if missing and open it")
    s.add_argument(
        "--data",
        type=Path,
        default=DEFAULT_DEMO_DIR,
        help=f"demo dataset directory (default {DEFAULT_DEMO_DIR})",
    )
    s.add_argument("--episodes", type=int, default=8, help="episodes to generate if missing (default 8)")
    s.set_defaults(func=cmd_demo)

    s = sub.add_parser("info", help="print a dataset's summary")
    s.add_argument("dataset", type=Path)
    s.set_defaults(func=cmd_info)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except RoboAnnotateError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
