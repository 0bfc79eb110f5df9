"""Write a LeRobot v2.1 copy of a v3 dataset, following lerobot's documented v2.1 layout.

v2.1: `meta/info.json` (codebase_version "v2.1", per-episode path templates with
`episode_chunk`), `meta/episodes.jsonl`, `meta/tasks.jsonl`,
`meta/episodes_stats.jsonl`, one parquet per episode under
`data/chunk-XXX/episode_XXXXXX.parquet` and one mp4 per episode and camera under
`videos/chunk-XXX/<video_key>/episode_XXXXXX.mp4`. Videos are re-encoded to
H.264 with B-frames and a long GOP, so the v2.1 tests also exercise H.264 seeking.
"""

from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from core.dataset import Dataset
from core.video import FrameReader

V21_DATA_PATH = "data/chunk-{episode_chunk:03d}/episode_{episode_index:06d}.parquet"
V21_VIDEO_PATH = "videos/chunk-{episode_chunk:03d}/{video_key}/episode_{episode_index:06d}.mp4"


def encode_h264(frames: list[np.ndarray], path: Path, fps: int, gop: int = 30) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=fps, options={"g": str(gop), "crf": "18", "bf": "2"})
        stream.width, stream.height = frames[0].shape[1], frames[0].shape[0]
        stream.pix_fmt = "yuv420p"
        stream.time_base = Fraction(1, fps)
        for i, img in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(img, format="rgb24")
            frame.pts = i
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)


def write_v21_copy(src: Path, dst: Path, episodes: list[int] | None = None) -> Path:
    ds = Dataset(src)
    eps = episodes if episodes is not None else list(ds.episodes)
    reader = FrameReader()
    fps = int(ds.fps)
    (dst / "meta").mkdir(parents=True)
    tasks = sorted({t for e in eps for t in ds.episode(e).tasks})
    task_index = {t: i for i, t in enumerate(tasks)}
    full = pq.read_table(sorted((src / "data").rglob("*.parquet")))
    features = json.loads(json.dumps(ds.features))
    for cam in ds.cameras:
        features[cam]["info"]["video.codec"] = "h264"
    info = {
        "codebase_version": "v2.1",
        "robot_type": ds.robot_type,
        "total_episodes": len(eps),
        "total_frames": sum(ds.episode(e).length for e in eps),
        "total_tasks": len(tasks),
        "total_videos": len(eps) * len(ds.cameras),
        "total_chunks": 1,
        "chunks_size": 1000,
        "fps": fps,
        "splits": {"train": f"0:{len(eps)}"},
        "data_path": V21_DATA_PATH,
        "video_path": V21_VIDEO_PATH,
        "features": features,
    }
    (dst / "meta" / "info.json").write_text(json.dumps(info, indent=2))
    with (dst / "meta" / "tasks.jsonl").open("w") as fh:
        for t, i in task_index.items():
            fh.write(json.dumps({"task_index": i, "task": t}) + "\n")
    with (
        (dst / "meta" / "episodes.jsonl").open("w") as eh,
        (dst / "meta" / "episodes_stats.jsonl").open("w") as sh,
    ):
        for new_idx, e in enumerate(eps):
            info_e = ds.episode(e)
            eh.write(
                json.dumps({"episode_index": new_idx, "tasks": list(info_e.tasks), "length": info_e.length})
                + "\n"
            )
            sh.write(json.dumps({"episode_index": new_idx, "stats": {}}) + "\n")
            rows = full.filter(pa.compute.equal(full.column("episode_index"), e))
            rows = rows.set_column(
                rows.schema.get_field_index("episode_index"),
                "episode_index",
                pa.array(np.full(rows.num_rows, new_idx, dtype=np.int64)),
            )
            path = dst / V21_DATA_PATH.format(episode_chunk=0, episode_index=new_idx)
            path.parent.mkdir(parents=True, exist_ok=True)
            pq.write_table(rows, path)
            for cam in ds.cameras:
                frames = [img for _, img in reader.iter_frames(ds.video(e, cam))]
                encode_h264(
                    frames,
                    dst / V21_VIDEO_PATH.format(episode_chunk=0, video_key=cam, episode_index=new_idx),
                    fps,
                )
    return dst
