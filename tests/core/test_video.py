"""core.video returns exactly the frames lerobot returns, for AV1 (v3) and H.264 (v2.1)."""

from __future__ import annotations

import random
from concurrent.futures import ThreadPoolExecutor

import av
import numpy as np
import pytest

from core.dataset import Dataset
from core.video import FrameReader
from tests.fixtures.v21 import write_v21_copy


def _lerobot_uint8(item, cam) -> np.ndarray:
    return (item[cam].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)


def test_frames_match_lerobot(demo_root):
    pytest.importorskip("lerobot")
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    lr = LeRobotDataset("robo-annotate/demo", root=demo_root)
    ours = Dataset(demo_root)
    reader = FrameReader()
    rng = random.Random(0)
    checked = 0
    for ep in ours:
        start = int(lr.meta.episodes[ep.index]["dataset_from_index"])
        picks = {0, 1, ep.length - 2, ep.length - 1, *rng.sample(range(ep.length), 3)}
        for i in sorted(picks, key=lambda _: rng.random()):  # random order: exercises seeking
            item = lr[start + i]
            for cam in ours.cameras:
                mine = reader.frame(ours.video(ep.index, cam), i)
                theirs = _lerobot_uint8(item, cam)
                assert mine.shape == theirs.shape == (240, 320, 3)
                # Bit-identical: neighbouring frames differ by well under one grey
                # level on average, so any tolerance here would let an off-by-one pass.
                np.testing.assert_array_equal(mine, theirs, err_msg=f"episode {ep.index} {cam} frame {i}")
                checked += 1
    assert checked >= 6 * 2 * 5


def test_neighbouring_frames_differ(small_root):
    """Exact comparisons above only mean something if adjacent frames are distinguishable."""
    ours = Dataset(small_root)
    reader = FrameReader()
    ref = ours.video(0, ours.cameras[0])
    g = ours.signals(0).channels["observation.state"]
    moving = int(np.argmax(np.linalg.norm(np.diff(g[:, :3], axis=0), axis=1)))
    a, b = reader.frame(ref, moving), reader.frame(ref, moving + 1)
    assert np.abs(a.astype(int) - b.astype(int)).mean() > 0.05


def test_sequential_equals_random_access(small_root):
    ours = Dataset(small_root)
    ref = ours.video(2, ours.cameras[1])
    seq = dict(FrameReader().iter_frames(ref))
    assert sorted(seq) == list(range(ref.length))
    reader = FrameReader(cache_bytes=1)  # no caching: every call decodes
    for i in random.Random(1).sample(range(ref.length), 25):
        np.testing.assert_array_equal(reader.frame(ref, i), seq[i])
    part = list(FrameReader().iter_frames(ref, start=40, stop=45))
    assert [i for i, _ in part] == [40, 41, 42, 43, 44]
    np.testing.assert_array_equal(part[0][1], seq[40])


def test_threads_get_the_same_frames(small_root):
    ours = Dataset(small_root)
    refs = [ours.video(e.index, c) for e in ours for c in ours.cameras]
    jobs = [(r, random.Random(k).randrange(r.length)) for k, r in enumerate(refs * 6)]
    expected = {(r.path, r.episode, i): FrameReader().frame(r, i) for r, i in jobs}
    shared = FrameReader(cache_bytes=8 * 2**20, max_open=3)  # small caches: eviction under load
    with ThreadPoolExecutor(4) as pool:
        got = list(pool.map(lambda job: shared.frame(*job), jobs))
    for (r, i), arr in zip(jobs, got, strict=True):
        np.testing.assert_array_equal(arr, expected[(r.path, r.episode, i)])


def test_h264_v21_random_access(small_root, tmp_path):
    v21 = Dataset(write_v21_copy(small_root, tmp_path / "v21", episodes=[0]))
    ref = v21.video(0, v21.cameras[0])
    with av.open(str(ref.path)) as c:
        assert c.streams.video[0].codec_context.name == "h264"
        truth = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]
    assert len(truth) == ref.length
    reader = FrameReader()
    order = list(range(ref.length))
    random.Random(2).shuffle(order)
    for i in [*order[:40], 0, ref.length - 1]:
        np.testing.assert_array_equal(reader.frame(ref, i), truth[i])
