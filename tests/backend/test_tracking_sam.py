"""The SAM2 / SAM3 trackers on tiny random-weight checkpoints, through the real transformers APIs.

The checkpoints load with `Sam2VideoModel` / `Sam3VideoModel.from_pretrained(path)` and their
processors, like real ones; the masks are noise, so the tests check what does not depend on
the weights: requests are built and accepted, masks become boxes, the streaming loop runs in
both directions with the session pruned as it goes, a lost object stops the run with a reason,
and missing or broken weights are clear errors. Real weights are checked on a GPU (`gpu` mark).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")

from backend.tracking import TrackingError, make_track_engine
from backend.tracking.job import TrackJob, run_track
from backend.tracking.propagate import EpisodeFrames
from backend.tracking.sam import KEEP_FRAMES, mask_to_box
from core.dataset import Dataset
from tests.fixtures.paths import CACHE
from tests.fixtures.tiny_sam import cached_tiny_sam

CAMERA = "observation.images.front"


@pytest.fixture(scope="module")
def tiny_sam2() -> Path:
    return cached_tiny_sam(CACHE, "sam2")


@pytest.fixture(scope="module")
def tiny_sam3() -> Path:
    return cached_tiny_sam(CACHE, "sam3")


def test_mask_to_box():
    mask = np.zeros((10, 20), bool)
    assert mask_to_box(mask) is None
    mask[2:5, 7:12] = True
    assert mask_to_box(mask) == (7.0, 2.0, 12.0, 5.0)


def test_engines_without_weights_are_a_clear_error(tmp_path):
    for name in ("sam2", "sam3"):
        with pytest.raises(TrackingError, match=f"the {name} tracker needs weights: give --model"):
            make_track_engine(name)
    with pytest.raises(TrackingError, match=r"cannot load weights from .*nowhere"):
        make_track_engine("sam2", model=str(tmp_path / "nowhere"))


def test_sam2_tracks_a_box_both_ways_and_prunes_its_session(tiny_sam2, demo_root):
    # A mask threshold below every logit makes the random model's mask the whole frame, so the
    # run goes the whole way and the loop, the pruning and the keyframes can be checked.
    engine = make_track_engine("sam2", model=str(tiny_sam2), min_score=0.0, mask_threshold=-1e9)
    assert engine.source.startswith("tracker:sam2@tiny-sam2-")
    ds = Dataset(demo_root)
    source = EpisodeFrames(ds, 0, CAMERA)
    n = KEEP_FRAMES + 8
    job = TrackJob(
        kind="box", camera=CAMERA, fps=ds.fps, anchors=[(n / ds.fps, (0.3, 0.3, 0.6, 0.7))], label="cube"
    )
    # Only the gaps just around the keyframe: a short stretch forwards and backwards.
    sessions = []
    orig = engine._make

    def spy(kind, target):
        tracker = orig(kind, target)
        sessions.append(tracker)
        return tracker

    engine._make = spy  # type: ignore[method-assign]
    out = run_track(job, engine, _Window(source, 0, 2 * n + 1))
    assert out.status == "ok", out.notes + out.errors
    assert out.frames == 2 * n
    assert {b.source for b in out.boxes} == {engine.source}
    assert all(b.xyxy == (0.0, 0.0, 1.0, 1.0) for b in out.boxes)  # the whole frame, normalized
    forward = sessions[0]
    assert KEEP_FRAMES < forward.peak_frames <= KEEP_FRAMES + 3  # the keyframe, the window, the new one
    engine.close()


def test_sam2_reports_a_lost_object_and_keeps_the_track_before_it(tiny_sam2, demo_root):
    engine = make_track_engine("sam2", model=str(tiny_sam2), min_score=0.999)
    ds = Dataset(demo_root)
    job = TrackJob(kind="point", camera=CAMERA, fps=ds.fps, anchors=[(0.0, (0.5, 0.4))])
    out = run_track(job, engine, _Window(EpisodeFrames(ds, 0, CAMERA), 0, 10))
    assert out.status == "partial"
    assert out.lost and out.notes[0].startswith("frame 1: sam2 lost the object")


def test_sam3_finds_by_name_and_follows_or_says_it_lost(tiny_sam3, demo_root):
    engine = make_track_engine("sam3", model=str(tiny_sam3), min_score=0.0)
    ds = Dataset(demo_root)
    source = _Window(EpisodeFrames(ds, 0, CAMERA), 0, 4)
    found = engine.detect(source.frame(0), "red cube")
    assert found and all(len(box) == 4 and 0.0 <= score <= 1.0 for box, score in found)
    job = TrackJob(
        kind="box", camera=CAMERA, fps=ds.fps, anchors=[(0.0, (0.1, 0.1, 0.9, 0.9))], label="red cube"
    )
    out = run_track(job, engine, source)
    assert out.status in ("ok", "partial")
    assert out.frames + len(out.lost) >= 1
    if out.lost:
        assert "sam3 lost the object" in out.notes[0]


class _Window(EpisodeFrames):
    """The first `stop` frames of an episode's camera (keeps the tests short)."""

    def __init__(self, source: EpisodeFrames, start: int, stop: int) -> None:
        self.__dict__.update(source.__dict__)
        self.length = min(stop, source.length)


@pytest.mark.gpu
@pytest.mark.skipif(
    not os.environ.get("ROBO_SAM2_MODEL"), reason="set ROBO_SAM2_MODEL to a SAM2 video checkpoint"
)
def test_sam2_real_weights_follow_the_demo_object(demo_root):
    import torch

    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA device")
    from backend.evaluate_tracking import evaluate_track

    engine = make_track_engine("sam2", model=os.environ["ROBO_SAM2_MODEL"])
    result = evaluate_track(demo_root, engine, "boxes", 1, episodes=[0])
    assert result["mean"]["iou"] > 2 * result["mean"]["iou_hold"]
