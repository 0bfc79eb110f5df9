"""Proposals that learn from the reviewer: a learning curve per robot, and re-proposal speed.

1. For each demo variant (single-ee, single-joint, bimanual; written once by our
   generator and cached), `robo-backend evaluate --exemplars K` for K = 0, 1, 2, 4
   (the same function: the K lowest-index episodes of each task accepted with their
   true segments through a store, the rest proposed and scored), beside the peer
   it reports (the equal split into as many parts as the exemplars' median count)
   and the zero-shot engine (K = 0) in the same run.
2. The time to re-propose 1,000 episodes of 300 frames after one acceptance, beside
   the kinematic engine's zero-shot time on the same episodes. The episodes are
   the bimanual variant's own signals (of its first task), each resampled to 300 frames through a
   random monotone time warp (other speeds and pauses, as teleoperation has) with
   fresh sensor noise, written as a LeRobot v3.0 dataset without videos (neither
   engine reads a frame). Timed twice, with the engine's worker processes started
   beforehand (as `robo-backend serve` starts them): the engines alone (`predict` on every
   episode), and a real backend on loopback from the acknowledgement of the
   acceptance to the last re-proposal landing in the store.

    .venv/bin/python bench/learning.py [--episodes 12] [--seed 11] [--big 1000] [--frames 300] [--skip-speed]
"""

from __future__ import annotations

import argparse
import json
import shutil
import socket
import sys
import tempfile
import time
import uuid
from pathlib import Path

import msgspec
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from backend.engines.base import EpisodeJob  # noqa: E402
from backend.engines.kinematic import KinematicEngine  # noqa: E402
from backend.evaluate import evaluate_engine  # noqa: E402
from backend.exemplars import ExemplarIndex  # noqa: E402
from core.dataset import Dataset  # noqa: E402
from core.demo.writer import cached_demo  # noqa: E402
from core.protocol import Correction  # noqa: E402
from core.store import Store  # noqa: E402

CACHE = REPO / ".cache" / "bench-data"
VARIANTS = ("single-ee", "single-joint", "bimanual")
KS = (0, 1, 2, 4)
METRICS = ("f1@0.25", "f1@0.5", "label_acc")


def variant_root(robot: str, episodes: int, seed: int = 11) -> Path:
    return cached_demo(
        CACHE,
        f"learning-seed{seed}-{robot}",
        robot=robot,
        episodes=episodes,
        seed=seed,
        width=160,
        height=120,
        fps=30,
    )


def learning_rows(robot: str, episodes: int, seed: int = 11) -> list[tuple[str, dict, int]]:
    root = variant_root(robot, episodes, seed)
    rows = []
    for k in KS:
        result = evaluate_engine(root, KinematicEngine(), exemplars=k)
        n = len(result["episodes"]) + len(result["errors"])
        rows.append((f"K={k}", result["mean"], n))
        rows.append((f"  equal split (K={k})", result["peer"]["mean"], n))
    return rows


# ---------------------------------------------------------------- the speed run


def _warp(n_src: int, n_out: int, rng: np.random.Generator) -> np.ndarray:
    """A monotone map of n_out output frames onto [0, n_src - 1]: random speeds, some pauses."""
    rates = rng.uniform(0.5, 1.5, 8)
    rates[rng.random(8) < 0.2] = 0.05  # a pause
    knots = np.concatenate([[0.0], np.cumsum(np.repeat(rates, 1))])
    knots = knots / knots[-1] * (n_src - 1)
    x = np.linspace(0, len(rates), n_out)
    return np.interp(x, np.arange(len(knots)), knots)


