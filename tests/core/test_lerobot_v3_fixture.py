"""Our small-dataset writer (tests/fixtures/lerobot_v3.py) lays files out as lerobot's writer does.

The core tests that do not need lerobot read a dataset written by our own writer; this
checks, where lerobot is installed, that the writer is faithful: the same files, the same
info.json fields, the same parquet schemas and the same video encoding as the demo that
lerobot's own writer made, and that lerobot's `LeRobotDataset` loads it and returns the
frames and signals our reader returns.
"""

from __future__ import annotations

import json
import random
import struct
from pathlib import Path

import av
import numpy as np
import pyarrow.parquet as pq
import pytest

from core.dataset import Dataset
from core.video import FrameReader

pytest.importorskip("lerobot")

PARQUETS = (
    "data/chunk-000/file-000.parquet",
    "meta/episodes/chunk-000/file-000.parquet",
    "meta/tasks.parquet",
)


def _files(root: Path) -> list[str]:
    return sorted(
        str(p.relative_to(root)) for p in root.rglob("*") if p.is_file() and p.name != "ground_truth.json"
    )


def _atoms(path: Path) -> list[str]:
    """Top-level MP4 boxes in file order."""
    out, data, pos = [], path.read_bytes(), 0
    while pos + 8 <= len(data):
        size, kind = struct.unpack(">I4s", data[pos : pos + 8])
        if size == 1:
            size = struct.unpack(">Q", data[pos + 8 : pos + 16])[0]
        out.append(kind.decode())
        pos += size
    return [a for a in out if a != "free"]


def _video_layout(path: Path) -> dict:
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        keys = [p.is_keyframe for p in c.demux(s) if p.pts is not None][:8]
        return {
            "codec": s.codec_context.name,
            "pix_fmt": s.codec_context.pix_fmt,
            "time_base": s.time_base,
            "rate": s.average_rate,
            "keyframes": keys,
            "atoms": _atoms(path),
        }


def test_files_and_info_json_are_laid_out_like_lerobots(small_root, demo_root):
    assert _files(small_root) == _files(demo_root)
    ours, theirs = (json.loads((r / "meta" / "info.json").read_text()) for r in (small_root, demo_root))
    assert sorted(ours) == sorted(theirs)
    for key in ("codebase_version", "chunks_size", "data_path", "video_path"):
        assert ours[key] == theirs[key], key
    assert list(ours["features"]) == list(theirs["features"])
    for name, spec in theirs["features"].items():
        mine = ours["features"][name]
        assert sorted(mine) == sorted(spec) and mine["dtype"] == spec["dtype"], name
        assert mine["names"] == spec["names"], name
        if spec["dtype"] == "video":
            assert sorted(mine["info"]) == sorted(spec["info"])
            same = ("video.codec", "video.pix_fmt", "video.g", "video.crf", "video.preset", "video.channels")
            assert {k: mine["info"][k] for k in same} == {k: spec["info"][k] for k in same}
    ours_stats, their_stats = (
        json.loads((r / "meta" / "stats.json").read_text()) for r in (small_root, demo_root)
    )
    assert sorted(ours_stats) == sorted(their_stats)
    assert {k: sorted(v) for k, v in ours_stats.items()} == {k: sorted(v) for k, v in their_stats.items()}


@pytest.mark.parametrize("rel", PARQUETS)
def test_parquet_schemas_are_lerobots(small_root, demo_root, rel):
    ours, theirs = pq.read_schema(small_root / rel), pq.read_schema(demo_root / rel)
    assert ours.remove_metadata().equals(theirs.remove_metadata()), f"{rel}\n{ours}\n---\n{theirs}"
    assert sorted(ours.metadata or {}) == sorted(theirs.metadata or {})
    if b"huggingface" in (theirs.metadata or {}):  # the features HF datasets decodes the rows with
        feats = [json.loads(s.metadata[b"huggingface"])["info"]["features"] for s in (ours, theirs)]
        assert feats[0] == feats[1]
    if b"pandas" in (theirs.metadata or {}):
        index = [json.loads(s.metadata[b"pandas"])["index_columns"] for s in (ours, theirs)]
        assert index[0] == index[1]


def test_videos_are_encoded_like_lerobots(small_root, demo_root):
    for cam in Dataset(demo_root).cameras:
        rel = f"videos/{cam}/chunk-000/file-000.mp4"
        assert _video_layout(small_root / rel) == _video_layout(demo_root / rel)


def test_lerobot_loads_it_and_reads_what_we_read(small_root, small_spec):
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    lr = LeRobotDataset("robo-annotate/small", root=small_root)
    ours = Dataset(small_root)
    assert (lr.meta.total_episodes, lr.meta.total_frames, lr.meta.fps) == (
        len(ours),
        ours.total_frames,
        ours.fps,
    )
    assert lr.meta.video_keys == ours.cameras == list(small_spec.cameras)
    reader = FrameReader()
    rng = random.Random(0)
    for ep in ours:
        row = lr.meta.episodes[ep.index]
        assert (row["length"], list(row["tasks"])) == (ep.length, [small_spec.task(ep.index)])
        start = int(row["dataset_from_index"])
        signals = ours.signals(ep.index)
        for i in {0, ep.length - 1, *rng.sample(range(ep.length), 3)}:
            item = lr[start + i]
            assert item["task"] == small_spec.task(ep.index)
            np.testing.assert_array_equal(
                item["observation.state"].numpy(), signals.channels["observation.state"][i]
            )
            for cam in ours.cameras:
                theirs = (item[cam].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
                mine = reader.frame(ours.video(ep.index, cam), i)
                np.testing.assert_array_equal(mine, theirs, err_msg=f"episode {ep.index} {cam} frame {i}")
