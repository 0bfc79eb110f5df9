"""`robo-annotate`: the desktop app's command line.

Thin over the modules it calls; heavy imports happen inside each command so
`robo-annotate --help` stays instant.
"""

from __future__ import annotations

import argparse
import getpass
import os
import shutil
import signal
import sys
from pathlib import Path

from core.demo import ROBOTS as DEMO_ROBOTS
from core.errors import RoboAnnotateError
from core.hub import add_dataset_argument, resolve_args

DEFAULT_DEMO_DIR = Path("demo-data") / "demo"


def _size(text: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"size '{text}' must look like 640x480") from None
    if not (16 <= w <= 4096 and 16 <= h <= 4096) or w % 2 or h % 2:
        raise argparse.ArgumentTypeError(f"size '{text}': width and height must be even, 16..4096")
    return w, h


def _make_demo(
    out: Path,
    episodes: int,
    seed: int,
    size: tuple[int, int],
    fps: int,
    cycles: int = 1,
    robot: str = "single-ee",
) -> None:
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
            robot=robot,
        )


def _count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value}: must be at least 1")
    return value


def cmd_make_demo(args: argparse.Namespace) -> int:
    _make_demo(args.out, args.episodes, args.seed, args.size, args.fps, args.cycles, args.robot)
    from core.dataset import Dataset

    print(Dataset(args.out).summary())
    return 0