def build_big(src: Path, out: Path, episodes: int, frames: int) -> Path:
    """A videoless LeRobot v3.0 dataset of `episodes` x `frames` made from `src`'s signals."""
    rng = np.random.default_rng(0)
    ds = Dataset(src)
    feats = [f for f in ("observation.state", "action") if f in ds.features]
    # One task repeated, as most lab datasets are (the first task of the variant).
    first_task = next(iter(ds)).task
    srcs = [(ds.signals(e.index), e.task) for e in ds if e.task == first_task]
    tasks = [first_task]
    state_cols = {f: [] for f in feats}
    task_index = []
    for e in range(episodes):
        sig, task = srcs[e % len(srcs)]
        t = _warp(len(sig), frames, rng)
        for f in feats:
            arr = sig.channels[f].astype(np.float64)
            res = np.stack(
                [np.interp(t, np.arange(len(arr)), arr[:, j]) for j in range(arr.shape[1])], axis=1
            )
            scale = np.maximum(arr.std(axis=0), 1e-9)
            state_cols[f].append((res + rng.normal(0, 0.01, res.shape) * scale).astype(np.float32))
        task_index.append(tasks.index(task))
    n = episodes * frames
    ep = np.repeat(np.arange(episodes, dtype=np.int64), frames)
    fi = np.tile(np.arange(frames, dtype=np.int64), episodes)
    cols = {}
    features = {}
    for f in feats:
        arr = np.concatenate(state_cols[f])
        d = arr.shape[1]
        cols[f] = pa.FixedSizeListArray.from_arrays(pa.array(arr.ravel()), d)
        features[f] = {"dtype": "float32", "shape": [d], "names": ds.features[f].get("names")}
    scalar = {"shape": [1], "names": None}
    cols |= {
        "timestamp": pa.array((fi / ds.fps).astype(np.float32)),
        "frame_index": pa.array(fi),
        "episode_index": pa.array(ep),
        "index": pa.array(np.arange(n, dtype=np.int64)),
        "task_index": pa.array(np.asarray(task_index, dtype=np.int64)[ep]),
    }
    for k in ("timestamp",):
        features[k] = {"dtype": "float32", **scalar}
    for k in ("frame_index", "episode_index", "index", "task_index"):
        features[k] = {"dtype": "int64", **scalar}
    (out / "meta" / "episodes" / "chunk-000").mkdir(parents=True)
    (out / "data" / "chunk-000").mkdir(parents=True)
    info = {
        "codebase_version": "v3.0",
        "fps": int(ds.fps),
        "features": features,
        "total_episodes": episodes,
        "total_frames": n,
        "total_tasks": len(tasks),
        "chunks_size": 1000,
        "data_path": "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet",
        "robot_type": ds.robot_type,
    }
    (out / "meta" / "info.json").write_text(json.dumps(info, indent=2))
    if (src / "meta" / "stats.json").is_file():
        shutil.copyfile(src / "meta" / "stats.json", out / "meta" / "stats.json")
    pq.write_table(pa.table(cols), out / "data" / "chunk-000" / "file-000.parquet")
    meta = {
        "episode_index": pa.array(np.arange(episodes, dtype=np.int64)),
        "tasks": pa.array([[tasks[t]] for t in task_index]),
        "length": pa.array(np.full(episodes, frames, dtype=np.int64)),
        "data/chunk_index": pa.array(np.zeros(episodes, dtype=np.int64)),
        "data/file_index": pa.array(np.zeros(episodes, dtype=np.int64)),
        "dataset_from_index": pa.array(np.arange(episodes, dtype=np.int64) * frames),
        "dataset_to_index": pa.array((np.arange(episodes, dtype=np.int64) + 1) * frames),
    }
    pq.write_table(pa.table(meta), out / "meta" / "episodes" / "chunk-000" / "file-000.parquet")
    return out


