"""Export speed on a large dataset, beside copying the dataset's files in the same run.

Builds LeRobot v3.0 datasets of 1,000 episodes x 300 frames cheaply: the data,
episode and task parquet files are written with pyarrow as lerobot lays them out
(one data file, one row group per episode, per-episode stats columns); no
episode is rendered. Two variants share those files and differ in their videos:

- "small clip": each camera has one small real mp4 that every episode points
  into with its from/to timestamps, so copying the dataset is copying ~30 MB of
  parquet (the worst case for an export, which must re-encode the data files);
- "demo bitrate": each camera's chunk-files hold 1,000 distinct 10 s windows of
  real video at the bitrate of our 640x480 AV1 demo (made by remuxing the cached
  bench demo's packets back to back, 200 MB per file as lerobot rolls them), so
  the copy moves what a real dataset of this length would, conservatively.

A store holds an accepted annotation per episode with every kind the store
holds (subtasks with motion, task rephrasings, dialogue, QAs, box tracks of
each kind, trajectories and contacts on both cameras: ~100 items, see
`build_store`). Alternating, `--repeat` times each: `shutil.copytree` of the dataset (the
peer) and the exports to `lerobot-language` and `lerobot-subtasks` (medians).

    .venv/bin/python bench/export.py [--episodes 1000] [--frames 300] [--repeat 3] [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from core.annotations import QA, Box, Contact, DialogueTurn, EpisodeAnnotation, Segment, Trajectory  # noqa: E402
from core.demo.writer import cached_demo  # noqa: E402
from core.export import export  # noqa: E402
from core.protocol import Correction  # noqa: E402
from core.store import Store  # noqa: E402

FPS = 30
NAMES = ["x", "y", "z", "roll", "pitch", "yaw", "gripper"]
SUBTASKS = ["reach", "grasp", "lift", "move", "place", "release", "retreat"]
STATS = ("min", "max", "mean", "std", "count", "q01", "q10", "q50", "q90", "q99")
CACHE = REPO / ".cache" / "bench-data"
VIDEO_FILE_MB = 200  # lerobot's default video_files_size_in_mb
CAMERAS = ["observation.images.front", "observation.images.wrist"]


def write_clip(path: Path, frames: int, width: int = 320, height: int = 240) -> None:
    """A small real H.264 clip (a moving gradient) that every episode's window points into."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=FPS)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.time_base = Fraction(1, FPS)
        x = np.linspace(0, 255, width, dtype=np.float32)
        for i in range(frames):
            img = np.empty((height, width, 3), dtype=np.uint8)
            img[..., 0] = (x + 4 * i) % 256
            img[..., 1] = np.linspace(0, 255, height, dtype=np.uint8)[:, None]
            img[..., 2] = 128
            frame = av.VideoFrame.from_ndarray(img, format="rgb24")
            frame.pts = i
            out.mux(stream.encode(frame))
        out.mux(stream.encode())


def remux_repeated(src: Path, dst: Path, frames: int) -> None:
    """`frames` frames of real video: the packets of `src` again and again, timestamps shifted (no re-encode)."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    written = offset = 0
    with av.open(str(dst), "w") as out:
        ost = None
        while written < frames:
            with av.open(str(src)) as inp:
                ist = inp.streams.video[0]
                ost = ost or out.add_stream_from_template(ist, opaque=True)
                end = offset
                for pkt in inp.demux(ist):
                    if pkt.dts is None or pkt.size == 0 or written >= frames:
                        continue
                    end = max(end, pkt.pts + offset + pkt.duration)
                    pkt.pts += offset
                    pkt.dts += offset
                    pkt.stream = ost
                    out.mux(pkt)
                    written += 1
                offset = end


def small_clip_videos(root: Path, cameras: list[str], episodes: int, frames: int) -> dict[str, list]:
    """One small clip per camera; every episode's window is its first `frames` frames."""
    windows = {}
    for cam in cameras:
        write_clip(root / "videos" / cam / "chunk-000" / "file-000.mp4", frames)
        windows[cam] = [(0, 0, 0.0, frames / FPS)] * episodes
    return windows


