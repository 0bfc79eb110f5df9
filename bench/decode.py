"""Frame decoding: core.video against lerobot's own decoding path, in the same run.

Datasets: the 640x480 demo (4 episodes) and one ~60 s 640x480 30 fps episode, both
AV1 (libsvtav1, g=2) written by lerobot. For each: random-access fetch latency
(median, p95) of uncached frames, and sequential playback fps for two cameras.
The peer is `lerobot.datasets.video_utils.decode_video_frames` with its default
backend (torchcodec), one timestamp per call for random access, and the whole
episode in one call for sequential decoding (its fastest use).

    .venv/bin/python bench/decode.py [--samples 300]
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("SVT_LOG", "1")

from core.dataset import Dataset, VideoRef  # noqa: E402
from core.demo.writer import cached_demo  # noqa: E402
from core.video import FrameReader  # noqa: E402

CACHE = REPO / ".cache" / "bench-data"


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q))


def random_access(fetch, jobs: list[tuple[VideoRef, int]]) -> list[float]:
    times = []
    for ref, i in jobs:
        t0 = time.perf_counter()
        fetch(ref, i)
        times.append((time.perf_counter() - t0) * 1000)
    return times


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--samples", type=int, default=300, help="random fetches per dataset and decoder")
    args = ap.parse_args()

    from lerobot.datasets.video_utils import decode_video_frames, get_safe_default_video_backend

    backend = get_safe_default_video_backend()
    datasets = {
        "demo 640x480": cached_demo(CACHE, "demo640", episodes=4, seed=1, width=640, height=480, fps=30),
        "60 s episode": cached_demo(
            CACHE, "long640", episodes=1, seed=2, width=640, height=480, fps=30, cycles=7
        ),
    }

    def ours_factory():
        reader = FrameReader(cache_bytes=0)  # no frame cache: every fetch decodes
        return lambda ref, i: reader.frame(ref, i)

    def lerobot_fetch(ref: VideoRef, i: int):
        return decode_video_frames(ref.path, [ref.timestamp(i)], 1e-4, backend, return_uint8=True)

    rows = []
    for label, root in datasets.items():
        ds = Dataset(root)
        cams = ds.cameras[:2]
        rng = random.Random(0)
        refs = [ds.video(e.index, c) for e in ds for c in cams]
        jobs = [(r, rng.randrange(r.length)) for r in rng.choices(refs, k=args.samples)]
        duration = max(e.duration for e in ds)
        ours_fetch = ours_factory()
        for name, fetch in (("core.video", ours_fetch), (f"lerobot ({backend})", lerobot_fetch)):
            fetch(*jobs[0])  # open files, warm caches of open decoders
            ra = random_access(fetch, jobs)
            rows.append([label, name, "random access", statistics.median(ra), pct(ra, 95), None])

        ep = max(ds, key=lambda e: e.length)
        seq_refs = [ds.video(ep.index, c) for c in cams]
        # Sequential: both cameras of the longest episode, start to end.
        t0 = time.perf_counter()
        n = 0
        reader = FrameReader()
        for ref in seq_refs:
            for _ in reader.iter_frames(ref):
                n += 1
        ours_fps = n / (time.perf_counter() - t0) / len(seq_refs)
        t0 = time.perf_counter()
        m = 0
        for ref in seq_refs:
            out = decode_video_frames(
                ref.path, [ref.timestamp(i) for i in range(ref.length)], 1e-4, backend, return_uint8=True
            )
            m += len(out)
        lr_fps = m / (time.perf_counter() - t0) / len(seq_refs)
        rows.append([label, "core.video", "sequential", None, None, ours_fps])
        rows.append([label, f"lerobot ({backend})", "sequential", None, None, lr_fps])
        rows.append([label, "", f"(longest episode {duration:.0f} s, {len(cams)} cameras)", None, None, None])

    print(
        f"\n{'dataset':<14} {'decoder':<22} {'access':<30} {'median ms':>10} {'p95 ms':>8} {'fps/camera':>11}"
    )
    for r in rows:
        med = f"{r[3]:.2f}" if r[3] is not None else ""
        p95 = f"{r[4]:.2f}" if r[4] is not None else ""
        fps = f"{r[5]:.0f}" if r[5] is not None else ""
        print(f"{r[0]:<14} {r[1]:<22} {r[2]:<30} {med:>10} {p95:>8} {fps:>11}")
    print()
    for label in datasets:
        sub = [r for r in rows if r[0] == label]
        ra = [r for r in sub if r[2] == "random access"]
        sq = [r for r in sub if r[2] == "sequential"]
        print(
            f"{label}: random-access p95 ratio core.video / lerobot = {ra[0][4] / ra[1][4]:.2f} "
            f"(target <= 1, and p95 <= 15 ms); sequential ratio = {sq[0][5] / sq[1][5]:.2f} "
            f"(target >= 200 fps/camera)"
        )


if __name__ == "__main__":
    main()
