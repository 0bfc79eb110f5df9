"""Write the demo datasets through lerobot's own `LeRobotDataset.create` writer.

Each dataset is a real LeRobot v3 dataset (AV1 video, parquet signals, lerobot's
metadata and stats), so everything the tool reads in tests and in the demo is
what lerobot itself produces. `ground_truth.json` beside it holds what the
simulator knows (core.demo.truth computes each episode's record):

    version 2, fps, width, height, robot, robot_type, cameras (feature keys),
    vocabulary (every phase name used, in order of first use), seed, episodes: [
      {episode_index, seed, task (the dataset's task string), length (frames),
       segments: gap-free [{name, start, end, arm}] in seconds covering [0, length / fps]
         (arm: the arm that acts, "both", or null when nothing moves),
       boxes: {camera key: [[x1, y1, x2, y2] | null per frame]} of the primary object
         (the first the task names), objects: {label: {camera key: [...]}} of every
         manipulated object, target_boxes: {camera key: [x1, y1, x2, y2]} where there is a
         target that stays put,
       gripper: {camera key: [[x, y] per frame]} of the primary arm (the one that grasps
         first), grippers: {arm: {camera key: [...]}}, primary_arm,
       contacts: [{t, camera, x, y, arm}] where each grasp takes hold,
       grasp_frame, release_frame (the primary arm's first grasp that holds),
       grasps: [{arm, object, grasp_frame, release_frame}], retry, failed_grasps:
       [{arm, object, start, end}] (frames), pauses: [{arm, phase, start, duration}]
       (seconds), closed_gripper: {arm: jaw opening in metres while holding},
       action_lead_frames, and per variant object / target / distractors descriptions}]

Boxes and points are normalized to [0, 1]; a box is null in a frame where the
object is wholly out of view. Needs the `lerobot` extra (imported lazily).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from core.demo import ROBOTS
from core.errors import DatasetError, MissingExtraError

GROUND_TRUTH = "ground_truth.json"
# The single-ee variant's state and action names (older callers import them).
STATE_NAMES = ["x", "y", "z", "roll", "pitch", "yaw", "gripper"]


def _quiet_encoders() -> None:
    """SVT-AV1, FFmpeg and datasets print a screenful per episode; keep errors only."""
    os.environ.setdefault("SVT_LOG", "1")
    logging.getLogger("lerobot").setLevel(logging.WARNING)
    try:
        import av.logging
        import datasets

        av.logging.set_level(av.logging.ERROR)
        datasets.disable_progress_bars()
    except ImportError:
        pass


def camera_key(name: str) -> str:
    return f"observation.images.{name}"


def demo_features(width: int, height: int, cameras: list[str], names: list[str] | None = None) -> dict:
    names = list(names or STATE_NAMES)
    feats: dict = {
        camera_key(c): {
            "dtype": "video",
            "shape": (height, width, 3),
            "names": ["height", "width", "channels"],
        }
        for c in cameras
    }
    feats["observation.state"] = {"dtype": "float32", "shape": (len(names),), "names": names}
    feats["action"] = {"dtype": "float32", "shape": (len(names),), "names": list(names)}
    return feats


def episode_seed(seed: int, episode: int, cycle: int = 0) -> int:
    return (seed * 100_003 + episode) * 31 + cycle


def simulate_episodes(
    robot: str = "single-ee", episodes: int = 8, seed: int = 0, fps: int = 30, cycles: int = 1
) -> list[list[Any]]:
    """The simulated episodes (core.demo.episode.Episode), one list of cycles per episode, without rendering."""
    from core.demo.robots import make_variant

    variant = make_variant(robot, seed)
    return [
        [variant.episode(episode_seed(seed, ep, c), fps, index=ep) for c in range(cycles)]
        for ep in range(episodes)
    ]


def write_demo(
    out: str | Path,
    episodes: int = 8,
    seed: int = 0,
    width: int = 640,
    height: int = 480,
    fps: int = 30,
    cycles: int = 1,
    progress: Callable[[int, int], None] | None = None,
    robot: str = "single-ee",
) -> Path:
    """Write `episodes` simulated episodes of `robot` to `out` (which must not exist).

    `robot` is one of ROBOTS. `cycles` > 1 makes long episodes: that many scenes
    played one after another (with scene cuts), for benchmarks and long-episode
    handling.
    """
    if robot not in ROBOTS:
        raise ValueError(f"robot = {robot!r}: must be one of {', '.join(ROBOTS)}")
    if episodes < 1:
        raise ValueError(f"episodes = {episodes}: must be >= 1")
    if cycles < 1:
        raise ValueError(f"cycles = {cycles}: must be >= 1")
    try:
        from lerobot.configs.video import RGBEncoderConfig
        from lerobot.datasets.lerobot_dataset import LeRobotDataset
    except ImportError as exc:
        raise MissingExtraError("lerobot", "lerobot", "Writing the demo dataset") from exc
    from core.demo.render import SceneRenderer
    from core.demo.robots import make_variant
    from core.demo.truth import episode_record

    out = Path(out).expanduser().resolve()
    if out.exists():
        raise DatasetError(f"{out}: already exists; choose a new directory or delete it first")
    variant = make_variant(robot, seed)
    cameras = variant.cameras(width, height)
    _quiet_encoders()
    # A queue deep enough for a whole episode: lerobot's streaming encoder drops
    # frames when its queue is full, and a demo must never lose one.
    ds = LeRobotDataset.create(
        repo_id=f"robo-annotate/demo-{robot}",
        fps=fps,
        features=demo_features(width, height, [c.name for c in cameras], variant.names),
        root=out,
        robot_type=variant.robot_type,
        use_videos=True,
        streaming_encoding=True,
        encoder_queue_maxsize=1000,
        # lerobot's defaults (libsvtav1, g=2, crf=30) at the fastest preset.
        rgb_encoder=RGBEncoderConfig(preset=12),
    )
    truth: dict[str, Any] = {
        "version": 2,
        "fps": fps,
        "width": width,
        "height": height,
        "robot": robot,
        "robot_type": variant.robot_type,
        "cameras": [camera_key(c.name) for c in cameras],
        "vocabulary": [],
        "seed": seed,
        "episodes": [],
    }
    try:
        for ep in range(episodes):
            records = []
            sims = [variant.episode(episode_seed(seed, ep, c), fps, index=ep) for c in range(cycles)]
            task = sims[0].task if cycles == 1 else " then ".join(s.task for s in sims)
            for c, sim in enumerate(sims):
                sseed = episode_seed(seed, ep, c)
                renderers = [SceneRenderer(cam, sim, variant.look, seed=sseed) for cam in cameras]
                for i in range(sim.length):
                    frame = {camera_key(r.camera.name): r.frame(i) for r in renderers}
                    frame["observation.state"] = sim.state[i]
                    frame["action"] = sim.action[i]
                    frame["task"] = task
                    ds.add_frame(frame)
                records.append(episode_record(ep, sseed, sim, cameras))
            ds.save_episode()
            truth["episodes"].append(_merge_cycles(records, fps, task))
            if progress:
                progress(ep + 1, episodes)
        ds.finalize()
    except BaseException:
        ds.finalize()
        shutil.rmtree(out, ignore_errors=True)
        raise
    truth["vocabulary"] = list(dict.fromkeys(s["name"] for rec in truth["episodes"] for s in rec["segments"]))
    (out / GROUND_TRUTH).write_text(json.dumps(truth))
    _check_written(out)
    return out


_PER_FRAME = ("boxes", "gripper")


def _merge_cycles(records: list[dict], fps: int, task: str) -> dict:
    """One ground-truth record for an episode made of consecutive scenes."""
    if len(records) == 1:
        return records[0]
    total = sum(r["length"] for r in records)
    merged = {**records[0], "task": task, "length": total, "cycles": len(records)}
    merged["segments"], merged["contacts"], merged["grasps"] = [], [], []
    merged["failed_grasps"], merged["pauses"] = [], []
    merged["retry"] = any(r["retry"] for r in records)
    for key in _PER_FRAME:
        merged[key] = {k: [] for k in records[0][key]}
    labels = [lab for r in records for lab in r["objects"]]
    merged["objects"] = {lab: {k: [] for k in records[0]["boxes"]} for lab in dict.fromkeys(labels)}
    arms = [a for r in records for a in r["grippers"]]
    merged["grippers"] = {a: {k: [] for k in records[0]["gripper"]} for a in dict.fromkeys(arms)}
    offset = 0
    for r in records:
        dt = offset / fps
        n = r["length"]
        for s in r["segments"]:  # the idle that ends one scene and the idle that starts the next are one
            prev = merged["segments"][-1] if merged["segments"] else None
            if prev and (prev["name"], prev.get("arm")) == (s["name"], s.get("arm")):
                prev["end"] = s["end"] + dt
            else:
                merged["segments"].append({**s, "start": s["start"] + dt, "end": s["end"] + dt})
        merged["contacts"] += [{**c, "t": c["t"] + dt} for c in r["contacts"]]
        merged["grasps"] += [
            {**g, "grasp_frame": g["grasp_frame"] + offset, "release_frame": g["release_frame"] + offset}
            for g in r["grasps"]
        ]
        merged["failed_grasps"] += [
            {**g, "start": g["start"] + offset, "end": g["end"] + offset} for g in r["failed_grasps"]
        ]
        merged["pauses"] += [{**p, "start": p["start"] + dt} for p in r["pauses"]]
        for key in _PER_FRAME:
            for k in merged[key]:
                merged[key][k] += r[key][k]
        for lab, per_cam in merged["objects"].items():
            for k in per_cam:
                per_cam[k] += r["objects"].get(lab, {}).get(k, [None] * n)
        for a, per_cam in merged["grippers"].items():
            for k in per_cam:
                per_cam[k] += r["grippers"].get(a, {}).get(k, [None] * n)
        offset += n
    return merged


def _check_written(root: Path) -> None:
    """Every episode's video window must span exactly its frames (no dropped frames)."""
    from core.dataset import Dataset

    ds = Dataset(root)
    for ep in ds:
        for cam in ds.cameras:
            ref = ds.video(ep.index, cam)
            span = ref.to_timestamp - ref.from_timestamp
            if abs(span - ep.length / ds.fps) > 0.5 / ds.fps:
                raise DatasetError(
                    f"{ref.path}: episode {ep.index} spans {span:.3f}s of video but has "
                    f"{ep.length} frames ({ep.length / ds.fps:.3f}s): the encoder dropped frames"
                )


