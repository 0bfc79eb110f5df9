"""Tracking: boxes and gripper points from K keyframes, per demo variant, against the keyframes alone.

For each demo robot variant the installed generator knows (`core.demo.ROBOTS`:
`single-ee`, the original arm, and `single-joint` / `bimanual` where core.demo
has them; a variant it does not know is reported as skipped), a 640x480 demo is
written once (cached) and
`robo-backend evaluate --track` runs on it for boxes and for points. Peers, in
the same run: holding the nearest keyframe and linear interpolation between the
keyframes (quality), and decoding the same frames sequentially with core.video
(speed: is tracking the bottleneck?).

    .venv/bin/python bench/tracking.py [--robot single-ee bimanual ...] [--keyframes 1] [--episodes 6] [--seed 1]
"""

from __future__ import annotations

import argparse
import inspect
import math
import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("SVT_LOG", "1")

import core.demo  # noqa: E402
from backend.evaluate_tracking import evaluate_track  # noqa: E402
from backend.tracking import make_track_engine  # noqa: E402
from core.dataset import Dataset  # noqa: E402
from core.demo.writer import cached_demo, write_demo  # noqa: E402
from core.video import FrameReader  # noqa: E402

CACHE = REPO / ".cache" / "bench-data"
# The generator's robots; one that predates variants makes the original end-effector arm only.
VARIANTS: tuple[str, ...] = tuple(getattr(core.demo, "ROBOTS", ("single-ee",)))
ALL_VARIANTS = ("single-ee", "single-joint", "bimanual")


def demo_for(variant: str, episodes: int, seed: int = 1) -> Path | None:
    """The cached 640x480 demo of a robot variant, or None if this generator does not make it."""
    if variant not in VARIANTS:
        return None
    params = {"episodes": episodes, "seed": seed, "width": 640, "height": 480, "fps": 30}
    if "robot" in inspect.signature(write_demo).parameters:
        params["robot"] = variant
    return cached_demo(CACHE, f"track-{variant}" if seed == 1 else f"track-{variant}-seed{seed}", **params)


def decode_speed(root: Path) -> float:
    """Frames/s of sequential decoding of every episode and camera (the playback path)."""
    ds = Dataset(root)
    reader = FrameReader(cache_bytes=0)
    n, t0 = 0, time.perf_counter()
    for ep in ds:
        for cam in ds.cameras:
            for _i, _frame in reader.iter_frames(ds.video(ep.index, cam)):
                n += 1
    return n / (time.perf_counter() - t0)


def fmt(v: float, spec: str = ".3f") -> str:
    return "-" if v is None or (isinstance(v, float) and math.isnan(v)) else format(v, spec)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--robot",
        nargs="*",
        default=list(ALL_VARIANTS),
        help=f"demo variants (default: {' '.join(ALL_VARIANTS)})",
    )
    ap.add_argument(
        "--keyframes", type=int, default=1, help="keyframes per track (default 1: the first frame)"
    )
    ap.add_argument("--episodes", type=int, default=6, help="episodes per demo (default 6)")
    ap.add_argument(
        "--seed", type=int, default=1, help="the demo generator's seed (default 1; others: other scenes)"
    )
    ap.add_argument("--engine", default="cpu", help="tracker: cpu (default), sam2 or sam3 (with --model)")
    ap.add_argument("--model", default=None, help="checkpoint for sam2 / sam3")
    args = ap.parse_args()

    engine = make_track_engine(args.engine, **({"model": args.model} if args.model else {}))
    rows = []
    for variant in args.robot:
        root = demo_for(variant, args.episodes, args.seed)
        if root is None:
            rows.append((variant, None, None, None))
            continue
        boxes = evaluate_track(root, engine, "boxes", args.keyframes)
        points = evaluate_track(root, engine, "points", args.keyframes)
        rows.append((variant, boxes, points, decode_speed(root)))
    engine.close()

    print(
        f"\nTracking from {args.keyframes} keyframe(s), {engine.tag}, 640x480, {args.episodes} episodes, "
        f"seed {args.seed}, "
        "two cameras (peers: hold the nearest keyframe, interpolate between keyframes, decode alone)\n"
    )
    head = (
        "| demo | box IoU | hold | interp | vs hold | point px median / mean | hold | interp | vs hold "
        "| tracked frames/s (box / point) | decode frames/s | tracking / decode |"
    )
    print(head)
    print("|" + "---|" * (head.count("|") - 1))
    for variant, b, p, dec in rows:
        if b is None:
            print(f"| {variant} | skipped: the installed core.demo does not make this robot |" + " - |" * 10)
            continue
        bm, pm = b["mean"], p["mean"]
        fps_b, fps_p = bm["frames_per_s"], pm["frames_per_s"]
        print(
            f"| {variant} | {fmt(bm['iou'])} | {fmt(bm['iou_hold'])} | {fmt(bm['iou_interp'])} "
            f"| {fmt(bm['iou'] / bm['iou_hold'], '.2f')}x "
            f"| {fmt(pm['px_median'], '.1f')} / {fmt(pm['px_mean'], '.1f')} | {fmt(pm['px_median_hold'], '.1f')} "
            f"| {fmt(pm['px_median_interp'], '.1f')} | {fmt(pm['px_median_hold'] / pm['px_median'], '.1f')}x "
            f"| {fps_b:.0f} / {fps_p:.0f} | {dec:.0f} | {min(fps_b, fps_p) / dec:.2f} |"
        )
    errors = [e for _v, b, p, _d in rows if b for e in b["errors"] + p["errors"]]
    for e in errors:
        print(f"  error: episode {e['episode']} {e['camera']}: {e['error']}")
    print(
        "\nTargets (K = 1): box IoU >= 0.7 and >= 2x hold; point median <= 10 px and >= 4x better than hold; >= 30 frames/s"
    )


if __name__ == "__main__":
    main()
