"""The demo generator: every variant is a real LeRobot dataset whose ground truth matches its pixels and signals.

Datasets come from the shared fixtures (written once through lerobot's writer);
the statistical checks simulate 20 episodes without rendering, through the same
code the writer runs.
"""

from __future__ import annotations

import itertools
import json
import re
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest

from core.dataset import Dataset
from core.demo.kinematics import PlacedArm
from core.demo.render import SceneRenderer
from core.demo.robots import make_variant
from core.demo.writer import episode_seed, load_ground_truth, simulate_episodes
from core.video import FrameReader

SO100_NAMES = [
    "shoulder_pan.pos",
    "shoulder_lift.pos",
    "elbow_flex.pos",
    "wrist_flex.pos",
    "wrist_roll.pos",
    "gripper.pos",
]
ALOHA_JOINTS = ["waist", "shoulder", "elbow", "forearm_roll", "wrist_angle", "wrist_rotate", "gripper"]
NAMES = {
    "single-ee": ["x", "y", "z", "roll", "pitch", "yaw", "gripper"],
    "single-joint": SO100_NAMES,
    "bimanual": [f"{a}_{j}" for a in ("left", "right") for j in ALOHA_JOINTS],
}
GRIPPER = {"single-ee": "gripper", "single-joint": "gripper.pos", "bimanual": "{arm}_gripper"}
POSE_NAME = re.compile(r"^(x|y|z|roll|pitch|yaw)$|(^|[._])(x|y|z|ee|eef|pose|position)([._]|$)")
OLD_VOCABULARY = {"reach", "grasp", "lift", "move", "place", "release", "retreat", "idle"} - {
    "retreat",
    "idle",
}


@pytest.fixture(scope="module")
def sims() -> dict[str, list]:
    """20 simulated episodes per variant (no video), dataset seed 0."""
    return {r: [e[0] for e in simulate_episodes(r, 20, seed=0)] for r in NAMES}


def _episode(robot: str, truth: dict, index: int):
    """The simulated episode behind a written one (same seeds, same code)."""
    variant = make_variant(robot, truth["seed"])
    rec = truth["episodes"][index]
    assert rec["seed"] == episode_seed(truth["seed"], index)
    return variant, variant.episode(rec["seed"], truth["fps"], index=index)


# ------------------------------------------------------------------ format


def test_loads_with_lerobot_and_with_our_reader(demo_variant_root):
    robot, root = demo_variant_root
    lerobot_ds = pytest.importorskip("lerobot.datasets.lerobot_dataset")
    truth = load_ground_truth(root)
    theirs = lerobot_ds.LeRobotDataset(f"robo-annotate/demo-{robot}", root=root)
    ours = Dataset(root)
    assert truth["version"] == 2 and truth["robot"] == robot
    assert theirs.num_episodes == len(ours) == len(truth["episodes"])
    assert theirs.num_frames == ours.total_frames == sum(e["length"] for e in truth["episodes"])
    assert sorted(ours.cameras) == sorted(truth["cameras"]) == sorted(theirs.meta.video_keys)
    assert theirs.meta.robot_type == truth["robot_type"]
    for name in ("observation.state", "action"):
        assert theirs.features[name]["names"] == NAMES[robot]
        assert theirs.features[name]["shape"] == (len(NAMES[robot]),)
    item = theirs[truth["episodes"][0]["length"] + 3]  # a frame of the second episode
    assert item["task"] == truth["episodes"][1]["task"]
    assert tuple(item[truth["cameras"][0]].shape) == (3, truth["height"], truth["width"])
    for rec in truth["episodes"]:
        ep = ours.episode(rec["episode_index"])
        assert ep.length == rec["length"] and ep.task == rec["task"]
        sig = ours.signals(ep.index)
        assert sig.names["observation.state"] == NAMES[robot]
        assert sig.channels["observation.state"].shape == (rec["length"], len(NAMES[robot]))
    tasks = {r["task"] for r in truth["episodes"]}
    if robot != "single-ee":  # two tasks, each with one task string, both in the first four episodes
        assert len(tasks) == 2


def test_joint_variants_have_no_end_effector_pose(demo_variant_root):
    robot, root = demo_variant_root
    if robot == "single-ee":
        pytest.skip("single-ee records the end-effector pose by design")
    ds = Dataset(root)
    for feature in ("observation.state", "action"):
        names = ds.signals(0).names[feature]
        assert not [n for n in names if POSE_NAME.search(n.lower())], names


