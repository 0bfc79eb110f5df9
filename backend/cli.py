"""`robo-backend`: serve, batch-annotate, make keys, evaluate an engine."""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import signal
import sys
from pathlib import Path
from typing import Any

from core.config import flag_options
from core.errors import RoboAnnotateError
from core.hub import add_dataset_argument, resolve_args, source_for


def _engine_options(text: str | None, model: str | None = None) -> dict:
    """--engine-options as a dict, with --model (when given) as its 'model'."""
    if model:
        return {**_engine_options(text), "model": model}
    if not text:
        return {}
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise SystemExit(f"error: --engine-options is not JSON ({exc})") from None
    if not isinstance(value, dict):
        raise SystemExit("error: --engine-options must be a JSON object")
    return value


def cmd_serve(args: argparse.Namespace) -> int:
    from backend.config import ServerConfig
    from backend.server import BackendServer

    try:
        config = ServerConfig(
            datasets=resolve_args(args, "datasets"),
            store=args.store,
            bind=args.bind,
            events=args.events,
            engine=args.engine,
            engine_options=_engine_options(args.engine_options, args.model),
            curve_dir=args.curve,
            insecure=args.insecure,
            heartbeat_s=args.heartbeat,
            propagation_delay=args.propagation_delay,
            tracker=args.tracker,
            tracker_options={"model": args.tracker_model} if args.tracker_model else {},
        )
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    server = BackendServer(config)
    # A served backend runs for hours: its engine's worker processes start now, not when the
    # first acceptance is waiting for its re-proposals.
    server.engine.warm()
    signal.signal(signal.SIGTERM, lambda *_: server._stop.set())
    signal.signal(signal.SIGINT, lambda *_: server._stop.set())
    print(
        f"robo-backend: serving on {config.bind} (events {config.events}), engine {server.model.tag}",
        flush=True,
    )
    server.serve_forever()
    return 0


