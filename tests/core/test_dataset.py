"""core.dataset agrees with lerobot's own reader on the demo dataset, and v2.1 opens too."""

from __future__ import annotations

import numpy as np
import pytest

from core.dataset import Dataset
from tests.fixtures.v21 import write_v21_copy


@pytest.fixture(scope="module")
def lerobot_meta(demo_root):
    pytest.importorskip("lerobot")
    from lerobot.datasets.dataset_metadata import LeRobotDatasetMetadata

    return LeRobotDatasetMetadata("robo-annotate/demo", root=demo_root)


@pytest.fixture(scope="module")
def lerobot_ds(demo_root):
    pytest.importorskip("lerobot")
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    return LeRobotDataset("robo-annotate/demo", root=demo_root)


def test_metadata_matches_lerobot(demo_root, lerobot_meta):
    ours = Dataset(demo_root)
    assert ours.version == "v3.0"
    assert len(ours) == lerobot_meta.total_episodes
    assert ours.total_frames == lerobot_meta.total_frames
    assert ours.fps == lerobot_meta.fps
    assert ours.cameras == lerobot_meta.video_keys
    assert set(ours.signal_features) == {"observation.state", "action"}
    for ep in ours:
        row = lerobot_meta.episodes[ep.index]
        assert ep.length == row["length"]
        assert list(ep.tasks) == list(row["tasks"])
        assert ours.data_file(ep.index) == demo_root / lerobot_meta.get_data_file_path(ep.index)
        for cam in ours.cameras:
            ref = ours.video(ep.index, cam)
            assert ref.path == demo_root / lerobot_meta.get_video_file_path(ep.index, cam)
            assert ref.from_timestamp == pytest.approx(row[f"videos/{cam}/from_timestamp"])
            assert ref.to_timestamp == pytest.approx(row[f"videos/{cam}/to_timestamp"])
        assert ours.camera_shape(ours.cameras[0]) == (240, 320)


def test_signals_match_lerobot(demo_root, lerobot_ds, lerobot_meta):
    ours = Dataset(demo_root)
    hf = lerobot_ds.hf_dataset.with_format("numpy")
    for ep in ours:
        row = lerobot_meta.episodes[ep.index]
        sl = hf[row["dataset_from_index"] : row["dataset_to_index"]]
        sig = ours.signals(ep.index)
        assert len(sig) == ep.length
        np.testing.assert_array_equal(sig.frame_index, sl["frame_index"])
        np.testing.assert_allclose(sig.timestamps, sl["timestamp"], atol=1e-6)
        np.testing.assert_array_equal(sig.channels["observation.state"], np.stack(sl["observation.state"]))
        np.testing.assert_array_equal(sig.channels["action"], np.stack(sl["action"]))
        assert sig.names["observation.state"][-1] == "gripper"
        assert sig.find("grip") == [("observation.state", 6), ("action", 6)]


def test_open_reads_metadata_only(small_root, monkeypatch):
    import pyarrow.parquet as pq

    opened = []
    real = pq.read_table
    monkeypatch.setattr(
        pq, "read_table", lambda path, *a, **k: opened.append(str(path)) or real(path, *a, **k)
    )
    Dataset(small_root)
    assert opened and all("/meta/" in p for p in opened)


def test_v21_dataset_opens_and_matches(small_root, tmp_path):
    v21 = write_v21_copy(small_root, tmp_path / "v21", episodes=[1, 3])
    old, new = Dataset(small_root), Dataset(v21)
    assert new.version == "v2.1"
    assert list(new.episodes) == [0, 1]
    assert new.cameras == old.cameras
    for new_idx, old_idx in enumerate([1, 3]):
        assert new.episode(new_idx).length == old.episode(old_idx).length
        assert new.episode(new_idx).tasks == old.episode(old_idx).tasks
        a, b = new.signals(new_idx), old.signals(old_idx)
        np.testing.assert_array_equal(a.channels["observation.state"], b.channels["observation.state"])
        ref = new.video(new_idx, new.cameras[0])
        assert ref.from_timestamp == 0.0 and ref.path.name == f"episode_{new_idx:06d}.mp4"


def test_select_names_the_episodes_a_dataset_lacks(small_root):
    ds = Dataset(small_root)
    assert ds.select(None) == list(ds.episodes)
    assert ds.select([1, 0]) == [1, 0]
    with pytest.raises(ValueError, match=r"episodes \[99, 100\]: not in .*episodes\)"):
        ds.select([0, 99, 100])