def test_joint_state_through_forward_kinematics_is_where_the_video_shows_the_gripper(demo_variant_root):
    """The state is joint angles: the arm's kinematics put the gripper at the ground-truth image point."""
    robot, root = demo_variant_root
    if robot == "single-ee":
        pytest.skip("no joints")
    truth = load_ground_truth(root)
    ds = Dataset(root)
    variant = make_variant(robot, truth["seed"])
    cams = {f"observation.images.{c.name}": c for c in variant.cameras(truth["width"], truth["height"])}
    for rec in truth["episodes"]:
        state = ds.signals(rec["episode_index"]).channels["observation.state"]
        per_arm = (
            {"main": state} if robot == "single-joint" else {"left": state[:, :7], "right": state[:, 7:]}
        )
        for arm, cols in per_arm.items():
            placed = variant.placed if robot == "single-joint" else variant.placed[arm]
            assert isinstance(placed, PlacedArm)
            tip = placed.fk(variant.model.from_recorded(cols[:, :-1].astype(float))).tip
            for key, cam in cams.items():
                want = np.asarray(rec["grippers"][arm][key])
                got = cam.normalized(tip)
                inside = np.all((want > 0.01) & (want < 0.99), axis=1)
                err = np.linalg.norm(got[inside] - want[inside], axis=1)
                # Sensor noise and the follower's lag are all that separate them.
                assert np.median(err) < 0.006 and err.max() < 0.03, (arm, key, np.median(err), err.max())


# ------------------------------------------------------------------ ground truth


def test_ground_truth_covers_every_episode_without_gaps(demo_variant_root):
    robot, root = demo_variant_root
    truth = load_ground_truth(root)
    fps = truth["fps"]
    arms = {"single-ee": {"main"}, "single-joint": {"main"}, "bimanual": {"left", "right", "both"}}[robot]
    for rec in truth["episodes"]:
        segs, n = rec["segments"], rec["length"]
        assert segs[0]["start"] == 0.0 and segs[-1]["end"] == pytest.approx(n / fps)
        for a, b in itertools.pairwise(segs):
            assert a["end"] == b["start"] and a["name"] != b["name"]
        for s in segs:
            assert s["end"] - s["start"] >= 0.2 - 1e-9, s  # nobody annotates a 5-frame phase
            assert s["start"] * fps == pytest.approx(round(s["start"] * fps))
            assert s["name"] in truth["vocabulary"] and s["name"] not in OLD_VOCABULARY
            assert (s["arm"] is None) == (s["name"] == "idle") and (s["arm"] is None or s["arm"] in arms)
        assert segs[0]["name"] == segs[-1]["name"] == "idle"
        for key in truth["cameras"]:
            assert len(rec["boxes"][key]) == len(rec["gripper"][key]) == n
            for per_cam in rec["objects"].values():
                assert len(per_cam[key]) == n
            for per_cam in rec["grippers"].values():
                assert len(per_cam[key]) == n
        assert rec["boxes"] == rec["objects"][rec["object"]["label"]]
        assert rec["gripper"] == rec["grippers"][rec["primary_arm"]]
        assert 0 < rec["grasp_frame"] < rec["release_frame"] <= n
        assert {c["camera"] for c in rec["contacts"]} == set(truth["cameras"])
        assert all(c["arm"] in rec["grippers"] for c in rec["contacts"])


def test_phase_names_follow_the_task(sims):
    """Names carry the task's nouns (reach_cube, move_to_bowl, insert_peg), and failed grasps are relabelled."""
    expected = {
        "single-ee": [
            "idle",
            "reach_{o}",
            "grasp_{o}",
            "lift_{o}",
            "move_to_{t}",
            "place_{p}_{t}",
            "release_{o}",
            "retreat",
            "idle",
        ],
        "pick": [
            "idle",
            "reach_cube",
            "grasp_cube",
            "lift_cube",
            "move_to_bowl",
            "place_in_bowl",
            "release_cube",
            "retreat",
            "idle",
        ],
        "push": ["idle", "reach_block", "push_block", "retreat", "idle"],
        "handover": [
            "idle",
            "reach_cube",
            "grasp_cube",
            "lift_cube",
            "bring_cube_to_middle",
            "hand_over_cube",
            "move_to_bowl",
            "place_in_bowl",
            "release_cube",
            "retreat",
            "idle",
        ],
        "insertion": [
            "idle",
            "reach_socket",
            "grasp_socket",
            "lift_socket",
            "reach_peg",
            "grasp_peg",
            "lift_peg",
            "align_peg",
            "insert_peg",
            "release_peg",
            "place_socket",
            "release_socket",
            "retreat",
            "idle",
        ],
    }
    for robot, eps in sims.items():
        for ep in eps:
            names = [s["name"] for s in ep.segments]
            for fg in ep.events["failed_grasps"]:  # grasp_X that fails, then reach_X again: drop that pair
                noun = fg["object"].split()[-1]
                k = next(
                    i for i in range(len(names) - 1) if names[i : i + 2] == [f"grasp_{noun}", f"reach_{noun}"]
                )
                names = names[:k] + names[k + 2 :]
            if robot == "single-ee":
                o, t = ep.spec.obj.shape, ep.spec.target.shape
                p = "on" if t == "plate" else "in"
                want = [n.format(o=o, t=t, p=p) for n in expected["single-ee"]]
            else:
                want = expected[ep.record["task_kind"]]
            assert names == want, (robot, ep.task)