def generator_digest(params: dict) -> str:
    """Changes whenever the generator's code or parameters change."""
    h = hashlib.sha256(repr(sorted(params.items())).encode())
    for path in sorted(Path(__file__).parent.rglob("*.py")):
        h.update(path.read_bytes())
    return h.hexdigest()[:12]


def cached_demo(cache_dir: str | Path, name: str, **params) -> Path:
    """A demo dataset under `cache_dir`, written once per generator version and reused."""
    cache_dir = Path(cache_dir)
    root = cache_dir / f"{name}-{generator_digest(params)}"
    if (root / GROUND_TRUTH).is_file():
        return root
    cache_dir.mkdir(parents=True, exist_ok=True)
    tmp = cache_dir / f".{root.name}.{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    write_demo(tmp, **params)
    shutil.rmtree(root, ignore_errors=True)
    tmp.rename(root)
    for stale in cache_dir.glob(f"{name}-*"):  # older generator versions
        if stale != root and stale.is_dir():
            shutil.rmtree(stale, ignore_errors=True)
    return root


def load_ground_truth(root: str | Path) -> dict:
    path = Path(root) / GROUND_TRUTH
    if not path.is_file():
        raise DatasetError(f"{path}: missing; only datasets made by `robo-annotate make-demo` have one")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise DatasetError(f"{path}: not valid JSON ({exc})") from exc