def demo_bitrate_videos(root: Path, cameras: list[str], episodes: int, frames: int) -> dict[str, list]:
    """Chunk-files of <= 200 MB per camera, each episode its own 10 s window of real video."""
    demo = cached_demo(CACHE, "demo640", episodes=4, seed=1, width=640, height=480, fps=30)
    windows = {}
    for cam, src_cam in zip(cameras, ["observation.images.front", "observation.images.top"], strict=True):
        src = demo / "videos" / src_cam / "chunk-000" / "file-000.mp4"
        with av.open(str(src)) as c:
            clip_frames = c.streams.video[0].frames
        per_episode = src.stat().st_size * frames / clip_frames
        per_file = max(1, int(VIDEO_FILE_MB * 2**20 // per_episode))
        n_files = -(-episodes // per_file)
        first = root / "videos" / cam / "chunk-000" / "file-000.mp4"
        remux_repeated(src, first, per_file * frames)
        for f in range(1, n_files):
            dst = root / "videos" / cam / "chunk-000" / f"file-{f:03d}.mp4"
            held = min(per_file, episodes - f * per_file)
            if held == per_file:
                shutil.copyfile(first, dst)
            else:
                remux_repeated(src, dst, held * frames)
        windows[cam] = [
            (0, e // per_file, (e % per_file) * frames / FPS, (e % per_file + 1) * frames / FPS)
            for e in range(episodes)
        ]
    return windows


def _indexed(index: str, values: list[str], column: str) -> pa.Table:
    meta = {
        "index_columns": [index],
        "column_indexes": [],
        "columns": [
            {
                "name": column,
                "field_name": column,
                "pandas_type": "int64",
                "numpy_type": "int64",
                "metadata": None,
            },
            {
                "name": index,
                "field_name": index,
                "pandas_type": "unicode",
                "numpy_type": "object",
                "metadata": None,
            },
        ],
        "pandas_version": "2.0.0",
    }
    t = pa.table({column: pa.array(range(len(values)), pa.int64()), index: pa.array(values)})
    return t.replace_schema_metadata({b"pandas": json.dumps(meta).encode()})


def build_dataset(root: Path, episodes: int, frames: int, videos) -> None:
    """A LeRobot v3.0 dataset: meta/info.json, tasks, episodes, one data file, `videos(...)` per camera."""
    rng = np.random.default_rng(0)
    n = episodes * frames
    cameras = CAMERAS
    tasks = [f"pick up the object {i} and place it in the bowl" for i in range(10)]
    vec = {"dtype": "float32", "shape": [7], "names": NAMES}
    scalar = {"shape": [1], "names": None}
    (root / "meta" / "episodes" / "chunk-000").mkdir(parents=True)
    windows = videos(root, cameras, episodes, frames)
    features = {}
    for cam in cameras:
        with av.open(str(root / "videos" / cam / "chunk-000" / "file-000.mp4")) as c:
            st = c.streams.video[0]
            w, h, codec = st.codec_context.width, st.codec_context.height, st.codec_context.name
        features[cam] = {
            "dtype": "video",
            "shape": [h, w, 3],
            "names": ["height", "width", "channels"],
            "info": {"video.height": h, "video.width": w, "video.codec": codec, "video.fps": FPS},
        }
    features |= {
        "observation.state": vec,
        "action": vec,
        "timestamp": {"dtype": "float32", **scalar},
        "frame_index": {"dtype": "int64", **scalar},
        "episode_index": {"dtype": "int64", **scalar},
        "index": {"dtype": "int64", **scalar},
        "task_index": {"dtype": "int64", **scalar},
    }
    info = {
        "codebase_version": "v3.0",
        "fps": FPS,
        "features": features,
        "total_episodes": episodes,
        "total_frames": n,
        "total_tasks": len(tasks),
        "chunks_size": 1000,
        "data_files_size_in_mb": 100,
        "video_files_size_in_mb": VIDEO_FILE_MB,
        "data_path": "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet",
        "video_path": "videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4",
        "robot_type": "bench_arm",
        "splits": {"train": f"0:{episodes}"},
    }
    (root / "meta" / "info.json").write_text(json.dumps(info, indent=4))
    pq.write_table(_indexed("task", tasks, "task_index"), root / "meta" / "tasks.parquet")

    ep_index = np.repeat(np.arange(episodes, dtype=np.int64), frames)
    frame_index = np.tile(np.arange(frames, dtype=np.int64), episodes)
    task_of_ep = rng.integers(0, len(tasks), episodes)
    state = rng.standard_normal((n, 7)).astype(np.float32)
    action = rng.standard_normal((n, 7)).astype(np.float32)
    data = pa.table(
        {
            "observation.state": pa.FixedSizeListArray.from_arrays(pa.array(state.ravel()), 7),
            "action": pa.FixedSizeListArray.from_arrays(pa.array(action.ravel()), 7),
            "timestamp": pa.array((frame_index / FPS).astype(np.float32)),
            "frame_index": pa.array(frame_index),
            "episode_index": pa.array(ep_index),
            "index": pa.array(np.arange(n, dtype=np.int64)),
            "task_index": pa.array(task_of_ep[ep_index]),
        }
    )
    path = root / "data" / "chunk-000" / "file-000.parquet"
    path.parent.mkdir(parents=True)
    with pq.ParquetWriter(path, data.schema, compression="snappy") as w:
        for e in range(episodes):
            w.write_table(data.slice(e * frames, frames))

    cols: dict[str, pa.Array] = {
        "episode_index": pa.array(np.arange(episodes, dtype=np.int64)),
        "tasks": pa.array([[tasks[t]] for t in task_of_ep]),
        "length": pa.array(np.full(episodes, frames, dtype=np.int64)),
        "data/chunk_index": pa.array(np.zeros(episodes, dtype=np.int64)),
        "data/file_index": pa.array(np.zeros(episodes, dtype=np.int64)),
        "dataset_from_index": pa.array(np.arange(episodes, dtype=np.int64) * frames),
        "dataset_to_index": pa.array((np.arange(episodes, dtype=np.int64) + 1) * frames),
    }
    for cam in cameras:
        chunk, file, t0, t1 = (np.array(x) for x in zip(*windows[cam], strict=True))
        cols[f"videos/{cam}/chunk_index"] = pa.array(chunk.astype(np.int64))
        cols[f"videos/{cam}/file_index"] = pa.array(file.astype(np.int64))
        cols[f"videos/{cam}/from_timestamp"] = pa.array(t0.astype(np.float64))
        cols[f"videos/{cam}/to_timestamp"] = pa.array(t1.astype(np.float64))
    for feat in [*cameras, "observation.state", "action", "timestamp", "frame_index", "episode_index"]:
        width = 3 if feat in cameras else (7 if feat in ("observation.state", "action") else 1)
        for stat in STATS:
            cols[f"stats/{feat}/{stat}"] = pa.array(list(rng.random((episodes, width))))
    cols["meta/episodes/chunk_index"] = pa.array(np.zeros(episodes, dtype=np.int64))
    cols["meta/episodes/file_index"] = pa.array(np.zeros(episodes, dtype=np.int64))
    pq.write_table(pa.table(cols), root / "meta" / "episodes" / "chunk-000" / "file-000.parquet")
    (root / "meta" / "stats.json").write_text(json.dumps({"action": {"mean": [0.0] * 7}}))


def build_store(path: Path, dataset: str, episodes: int, frames: int, cameras: list[str]) -> None:
    """An accepted annotation per episode with every kind the store holds: 7 subtasks on frame
    boundaries with motion descriptions, 2 task rephrasings, 2 dialogue turns, 2 QAs and, per camera,
    a box track of the object (a keyframe every 10 frames, as a tracker leaves them), its final and
    contact boxes, a gripper track (every 30 frames), the gripper's trajectory (a point every 10
    frames) and a contact point."""
    rng = np.random.default_rng(1)
    dur = frames / FPS
    camera = cameras[0]

    def box(c: np.ndarray, half: float = 0.05) -> tuple[float, float, float, float]:
        x, y = np.clip(c, half, 1 - half)
        return (float(x - half), float(y - half), float(x + half), float(y + half))

    with Store(path) as store, store.transaction():
        for e in range(episodes):
            cuts = np.sort(rng.choice(np.arange(3, frames - 3), len(SUBTASKS) - 1, replace=False)) / FPS
            bounds = [0.0, *cuts.tolist(), dur]
            segs = [
                Segment(name=n, start=a, end=b, motion=f"{n}: move the arm for {b - a:.1f} s")
                for n, a, b in zip(SUBTASKS, bounds, bounds[1:], strict=False)
            ]
            grasp = round(segs[1].start * FPS)
            boxes, trajectories, contacts = [], [], []
            for cam in cameras:
                path_xy = np.cumsum(rng.normal(0, 0.01, (frames, 2)), axis=0) + rng.uniform(0.3, 0.7, 2)
                path_xy = np.clip(path_xy, 0.05, 0.95)
                boxes += [
                    Box(t=k / FPS, camera=cam, label="cup", kind="current", xyxy=box(path_xy[k]))
                    for k in range(0, frames, 10)
                ]
                boxes.append(
                    Box(
                        t=0.0, camera=cam, label="bowl", kind="final", xyxy=box(rng.uniform(0.2, 0.8, 2), 0.1)
                    )
                )
                boxes.append(
                    Box(t=grasp / FPS, camera=cam, label="cup", kind="contact", xyxy=box(path_xy[grasp]))
                )
                boxes += [
                    Box(t=k / FPS, camera=cam, label="gripper", kind="gripper", xyxy=box(path_xy[k], 0.04))
                    for k in range(0, frames, 30)
                ]
                trajectories.append(
                    Trajectory(
                        camera=cam, points=[(k / FPS, *map(float, path_xy[k])) for k in range(0, frames, 10)]
                    )
                )
                contacts.append(
                    Contact(t=grasp / FPS, camera=cam, x=float(path_xy[grasp][0]), y=float(path_xy[grasp][1]))
                )
            ann = EpisodeAnnotation(
                dataset=dataset,
                episode=e,
                duration=dur,
                fps=FPS,
                task="pick and place",
                task_aug=["put the cup in the bowl", "move the cup into the bowl"],
                segments=segs,
                boxes=boxes,
                trajectories=trajectories,
                contacts=contacts,
                dialogue=[
                    DialogueTurn(t=0.0, skill="reach", user_prompt="Get the cup.", robot_utterance="On it."),
                    DialogueTurn(
                        t=segs[1].start,
                        skill="grasp",
                        user_prompt="Now grab it.",
                        robot_utterance="Grabbing.",
                    ),
                ],
                qa=[
                    QA(
                        t=1.0,
                        camera=camera,
                        question="Touching?",
                        answer="no",
                        kind="choice",
                        choices=["yes", "no"],
                    ),
                    QA(t=2.0, camera=camera, question="What now?", answer="reaching"),
                ],
                review="accepted",
            )
            c = Correction(
                uuid=uuid.uuid4().hex,
                dataset=dataset,
                episode=e,
                base_revision=0,
                user="bench",
                annotation=ann,
            )
            store.apply_correction(c)


def timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def tree_mb(root: Path, sub: str = "") -> float:
    return sum(p.stat().st_size for p in (root / sub).rglob("*") if p.is_file()) / 2**20


def measure(root: Path, store: Path, work: Path, repeat: int) -> dict[str, float]:
    """Median seconds of copytree and of each export, run alternately."""
    times: dict[str, list[float]] = {"copytree": [], "lerobot-language": [], "lerobot-subtasks": []}
    for i in range(repeat):
        for name in times:
            out = work / f"out-{name}-{i}"
            if name == "copytree":
                times[name].append(timed(lambda out=out: shutil.copytree(root, out)))
            else:
                times[name].append(timed(lambda out=out, name=name: export(root, store, name, out)))
            shutil.rmtree(out)
    return {k: statistics.median(v) for k, v in times.items()}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--episodes", type=int, default=1000)
    ap.add_argument("--frames", type=int, default=300)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--keep", type=Path, default=None, help="build here and keep it for the next run")
    args = ap.parse_args()

    work = args.keep or Path(tempfile.mkdtemp(prefix="bench-export-"))
    variants = {"small clip": small_clip_videos, "demo bitrate": demo_bitrate_videos}
    rows = []
    try:
        for label, videos in variants.items():
            root = work / label.replace(" ", "-") / "dataset"
            if not (root / "meta" / "info.json").is_file():
                shutil.rmtree(root.parent, ignore_errors=True)
                build_dataset(root, args.episodes, args.frames, videos)
            store = root.parent / "annotations-every-kind.db"
            if not store.exists():
                build_store(store, root.name, args.episodes, args.frames, CAMERAS)
            med = measure(root, store, root.parent, args.repeat)
            rows.append((label, tree_mb(root, "data") + tree_mb(root, "meta"), tree_mb(root, "videos"), med))
    finally:
        if args.keep is None:
            shutil.rmtree(work, ignore_errors=True)
    print(
        f"\nexport of {args.episodes} episodes x {args.frames} frames ({args.episodes * args.frames:,} frames), "
        f"median of {args.repeat}; peer: shutil.copytree of the same dataset\n"
    )
    print(
        f"| {'videos':<12} | {'parquet+meta':>12} | {'videos':>9} | {'copytree':>8} | "
        f"{'lerobot-language':>22} | {'lerobot-subtasks':>22} |"
    )
    print(f"|{'-' * 14}|{'-' * 14}|{'-' * 11}|{'-' * 10}|{'-' * 24}|{'-' * 24}|")
    for label, data_mb, video_mb, med in rows:
        copy = med["copytree"]
        cells = [f"{med[f]:6.2f} s ({med[f] / copy:5.2f}x)" for f in ("lerobot-language", "lerobot-subtasks")]
        print(
            f"| {label:<12} | {data_mb:>9.0f} MB | {video_mb:>6.0f} MB | {copy:>6.2f} s | "
            f"{cells[0]:>22} | {cells[1]:>22} |"
        )
    print("\ntarget: <= 2x the copy time")
    return 0


if __name__ == "__main__":
    sys.exit(main())