# ------------------------------------------------------------------ pixels


def _chroma(rgb: np.ndarray) -> np.ndarray:
    rgb = np.asarray(rgb, float)
    return rgb / np.maximum(rgb.sum(axis=-1, keepdims=True), 1.0)


def _colour_fraction(img: np.ndarray, box: list[float], rgb: tuple[int, int, int]) -> float | None:
    h, w = img.shape[:2]
    x1, y1, x2, y2 = int(box[0] * w), int(box[1] * h), int(np.ceil(box[2] * w)), int(np.ceil(box[3] * h))
    if x2 - x1 < 3 or y2 - y1 < 3 or x1 < 0 or y1 < 0 or x2 > w or y2 > h:
        return None
    patch = img[y1:y2, x1:x2]
    bright = patch.sum(axis=-1) > 60
    close = np.linalg.norm(_chroma(patch) - _chroma(rgb), axis=-1) < 0.08
    return float(np.mean(close & bright))


def _occluded(full: np.ndarray, bare: np.ndarray, box: list[float]) -> float:
    """Share of a box the robot covers, from the scene drawn with and without it."""
    h, w = full.shape[:2]
    x1, y1, x2, y2 = int(box[0] * w), int(box[1] * h), int(np.ceil(box[2] * w)), int(np.ceil(box[3] * h))
    diff = np.abs(full[y1:y2, x1:x2].astype(int) - bare[y1:y2, x1:x2].astype(int)).max(axis=-1)
    return float(np.mean(diff > 30)) if diff.size else 1.0