def _accept_first(ds: Dataset, dataset_id: str) -> Correction:
    """A person accepts episode 0 (as the zero-shot engine proposed it: for timing, what was
    accepted does not matter, only that the task now has an exemplar)."""
    pred = KinematicEngine().predict_one(EpisodeJob(dataset_id, ds, 0))
    ann = msgspec.structs.replace(pred.annotation, dataset=dataset_id, review="accepted")
    return Correction(
        uuid=uuid.uuid4().hex, dataset=dataset_id, episode=0, base_revision=0, user="bench", annotation=ann
    )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def speed_rows(big_episodes: int, frames: int) -> list[tuple[str, float, float]]:
    from backend.config import ServerConfig
    from backend.server import BackendServer
    from client import BackendClient

    src = variant_root("bimanual", 12)
    rows = []
    with tempfile.TemporaryDirectory(prefix="robo-learning-") as tmp:
        tmp = Path(tmp)
        root = build_big(src, tmp / "datasets" / "big", big_episodes, frames)
        ds = Dataset(root)
        others = [e for e in ds.episodes if e != 0]
        # engines alone
        store = tmp / "engines.db"
        with Store(store) as st, st.transaction():
            st.apply_correction(_accept_first(ds, ds.name))
        with Store(store, readonly=True) as st:
            index = ExemplarIndex.load(st, ds.name, ds)
        # Workers started and warm, as in a running backend (`serve` starts them at once).
        eng = KinematicEngine()
        for f in eng.warm():
            f.result()
        t0 = time.perf_counter()
        zs = eng.predict([EpisodeJob(ds.name, ds, e) for e in others])
        t_zero = time.perf_counter() - t0
        eng = KinematicEngine()
        for f in eng.warm():
            f.result()
        t0 = time.perf_counter()
        pr = eng.predict([EpisodeJob(ds.name, ds, e, exemplars=index.for_episode(e)) for e in others])
        t_prop = time.perf_counter() - t0
        assert all(p.status == "ok" for p in zs + pr), [p.error for p in zs + pr if p.status != "ok"][:3]
        rows.append(("engine alone: zero-shot (peer)", t_zero, len(others) / t_zero))
        rows.append(("engine alone: propagated from 1 acceptance", t_prop, len(others) / t_prop))
        # a real backend: acknowledgement to the last re-proposal in the store
        a, b = _free_port(), _free_port()
        cfg = ServerConfig(
            datasets=[tmp / "datasets"],
            store=tmp / "server.db",
            bind=f"tcp://127.0.0.1:{a}",
            events=f"tcp://127.0.0.1:{b}",
            propagation_delay=0.05,
        )
        server = BackendServer(cfg)
        for f in server.engine.warm():  # what `robo-backend serve` does at start
            f.result()
        server.start()
        try:
            with BackendClient(cfg.bind, user="bench", timeout=60) as client:
                client.hello()
                c = _accept_first(ds, "big")
                t0 = time.perf_counter()
                client.submit(c)
                t_ack = time.perf_counter() - t0
                with Store(cfg.store, readonly=True) as st:
                    while True:
                        done = st.conn.execute(
                            "SELECT COUNT(*) FROM predictions WHERE dataset = 'big' AND model LIKE '%+ex-%'"
                        ).fetchone()[0]
                        if done >= len(others):
                            break
                        time.sleep(0.05)
                t_server = time.perf_counter() - t0
        finally:
            server.stop()
        rows.append((f"backend: acceptance acknowledged (then {len(others)} re-proposed)", t_ack, 0.0))
        rows.append(
            ("backend: acknowledgement to the last re-proposal stored", t_server, len(others) / t_server)
        )
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--episodes", type=int, default=12, help="episodes per variant for the learning curve")
    p.add_argument("--big", type=int, default=1000, help="episodes of the speed run")
    p.add_argument("--frames", type=int, default=300)
    p.add_argument("--skip-speed", action="store_true")
    p.add_argument("--variants", nargs="*", default=list(VARIANTS))
    p.add_argument(
        "--seed",
        type=int,
        default=11,
        help="the demo generator's seed (other seeds: other scenes, same robots)",
    )
    args = p.parse_args()
    print("| variant | exemplars per task | episodes scored | F1@0.25 | F1@0.5 | label accuracy |")
    print("|---|---|---|---|---|---|")
    for robot in args.variants:
        for label, mean, n in learning_rows(robot, args.episodes, args.seed):
            vals = " | ".join(f"{mean.get(m, float('nan')):.3f}" for m in METRICS)
            print(f"| {robot} | {label} | {n} | {vals} |", flush=True)
    if args.skip_speed:
        return
    print()
    print(
        f"| re-proposing {args.big - 1} episodes of {args.frames} frames (bimanual) | seconds | episodes/s |"
    )
    print("|---|---|---|")
    rows = speed_rows(args.big, args.frames)
    for label, secs, rate in rows:
        print(
            f"| {label} | {secs:.2f} | {rate:,.0f} |" if rate else f"| {label} | {secs * 1000:.1f} ms | - |"
        )
    print(f"\nratio propagated / zero-shot (engines alone): {rows[1][1] / rows[0][1]:.2f}")


if __name__ == "__main__":
    main()
