"""Tracking as a user reaches it: Track over a real socket, `robo-backend track` and `evaluate --track`."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

pytest.importorskip("cv2", reason="the CPU tracker needs the 'track' extra (OpenCV)")

from client import BackendClient
from core.annotations import Box, EpisodeAnnotation, Trajectory
from core.dataset import Dataset
from core.protocol import (
    Accepted,
    Cancelled,
    CancelTrack,
    Correction,
    Error,
    Progress,
    Track,
    TrackAnchor,
    TrackResult,
)
from core.store import Store
from core.tracks import box_anchors

EXE = Path(sys.executable).with_name("robo-backend")
FRONT = "observation.images.front"


def _truth(root: Path) -> dict:
    return {r["episode_index"]: r for r in json.loads((root / "ground_truth.json").read_text())["episodes"]}


def _collect(client: BackendClient, msg_id: str, timeout: float = 120) -> list:
    """Every reply to one Track until its TrackResult (or an Error)."""
    replies = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        reply = client.recv(msg_id, timeout=deadline - time.monotonic())
        replies.append(reply)
        if isinstance(reply, TrackResult | Error):
            return replies
    raise AssertionError(f"no TrackResult: {replies}")


def _box_track(root: Path, episode: int = 0, **kw) -> Track:
    box = _truth(root)[episode]["boxes"][FRONT][0]
    return Track(
        dataset="demo",
        episode=episode,
        camera=FRONT,
        target="box",
        anchors=[TrackAnchor(t=0.0, value=list(box))],
        label="cube",
        **kw,
    )


# ---------------------------------------------------------------- the server


def test_track_request_gets_progress_and_a_sparse_track(client, served_root):
    req = _box_track(served_root / "demo")
    replies = _collect(client, client.send(req))
    assert (
        isinstance(replies[0], Accepted)
        and replies[0].total == Dataset(served_root / "demo").episode(0).length - 1
    )
    assert any(isinstance(r, Progress) for r in replies)
    result = replies[-1]
    assert isinstance(result, TrackResult) and result.status == "ok", result
    assert result.engine == "cpu@4" and result.frames == replies[0].total
    duration = Dataset(served_root / "demo").episode(0).duration
    assert result.spans == [(0.0, pytest.approx(duration + 1.0))]  # everything after the keyframe
    assert 2 < len(result.boxes) < 100
    assert all(b.source == "tracker:cpu@4" and b.label == "cube" and b.camera == FRONT for b in result.boxes)
    # the server keeps answering while (and after) it tracks
    assert client.ping().busy == 0


def test_a_track_can_be_cancelled_and_returns_what_it_had(client, served_root):
    req = _box_track(served_root / "demo", episode=2)
    msg_id = client.send(req)
    first = client.recv(msg_id, timeout=30)
    assert isinstance(first, Accepted)
    while True:  # wait until it has started, then stop it
        reply = client.recv(msg_id, timeout=60)
        if isinstance(reply, Progress) and reply.done >= 5:
            break
        assert not isinstance(reply, TrackResult), "finished before it could be cancelled"
    cancelled = client.request(CancelTrack(target=msg_id))
    assert isinstance(cancelled, Cancelled) and cancelled.found
    result = next(r for r in _collect(client, msg_id) if isinstance(r, TrackResult))
    assert result.status == "cancelled"
    assert 0 < result.frames < first.total
    assert client.request(CancelTrack(target=msg_id)).found is False  # nothing left to cancel


@pytest.mark.parametrize(
    "change, code, words",
    [
        ({"camera": "observation.images.wrist"}, "not_found", "has no camera 'observation.images.wrist'"),
        ({"episode": 99}, "not_found", "has no episode 99"),
        ({"engine": "sam2"}, "engine", "the sam2 tracker has no weights on this server"),
        ({"engine": "csrt"}, "invalid", "known trackers are cpu, sam2, sam3"),
        ({"anchors": []}, "invalid", "at least one keyframe"),
        ({"anchors": [TrackAnchor(t=0.0, value=[0.4, 0.4, 0.4, 0.6])]}, "invalid", "the box has no size"),
        ({"anchors": [TrackAnchor(t=0.0, value=[1.1, 0.4, 1.3, 0.6])]}, "invalid", "outside the frame"),
        ({"label": ""}, "invalid", "needs the object's label"),
    ],
)
def test_bad_track_requests_get_a_clear_error(client, served_root, change, code, words):
    req = _box_track(served_root / "demo")
    for k, v in change.items():
        setattr(req, k, v)
    reply = client.recv(client.send(req), timeout=30)
    assert isinstance(reply, Error) and reply.code == code and words in reply.message, reply


# ---------------------------------------------------------------- robo-backend track


def _seed_store(store: Path, root: Path) -> None:
    """Episode 0: a person's box on the first frame and a person's gripper point on frame 30."""
    ds = Dataset(root)
    truth = _truth(root)[0]
    info = ds.episode(0)
    gx, gy = truth["gripper"][FRONT][30]
    ann = EpisodeAnnotation(
        dataset="demo",
        episode=0,
        duration=info.duration,
        fps=ds.fps,
        boxes=[
            Box(
                t=0.0,
                camera=FRONT,
                label="cube",
                kind="current",
                xyxy=tuple(truth["boxes"][FRONT][0]),
                source="human:bob",
            )
        ],
        trajectories=[Trajectory(camera=FRONT, points=[(1.0, gx, gy)], anchors=[1.0], source="human:bob")],
    )
    with Store(store) as s, s.transaction():
        s.apply_correction(
            Correction(
                uuid=uuid.uuid4().hex, dataset="demo", episode=0, base_revision=0, user="bob", annotation=ann
            )
        )


def _run(*args) -> subprocess.CompletedProcess:
    return subprocess.run([EXE, *map(str, args)], capture_output=True, text=True, timeout=600)


def test_robo_backend_track_fills_the_gaps_once_and_keeps_what_a_person_placed(demo_copy, tmp_path):
    root = demo_copy  # a directory named "demo": the dataset id
    store = tmp_path / "a.db"
    _seed_store(store, root)
    first = _run("track", root, "--store", store, "--user", "carol")
    assert first.returncode == 0, first.stdout + first.stderr
    assert "tracked 2 track(s)" in first.stdout and "in 1 episode(s)" in first.stdout
    with Store(store, readonly=True) as s:
        head = s.head("demo", 0)
        history = s.history("demo", 0)
    assert head.revision == 2 and history[-1].author == "human:carol"
    anchors = box_anchors(head.boxes, (FRONT, "cube", "current"))
    assert [b.t for b in anchors] == [0.0] and anchors[0].source == "human:bob"
    tracked = [b for b in head.boxes if b.source.startswith("tracker:")]
    assert len(tracked) > 2 and max(b.t for b in tracked) > head.duration - 0.2
    traj = head.trajectories[0]
    assert traj.anchors == [1.0] and (1.0, *_truth(root)[0]["gripper"][FRONT][30]) in traj.points
    assert (
        min(p[0] for p in traj.points) < 0.1 and max(p[0] for p in traj.points) > head.duration - 0.2
    )  # both ways

    again = _run("track", root, "--store", store)
    assert again.returncode == 0 and "tracked 0 track(s)" in again.stdout, again.stdout
    with Store(store, readonly=True) as s:
        assert s.head("demo", 0).revision == 2  # resumable: nothing tracked twice


def test_robo_backend_track_reports_a_camera_the_dataset_lacks(demo_copy, tmp_path):
    root = demo_copy
    store = tmp_path / "a.db"
    ds = Dataset(root)
    ann = EpisodeAnnotation(
        dataset="demo",
        episode=1,
        duration=ds.episode(1).duration,
        fps=ds.fps,
        boxes=[
            Box(
                t=0.0,
                camera="observation.images.wrist",
                label="cube",
                kind="current",
                xyxy=(0.1, 0.1, 0.3, 0.3),
                source="human:bob",
            )
        ],
    )
    with Store(store) as s, s.transaction():
        s.apply_correction(
            Correction(
                uuid=uuid.uuid4().hex, dataset="demo", episode=1, base_revision=0, user="bob", annotation=ann
            )
        )
    out = _run("track", root, "--store", store)
    assert out.returncode == 1
    assert "episode 1 camera 'observation.images.wrist'" in out.stdout and "has no camera" in out.stdout
    with Store(store, readonly=True) as s:
        assert s.head("demo", 1).boxes == ann.boxes  # nothing lost


# ---------------------------------------------------------------- robo-backend evaluate --track


@pytest.mark.parametrize("what", ["boxes", "points"])
def test_evaluate_track_writes_the_figures(demo_root, tmp_path, what):
    out = tmp_path / "r.json"
    proc = _run("evaluate", demo_root, "--track", what, "--keyframes", "2", "--episodes", "0", "--json", out)
    assert proc.returncode == 0, proc.stderr
    assert "frames/s per track" in proc.stdout
    result = json.loads(out.read_text())
    assert result["keyframes"] == 2 and result["engine"] == "cpu@4"
    mean = result["mean"]
    assert mean["frames_per_s"] > 0
    if what == "boxes":
        assert set(mean) >= {"iou", "iou_hold", "iou_interp"}
        # the 2 keyframes are the first and last frame, where the object stands still: holding them is
        # a strong peer there; straight lines between them are not (the object is carried in between)
        assert mean["iou"] > mean["iou_interp"] + 0.2
    else:
        assert set(mean) >= {"px_median", "px_mean", "px_median_hold", "px_median_interp"}
        assert mean["px_median"] < 0.5 * min(mean["px_median_hold"], mean["px_median_interp"])
    assert len(result["episodes"]) == 2  # one row per camera


def test_evaluate_track_skips_frames_the_truth_marks_invisible(demo_copy, tmp_path):
    gt_path = demo_copy / "ground_truth.json"
    gt = json.loads(gt_path.read_text())
    rec = gt["episodes"][0]
    for cam in rec["boxes"]:
        rec["boxes"][cam][:5] = [None] * 5  # not visible at first: the keyframe moves to frame 5
        rec["boxes"][cam][100:120] = [None] * 20
    gt_path.write_text(json.dumps(gt))
    out = tmp_path / "r.json"
    proc = _run("evaluate", demo_copy, "--track", "boxes", "--episodes", "0", "--json", out)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(out.read_text())["mean"]["iou"] > 0.4