def test_object_colour_fills_its_box_in_the_video(demo_variant_root):
    robot, root = demo_variant_root
    truth = load_ground_truth(root)
    ds = Dataset(root)
    reader = FrameReader()
    checked = 0
    for idx, rec in enumerate(truth["episodes"][:2]):
        variant, sim = _episode(robot, truth, idx)
        cams = {f"observation.images.{c.name}": c for c in variant.cameras(truth["width"], truth["height"])}
        for frame in (0, rec["length"] // 2, rec["length"] - 1):
            for key, cam in cams.items():
                img = reader.frame(ds.video(idx, key), frame)
                draw = SceneRenderer(cam, sim, variant.look, seed=rec["seed"])
                full, bare = draw.frame(frame), draw.frame(frame, robot=False)
                for label, per_cam in rec["objects"].items():
                    box = per_cam[key][frame]
                    if box is None or _occluded(full, bare, box) > 0.1:
                        continue  # the box holds hidden parts too; only check what the camera sees
                    rgb = sim.bodies[label].item.rgb
                    inside = _colour_fraction(img, box, rgb)
                    if inside is None:
                        continue
                    bw = box[2] - box[0]
                    away = [box[0] + 3 * bw, box[1], box[2] + 3 * bw, box[3]]
                    if away[2] > 1:
                        away = [box[0] - 3 * bw, box[1], box[2] - 3 * bw, box[3]]
                    outside = _colour_fraction(img, away, rgb)
                    assert inside > 0.3, (label, key, frame, inside)
                    assert outside is None or outside < 0.1, (label, key, frame, outside)
                    checked += 1
    assert checked >= 6


def test_gripper_point_lies_on_the_drawn_robot(demo_variant_root):
    """Each ground-truth gripper point is on the drawn robot, or between its open jaws.

    "Drawn" is where the video differs from the same scene rendered without the robot.
    """
    robot, root = demo_variant_root
    truth = load_ground_truth(root)
    ds = Dataset(root)
    reader = FrameReader()
    variant, sim = _episode(robot, truth, 0)
    rec = truth["episodes"][0]
    cams = {f"observation.images.{c.name}": c for c in variant.cameras(truth["width"], truth["height"])}
    checked = 0
    for key, cam in cams.items():
        bare = SceneRenderer(cam, sim, variant.look, seed=rec["seed"])
        for frame in np.linspace(0, rec["length"] - 1, 8).astype(int):
            img = reader.frame(ds.video(0, key), int(frame)).astype(int)
            drawn = np.argwhere(
                np.abs(img - bare.frame(int(frame), robot=False).astype(int)).max(axis=-1) > 40
            )
            for name, per_cam in rec["grippers"].items():
                x, y = per_cam[key][frame]
                if not (0.02 < x < 0.98 and 0.02 < y < 0.98):
                    continue
                arm = sim.arms[name]
                tip, jaw = arm.tip[frame], arm.tool[frame][:, 1] * (arm.gap[frame] / 2 + 0.012)
                half_gap = float(np.linalg.norm(np.diff(cam.project(np.stack([tip, tip + jaw])), axis=0)))
                uv = np.array([y * truth["height"], x * truth["width"]])
                nearest = float(np.min(np.linalg.norm(drawn - uv, axis=1)))
                assert nearest <= half_gap + 2.0, (name, key, frame, nearest, half_gap)
                checked += 1
    assert checked >= 8


# ------------------------------------------------------------------ teleoperation variation


def _first(ep, prefix: str) -> dict:
    return next(s for s in ep.segments if s["name"].startswith(prefix))


def test_timing_varies_a_lot_between_episodes_of_one_task(sims):
    for robot, eps in sims.items():
        by_task: dict[str, list[float]] = defaultdict(list)
        for ep in eps:
            kind = ep.record.get("task_kind", "pick")
            s = _first(ep, "reach_")
            by_task[kind].append(s["end"] - s["start"])
        for kind, durations in by_task.items():
            assert len(durations) >= 5 and max(durations) >= 2 * min(durations), (robot, kind, durations)
        lengths = [ep.length for ep in eps]
        assert max(lengths) >= 1.4 * min(lengths), robot


def test_some_episodes_retry_a_failed_grasp_and_some_pause(sims):
    for robot, eps in sims.items():
        retries = [ep for ep in eps if ep.events["failed_grasps"]]
        assert 2 <= len(retries) <= 10, (robot, len(retries))
        for ep in retries:
            fg = ep.events["failed_grasps"][0]
            g = next(g for g in ep.events["grasps"] if g["arm"] == fg["arm"])
            assert fg["end"] < g["grasp_frame"]  # the failure came first, then the grasp that holds
            arm = ep.arms[fg["arm"]]
            # The jaws closed further on nothing than they do on the object.
            assert arm.gap[fg["start"] : fg["end"]].min() < 0.5 * np.median(
                arm.gap[g["grasp_frame"] : g["release_frame"]]
            )
        paused = [ep for ep in eps if ep.events["pauses"]]
        assert len(paused) >= 5, robot
        for ep in paused:  # a pause holds the arm still in the middle of its phase
            p = ep.events["pauses"][0]
            seg = next(s for s in ep.segments if s["start"] <= p["start"] < s["end"])
            assert seg["name"] == p["phase"] and p["start"] + p["duration"] <= seg["end"] + 1e-6


def test_gripper_stops_on_the_object(sims):
    """While holding, the follower's jaws sit at the object's width, not where the leader closed them."""
    for robot, eps in sims.items():
        levels = defaultdict(list)
        for ep in eps:
            for g in ep.events["grasps"]:
                if g.get("kind") == "push":
                    continue
                col = ep.names.index(GRIPPER[robot].format(arm=g["arm"]))
                a, b = g["grasp_frame"] + 5, g["release_frame"] - 5
                held = np.median(ep.state[a:b, col])
                commanded = np.median(ep.action[a:b, col])
                span = np.ptp(ep.state[:, col])
                assert held - commanded > 0.1 * span, (robot, g, held, commanded)
                levels[g["object"]].append(held)
        flat = [v for vs in levels.values() for v in vs]
        assert np.ptp(flat) > 0.05 * np.max(np.abs(flat)), (robot, levels)
    # Bigger things hold the jaws wider: the socket against the peg.
    bim = defaultdict(list)
    for ep in sims["bimanual"]:
        for g in ep.events["grasps"]:
            arm = ep.arms[g["arm"]]
            bim[ep.bodies[g["object"]].item.shape].append(
                np.median(arm.gap[g["grasp_frame"] : g["release_frame"]])
            )
    assert min(bim["socket"]) > 2 * max(bim["peg"])


def _smooth(x: np.ndarray, k: int = 7) -> np.ndarray:
    return np.stack([np.convolve(c, np.ones(k) / k, mode="valid") for c in x.T], axis=1)


def test_action_leads_the_state(sims):
    """The leader's command comes first; the follower reads it after the link's delay plus its servo lag."""
    for robot, eps in sims.items():
        for ep in eps:
            joints = [j for j, n in enumerate(ep.names) if "gripper" not in n]
            a = np.diff(_smooth(ep.action[:, joints].astype(float)), axis=0)  # smoothing removes the tremor
            s = np.diff(_smooth(ep.state[:, joints].astype(float)), axis=0)
            a, s = a / (a.std(axis=0) + 1e-9), s / (s.std(axis=0) + 1e-9)
            corr = [float(np.sum(a[: len(a) - k] * s[k:])) for k in range(15)]
            best, delay = int(np.argmax(corr)), ep.events["delay"]
            assert delay <= best <= delay + 4, (robot, best, delay)


def test_single_joint_hand_moves_on_curves(sims):
    """Joint-space sweeps between poses: the gripper's path bows away from the straight line."""
    bows = []
    for ep in sims["single-joint"]:
        seg = next((s for s in ep.segments if s["name"] == "move_to_bowl"), None)
        if seg is None:
            continue
        tip = ep.arms["main"].tip[round(seg["start"] * ep.fps) : round(seg["end"] * ep.fps)]
        chord = tip[-1] - tip[0]
        u = chord / np.linalg.norm(chord)
        off = (tip - tip[0]) - np.outer((tip - tip[0]) @ u, u)
        bows.append(np.linalg.norm(off, axis=1).max())
    assert len(bows) >= 5 and np.median(bows) > 0.01, bows


def test_bimanual_arms_take_turns_and_move_together(bimanual_root):
    """From the recorded signals alone: spans where one arm works while the other holds still, and both move."""
    ds = Dataset(bimanual_root)
    fps = ds.fps
    spans = {"left only": 0.0, "right only": 0.0, "both": 0.0}
    k = int(0.3 * fps)
    for ep in ds:
        state = ds.signals(ep.index).channels["observation.state"].astype(float)
        speed = {}
        for arm, cols in (("left", slice(0, 6)), ("right", slice(7, 13))):
            q = state[:, cols]
            smooth = np.stack([np.convolve(c, np.ones(k) / k, mode="same") for c in q.T], axis=1)
            v = np.zeros(len(q))
            v[3:-3] = np.linalg.norm(smooth[6:] - smooth[:-6], axis=1) * fps / 6
            speed[arm] = v
        moving = {a: v > 0.2 for a, v in speed.items()}
        still = {a: v < 0.05 for a, v in speed.items()}
        spans["left only"] += np.sum(moving["left"] & still["right"]) / fps
        spans["right only"] += np.sum(moving["right"] & still["left"]) / fps
        spans["both"] += np.sum(moving["left"] & moving["right"]) / fps
    assert all(v >= 1.0 for v in spans.values()), spans


# ------------------------------------------------------------------ reproducibility and the command line


def test_same_seed_same_episodes_other_seed_other_ones():
    for robot in NAMES:
        a, b = simulate_episodes(robot, 2, seed=5), simulate_episodes(robot, 2, seed=5)
        c = simulate_episodes(robot, 2, seed=6)
        for x, y, z in zip(a, b, c, strict=True):
            assert np.array_equal(x[0].state, y[0].state) and x[0].segments == y[0].segments
            assert x[0].task == y[0].task
            assert x[0].state.shape != z[0].state.shape or not np.allclose(x[0].state, z[0].state)


def test_written_ground_truth_is_the_simulation(demo_variant_root):
    robot, root = demo_variant_root
    truth = load_ground_truth(root)
    ds = Dataset(root)
    _, sim = _episode(robot, truth, 1)
    assert truth["episodes"][1]["segments"] == json.loads(json.dumps(sim.segments))
    state = ds.signals(1).channels["observation.state"]
    assert np.allclose(state, sim.state, atol=1e-6)


def test_make_demo_writes_the_chosen_robot(tmp_path):
    pytest.importorskip("lerobot", reason="the demo writer needs the 'lerobot' extra")
    out = tmp_path / "so100"
    exe = Path(sys.executable).with_name("robo-annotate")
    done = subprocess.run(
        [str(exe), "make-demo", str(out), "--robot", "single-joint", "--episodes", "1", "--size", "64x48"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr
    assert "shoulder_pan.pos" in json.dumps(json.loads((out / "meta" / "info.json").read_text())["features"])
    assert load_ground_truth(out)["robot"] == "single-joint"
    bad = subprocess.run(
        [str(exe), "make-demo", str(tmp_path / "x"), "--robot", "tripod"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert bad.returncode == 2 and "tripod" in bad.stderr and not (tmp_path / "x").exists()
