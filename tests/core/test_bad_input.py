"""Damaged datasets give a DatasetError naming the file and the problem, never a crash inside PyAV or pyarrow."""

from __future__ import annotations

import json

import pyarrow.parquet as pq
import pytest

from core.dataset import Dataset
from core.errors import DatasetError, VideoError
from core.video import FrameReader


def _video(root, cam="observation.images.front"):
    return root / "videos" / cam / "chunk-000" / "file-000.mp4"


def test_truncated_mp4(small_copy, small_spec):
    path = _video(small_copy)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) * 2 // 5])
    ds = Dataset(small_copy)  # metadata is intact
    last = max(ds.episodes)
    ref = ds.video(last, "observation.images.front")
    reader = FrameReader()
    with pytest.raises(VideoError, match=str(path.name)) as err:
        reader.frame(ref, ref.length - 1)
    assert "truncated" in str(err.value) or "decoding failed" in str(err.value)
    with pytest.raises(VideoError, match=str(path.name)):
        list(reader.iter_frames(ref))
    # The part before the damage still decodes.
    assert reader.frame(ds.video(0, "observation.images.front"), 0).shape == (
        small_spec.height,
        small_spec.width,
        3,
    )


def test_mp4_cut_to_a_stub(small_copy):
    path = _video(small_copy)
    path.write_bytes(path.read_bytes()[:100])
    ds = Dataset(small_copy)
    with pytest.raises(VideoError, match=r"file-000\.mp4: (cannot open video|has no video stream)"):
        FrameReader().frame(ds.video(0, "observation.images.front"), 0)


def test_missing_video_file(small_copy):
    _video(small_copy, "observation.images.top").unlink()
    ds = Dataset(small_copy)
    with pytest.raises(
        DatasetError,
        match=r"file-000\.mp4: video file for episode 0, camera 'observation.images.top' is missing",
    ):
        ds.video(0, "observation.images.top")
    with pytest.raises(DatasetError, match="no camera 'side'"):
        ds.video(0, "side")


def test_episode_metadata_missing_a_column(small_copy):
    path = next((small_copy / "meta" / "episodes").rglob("*.parquet"))
    table = pq.read_table(path)
    pq.write_table(table.drop_columns(["length"]), path)
    with pytest.raises(DatasetError, match=rf"{path.name}: missing column\(s\) 'length'"):
        Dataset(small_copy)


def test_data_file_missing_a_column(small_copy):
    path = next((small_copy / "data").rglob("*.parquet"))
    pq.write_table(pq.read_table(path).drop_columns(["observation.state"]), path)
    ds = Dataset(small_copy)
    with pytest.raises(DatasetError, match=rf"{path.name}: missing column\(s\) 'observation.state'"):
        ds.signals(0)


def test_corrupt_parquet(small_copy):
    path = next((small_copy / "data").rglob("*.parquet"))
    path.write_bytes(b"PAR1 this is not parquet")
    with pytest.raises(DatasetError, match=rf"{path.name}: not a readable parquet file"):
        Dataset(small_copy).signals(0)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda info: info.update(codebase_version="v1.6"), "codebase_version 'v1.6' is not supported"),
        (lambda info: info.update(codebase_version="v4.0"), "codebase_version 'v4.0' is not supported"),
        (lambda info: info.pop("fps"), "missing field 'fps'"),
        (lambda info: info.update(fps="fast"), "field 'fps' = 'fast' is not a number"),
        (lambda info: info.pop("video_path"), "missing field 'video_path'"),
    ],
)
def test_bad_info_json(small_copy, change, message):
    path = small_copy / "meta" / "info.json"
    info = json.loads(path.read_text())
    change(info)
    path.write_text(json.dumps(info))
    with pytest.raises(DatasetError, match=message) as err:
        Dataset(small_copy)
    assert "info.json" in str(err.value)


def test_info_json_not_json(small_copy):
    (small_copy / "meta" / "info.json").write_text("{ nope")
    with pytest.raises(DatasetError, match=r"info\.json: not valid JSON"):
        Dataset(small_copy)


def test_not_a_dataset(tmp_path):
    with pytest.raises(DatasetError, match="not a LeRobot dataset"):
        Dataset(tmp_path)
    with pytest.raises(DatasetError, match="no such dataset directory"):
        Dataset(tmp_path / "nope")


def test_unknown_episode_and_frame(small_root):
    ds = Dataset(small_root)
    with pytest.raises(DatasetError, match="episode 99 does not exist"):
        ds.episode(99)
    ref = ds.video(0, ds.cameras[0])
    with pytest.raises(VideoError, match="outside episode 0"):
        FrameReader().frame(ref, ref.length)