def _ensure_demo(data: Path, episodes: int, size: tuple[int, int] = (640, 480)) -> None:
    """Write the demo dataset once; into a temporary sibling first, so an interrupted run leaves no half dataset."""
    if (data / "meta" / "info.json").is_file():
        return
    if data.exists() and any(data.iterdir()):
        raise RoboAnnotateError(
            f"{data}: exists but holds no dataset (meta/info.json); remove it or pick --data"
        )
    print(f"generating the demo dataset in {data} (once)")
    tmp = data.with_name(f".{data.name}.partial-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.parent.mkdir(parents=True, exist_ok=True)
    _make_demo(tmp, episodes, 0, size, 30)
    if data.exists():
        data.rmdir()
    tmp.rename(data)


def cmd_demo(args: argparse.Namespace) -> int:
    _ensure_demo(args.data, args.episodes, args.size)
    return _open(args.data, args)


def cmd_open(args: argparse.Namespace) -> int:
    return _open(resolve_args(args), args)


def _load_run_gui():
    """The GUI's entry point, imported only now (it pulls in Qt widgets and pyqtgraph)."""
    try:
        from app.ui.launch import run_gui
    except ModuleNotFoundError as exc:
        if exc.name not in ("app.ui", "app.ui.launch"):
            raise
        raise RoboAnnotateError("this installation has no GUI (app.ui.launch is missing)") from exc
    return run_gui


def _open(dataset_path: Path, args: argparse.Namespace) -> int:
    """Open a dataset in the app, talking to --backend or to a local backend started for the session."""
    from core.dataset import Dataset

    dataset_path = dataset_path.expanduser().resolve()
    dataset = Dataset(dataset_path)  # a missing or corrupt dataset fails here, with its file named
    dataset_id = args.dataset_id or dataset.name
    user = args.user or os.environ.get("ROBO_ANNOTATE_USER") or getpass.getuser()
    if args.screenshot is not None:
        os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    run_gui = _load_run_gui()

    from PySide6.QtWidgets import QApplication

    from app.link.backend_link import BackendLink
    from app.link.local_backend import LocalBackend, default_store, journal_dir_for

    if QApplication.instance() is None:
        QApplication.setApplicationName("RoboAnnotate")
        QApplication.setOrganizationName("RoboAnnotate")
        QApplication(sys.argv[:1])
    restore_signals = _close_on_terminate()
    local = None
    link = None
    try:
        if args.backend:
            endpoint = args.backend
            journal = journal_dir_for(endpoint, user)
        else:
            store = (args.store or default_store(dataset_path)).expanduser().resolve()
            print(f"starting a local backend (kinematic engine, store {store}) ...", flush=True)
            local = LocalBackend([dataset_path], store, engine=args.engine).start()
            print(f"local backend pid {local.pid} on {local.endpoint} (log {local.log})", flush=True)
            endpoint = local.endpoint
            journal = journal_dir_for(str(store), user)
        # run_gui starts the link once the window listens to its signals.
        link = BackendLink(endpoint, journal, user, curve_dir=args.curve)
        return int(
            run_gui(dataset_path, dataset_id, link, screenshot=args.screenshot, episode=args.episode) or 0
        )
    finally:
        if link is not None:
            link.close()
            if link.pending:
                print(
                    f"{link.pending} edit(s) not yet acknowledged stay in {link.journal.path}",
                    file=sys.stderr,
                )
        if local is not None:
            local.stop()
        restore_signals()


def _close_on_terminate():
    """SIGTERM/SIGHUP close the windows (each hands its last edit to the journal) and end the event
    loop, so the local backend is stopped in order; returns the function that undoes this."""
    import threading

    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication

    if threading.current_thread() is not threading.main_thread():
        return lambda: None

    def close(signum, frame) -> None:
        QTimer.singleShot(0, lambda: (QApplication.closeAllWindows(), QApplication.quit()))

    old = {s: signal.signal(s, close) for s in (signal.SIGTERM, signal.SIGHUP)}
    # Python runs signal handlers only when it gets control: wake it while Qt's loop idles.
    tick = QTimer()
    tick.timeout.connect(lambda: None)
    tick.start(200)

    def restore() -> None:
        tick.stop()
        for s, handler in old.items():
            signal.signal(s, handler)

    return restore


def _add_open_options(s: argparse.ArgumentParser) -> None:
    s.add_argument(
        "--backend",
        default=None,
        metavar="URL",
        help="a running robo-backend, e.g. tcp://host:5555 (default: start a local one)",
    )
    s.add_argument("--curve", type=Path, default=None, metavar="DIR", help="CURVE keys for --backend")
    s.add_argument(
        "--user", default=None, help="who signs the corrections (default: $ROBO_ANNOTATE_USER or login)"
    )
    s.add_argument("--episode", type=int, default=None, help="episode to show first")
    s.add_argument(
        "--screenshot", type=Path, default=None, metavar="FILE", help="render the window to a PNG and exit"
    )
    s.add_argument(
        "--dataset-id",
        default=None,
        help="the dataset's name on the backend (default: its directory name; owner--name for a Hub repo id)",
    )
    s.add_argument(
        "--store", type=Path, default=None, help="the local backend's store (default: in the data dir)"
    )
    s.add_argument("--engine", default="kinematic", help="the local backend's engine (default kinematic)")


def cmd_info(args: argparse.Namespace) -> int:
    from core.dataset import Dataset

    print(Dataset(resolve_args(args)).summary())
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="robo-annotate", description="Review and correct robot demonstration annotations."
    )
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("make-demo", help="write a simulated teleoperation demo dataset (LeRobot v3)")
    s.add_argument("out", type=Path, help="output directory (must not exist)")
    s.add_argument(
        "--robot",
        choices=DEMO_ROBOTS,  # core.demo's own list; importing the package loads no generator code
        default="single-ee",
        help="single-ee: one arm, end-effector pose, pick-and-place; single-joint: an SO-100 arm in "
        "joint space, pick-and-place and push; bimanual: two ALOHA arms, handover and peg insertion "
        "(default single-ee)",
    )
    s.add_argument("--episodes", type=_count, default=8, help="number of episodes (default 8)")
    s.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    s.add_argument("--size", type=_size, default=(640, 480), help="camera size WxH (default 640x480)")
    s.add_argument("--fps", type=_count, default=30, help="frames per second (default 30)")
    s.add_argument("--cycles", type=_count, default=1, help="task scenes per episode (default 1)")
    s.set_defaults(func=cmd_make_demo)

    s = sub.add_parser("open", help="open a dataset (a directory or a Hub repo id) in the app")
    add_dataset_argument(s)
    _add_open_options(s)
    s.set_defaults(func=cmd_open)

    s = sub.add_parser("demo", help="generate the demo dataset if missing and open it")
    s.add_argument(
        "--data",
        type=Path,
        default=DEFAULT_DEMO_DIR,
        help=f"demo dataset directory (default {DEFAULT_DEMO_DIR})",
    )
    s.add_argument("--episodes", type=int, default=8, help="episodes to generate if missing (default 8)")
    s.add_argument(
        "--size", type=_size, default=(640, 480), help="camera size if generated (default 640x480)"
    )
    _add_open_options(s)
    s.set_defaults(func=cmd_demo)

    from core.export.cli import register as register_export

    register_export(sub)

    s = sub.add_parser("info", help="print a dataset's summary")
    add_dataset_argument(s)
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