def cmd_annotate(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from backend.annotate import annotate_dataset
    from backend.engines import make_engine

    dataset = resolve_args(args)
    engine = make_engine(args.engine, **_engine_options(args.engine_options, args.model))
    with tqdm(desc=f"annotating {args.dataset}", unit="episode") as bar:

        def progress(done: int, total: int) -> None:
            bar.total = total
            bar.update(done - bar.n)

        report = annotate_dataset(
            dataset, args.store, engine, args.episodes, batch_size=args.batch_size, progress=progress
        )
    print(
        f"predicted {report.predicted}, skipped {report.skipped} (already done by {engine.info().tag}), "
        f"unparseable {len(report.unparseable)}, failed {len(report.failed)}"
    )
    for ep, err in sorted(report.failed.items()):
        print(f"  episode {ep}: {err}")
    for ep, why in sorted(report.unusable_exemplars.items()):
        print(f"  accepted episode {ep} cannot serve as an exemplar: {why}")
    return 1 if report.failed else 0


def cmd_track(args: argparse.Namespace) -> int:
    from backend.track_dataset import cli_track

    args.dataset = resolve_args(args)
    return cli_track(args)


def cmd_keygen(args: argparse.Namespace) -> int:
    from backend.security import keygen

    for path in keygen(args.dir, args.client):
        print(f"wrote {path}")
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    root = resolve_args(args)
    if (source := source_for(root)) is not None:
        source.fetch("ground_truth.json")  # the demo generator's labels, beside the dataset
    if args.track:
        from backend.evaluate_tracking import cli_evaluate_track

        args.dataset = root
        return cli_evaluate_track(args)
    from backend.engines import make_engine
    from backend.evaluate import evaluate_engine, format_report

    engine = make_engine(args.engine, **_engine_options(args.engine_options, args.model))
    result = evaluate_engine(root, engine, args.episodes, exemplars=args.exemplars)
    print(format_report(result))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    return 0


def cmd_import(args: argparse.Namespace) -> int:
    from core.imports import import_dataset

    report = import_dataset(
        resolve_args(args), args.store, skills=args.skills, accept=args.accept, author=args.author
    )
    print(report.format())
    return 1 if report.failed else 0


def _server_flag(name: str) -> dict[str, Any]:
    from backend.config import ServerConfig

    return flag_options(ServerConfig, name)


def _server_help(name: str) -> str:
    from backend.config import ServerConfig

    return next(f.metadata["help"] for f in dataclasses.fields(ServerConfig) if f.name == name)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="robo-backend", description="RoboAnnotate inference backend.")
    p.add_argument("-v", "--verbose", action="store_true", help="log more")
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("serve", help="serve predictions, corrections and the review queue over ZeroMQ")
    add_dataset_argument(
        s,
        "--datasets",
        many=True,
        help="dataset directories, folders of datasets, or Hub repo ids (owner/name)",
    )
    # Defaults and help come from ServerConfig's fields (core.config.flag_options).
    s.add_argument("--store", type=Path, required=True, help=_server_help("store"))
    s.add_argument("--bind", **_server_flag("bind"))
    s.add_argument("--events", **_server_flag("events"))
    s.add_argument("--engine", **_server_flag("engine"))
    s.add_argument(
        "--model", default=None, help="checkpoint directory, hub id or served model name (VLM engines)"
    )
    s.add_argument("--engine-options", default=None, help="engine options as a JSON object")
    s.add_argument("--curve", type=Path, **_server_flag("curve_dir"))
    s.add_argument("--insecure", action="store_true", help=_server_help("insecure"))
    s.add_argument("--heartbeat", type=float, **_server_flag("heartbeat_s"))
    s.add_argument("--propagation-delay", type=float, metavar="S", **_server_flag("propagation_delay"))
    s.add_argument("--tracker", **_server_flag("tracker"))
    s.add_argument("--tracker-model", default=None, help="SAM2/SAM3 video checkpoint for --tracker sam2/sam3")
    s.set_defaults(func=cmd_serve)

    s = sub.add_parser("track", help="track every keyframe a person placed that has no track yet (resumable)")
    add_dataset_argument(s)
    s.add_argument("--store", type=Path, required=True)
    s.add_argument("--episodes", type=int, nargs="*", default=None, help="episode indices (default: all)")
    s.add_argument("--engine", default="cpu", help="cpu, sam2 or sam3 (default cpu)")
    s.add_argument("--model", default=None, help="SAM2/SAM3 video checkpoint directory or hub id")
    s.add_argument("--engine-options", default=None, help="tracker options as a JSON object")
    s.add_argument("--user", default=None, help="who the new revisions are by (default: the login name)")
    s.add_argument("--tolerance", type=float, default=2.0, help="keyframe tolerance in pixels (default 2)")
    s.set_defaults(func=cmd_track)

    s = sub.add_parser("annotate", help="batch pre-annotation into the store (resumable)")
    add_dataset_argument(s)
    s.add_argument("--store", type=Path, required=True)
    s.add_argument("--engine", default="kinematic")
    s.add_argument(
        "--model", default=None, help="checkpoint directory, hub id or served model name (VLM engines)"
    )
    s.add_argument("--engine-options", default=None, help="engine options as a JSON object")
    s.add_argument("--episodes", type=int, nargs="*", default=None, help="episode indices (default: all)")
    s.add_argument("--batch-size", type=int, default=8)
    s.set_defaults(func=cmd_annotate)

    s = sub.add_parser("keygen", help="make CURVE keys: the server pair, and with --client a client pair")
    s.add_argument("dir", type=Path)
    s.add_argument("--client", default=None, help="also make a client key pair with this name and allow it")
    s.set_defaults(func=cmd_keygen)

    s = sub.add_parser("evaluate", help="score an engine against a dataset's ground_truth.json")
    add_dataset_argument(s)
    s.add_argument("--engine", default="kinematic")
    s.add_argument(
        "--model", default=None, help="checkpoint directory, hub id or served model name (VLM engines)"
    )
    s.add_argument("--engine-options", default=None, help="engine options as a JSON object")
    s.add_argument("--episodes", type=int, nargs="*", default=None)
    s.add_argument(
        "--exemplars",
        type=int,
        default=0,
        metavar="K",
        help="accept the K lowest-index episodes of each task with their true segments first and "
        "score the rest (default 0: zero-shot)",
    )
    s.add_argument("--json", type=Path, default=None, help="also write the result as JSON")
    s.add_argument(
        "--track",
        choices=("boxes", "points"),
        default=None,
        help="score a tracker (--engine cpu, sam2 or sam3; default cpu) on the truth's boxes or gripper points",
    )
    s.add_argument(
        "--keyframes", type=int, default=1, help="with --track: keyframes given per track (default 1)"
    )
    s.set_defaults(func=cmd_evaluate)

    s = sub.add_parser(
        "import",
        help="store the annotations a dataset already has (skills.json, dialogue tables, language columns) "
        "as revisions to review",
    )
    add_dataset_argument(s)
    s.add_argument("--store", type=Path, required=True, help="SQLite annotation store (created if missing)")
    s.add_argument(
        "--skills",
        type=Path,
        default=None,
        help="a skills.json to read instead of the dataset's meta/skills.json",
    )
    s.add_argument("--accept", action="store_true", help="store them accepted (exemplars for propagation)")
    s.add_argument("--author", default="import", help="revisions are by human:AUTHOR (default: import)")
    s.set_defaults(func=cmd_import)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(name)s %(levelname)s %(message)s",
    )
    try:
        return args.func(args)
    except (RoboAnnotateError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
