"""Export fixtures: a store of annotations made from the demo's ground truth.

Episodes 0-4 are accepted, episode 5 is left unreviewed. Episode 1's subtask
boundaries are moved 0.4 frame off the frame grid so the boundary rule
(start <= t < end) is tested between frames as well as on them. Every episode
has every kind the store holds: boxes of the four kinds (current every second,
final, contact at the grasp, gripper every two seconds), trajectories, contacts,
two dialogue turns and two QAs; segments carry motion descriptions and tasks
have rephrasings, except in NO_MOTION_EPISODE (neither).
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest

from core.annotations import QA, Box, Contact, DialogueTurn, EpisodeAnnotation, Segment, Trajectory
from core.protocol import Correction
from core.store import Store

UNREVIEWED_EPISODE = 5
OFF_GRID_EPISODE = 1
NO_MOTION_EPISODE = 3
GRIPPER_HALF = 0.04


def _clip(v: float) -> float:
    return min(max(v, 0.0), 1.0)


def gt_annotation(gt: dict, ep: dict, dataset: str, review: str) -> EpisodeAnnotation:
    """A full annotation of one demo episode from its ground truth."""
    fps = float(gt["fps"])
    n = int(ep["length"])
    duration = n / fps
    shift = 0.4 / fps if ep["episode_index"] == OFF_GRID_EPISODE else 0.0
    segs = ep["segments"]
    plain = ep["episode_index"] == NO_MOTION_EPISODE
    segments = [
        Segment(
            name=s["name"],
            start=0.0 if i == 0 else s["start"] + shift,
            end=duration if i == len(segs) - 1 else s["end"] + shift,
            motion="" if plain else f"{s['name']}: move the gripper for {s['end'] - s['start']:.1f} s",
            source="human:test",
        )
        for i, s in enumerate(segs)
    ]
    obj, target = ep["object"]["label"], ep["target"]["label"]
    boxes, trajectories = [], []
    for cam in gt["cameras"]:
        for k in range(0, n, 30):
            boxes.append(
                Box(t=k / fps, camera=cam, label=obj, kind="current", xyxy=tuple(ep["boxes"][cam][k]))
            )
        boxes.append(Box(t=0.0, camera=cam, label=target, kind="final", xyxy=tuple(ep["target_boxes"][cam])))
        for k in range(0, n, 60):
            gx, gy = ep["gripper"][cam][k]
            xyxy = (
                _clip(gx - GRIPPER_HALF),
                _clip(gy - GRIPPER_HALF),
                _clip(gx + GRIPPER_HALF),
                _clip(gy + GRIPPER_HALF),
            )
            boxes.append(Box(t=k / fps, camera=cam, label="gripper", kind="gripper", xyxy=xyxy))
        pts = [(k / fps, *ep["gripper"][cam][k]) for k in range(0, n, 10)]
        trajectories.append(
            Trajectory(camera=cam, points=[(t, min(max(x, 0), 1), min(max(y, 0), 1)) for t, x, y in pts])
        )
    contacts = [Contact(t=c["t"], camera=c["camera"], x=c["x"], y=c["y"]) for c in ep["contacts"]]
    for c in contacts:
        k = min(round(c.t * fps), n - 1)
        boxes.append(
            Box(t=k / fps, camera=c.camera, label=obj, kind="contact", xyxy=tuple(ep["boxes"][c.camera][k]))
        )
    grasp = segments[1].start
    dialogue = [
        DialogueTurn(
            t=0.0,
            skill="reach",
            user_prompt=f"Could you get me the {obj}?",
            robot_utterance=f"Sure, reaching for the {obj}.",
        ),
        DialogueTurn(
            t=grasp,
            skill="grasp",
            user_prompt=f"Put it in the {target}, please.",
            robot_utterance=f"Grasping it now, then the {target}.",
            scenario_type="specific_object",
            response_type="acknowledgment",
        ),
    ]
    front, top = gt["cameras"][0], gt["cameras"][1]
    qa = [
        QA(
            t=contacts[0].t,
            camera=front,
            question=f"Is the gripper touching the {obj}?",
            answer="yes",
            kind="choice",
            choices=["yes", "no"],
        ),
        QA(t=1.0, camera=top, question="What is the robot doing?", answer=f"reaching for the {obj}"),
    ]
    return EpisodeAnnotation(
        dataset=dataset,
        episode=int(ep["episode_index"]),
        duration=duration,
        fps=fps,
        task=ep["task"],
        task_aug=[] if plain else [f"Put the {obj} in the {target}.", f"Move the {obj} to the {target}."],
        segments=segments,
        boxes=boxes,
        trajectories=trajectories,
        contacts=contacts,
        dialogue=dialogue,
        qa=qa,
        review=review,
        model="test@1",
    )


def write_store(path: Path, anns: list[EpisodeAnnotation]) -> Path:
    with Store(path) as store, store.transaction():
        for ann in anns:
            c = Correction(
                uuid=uuid.uuid4().hex,
                dataset=ann.dataset,
                episode=ann.episode,
                base_revision=0,
                user="test",
                annotation=ann,
            )
            store.apply_correction(c)
    return path


@pytest.fixture(scope="session")
def ground_truth(demo_root: Path) -> dict:
    return json.loads((demo_root / "ground_truth.json").read_text())


@pytest.fixture(scope="session")
def annotations(demo_root: Path, ground_truth: dict) -> dict[int, EpisodeAnnotation]:
    return {
        ep["episode_index"]: gt_annotation(
            ground_truth,
            ep,
            demo_root.name,
            "unreviewed" if ep["episode_index"] == UNREVIEWED_EPISODE else "accepted",
        )
        for ep in ground_truth["episodes"]
    }


@pytest.fixture(scope="session")
def store_path(tmp_path_factory: pytest.TempPathFactory, annotations: dict[int, EpisodeAnnotation]) -> Path:
    return write_store(tmp_path_factory.mktemp("store") / "annotations.db", list(annotations.values()))


# The official qwen-vl-finetune sft.sh budget (--max_pixels 50176) and RoboInterVLM's (the qwen default).
OFFICIAL_SFT = (3136, 50176)
ROBOINTER = (3136, 12845056)


def _export(fmt: str, demo_root: Path, store_path: Path, tmp_path_factory, **kw) -> Path:
    from core.export import export

    out = tmp_path_factory.mktemp(fmt) / "out"
    report = export(demo_root, store_path, fmt, out, **kw)
    assert report.samples > 0 and report.warnings == []
    return out


@pytest.fixture(scope="session")
def qwen(demo_root: Path, store_path: Path, tmp_path_factory) -> Path:
    """The qwen export at its default budget (read-only)."""
    return _export("qwen", demo_root, store_path, tmp_path_factory)


@pytest.fixture(scope="session")
def qwen_sft(demo_root: Path, store_path: Path, tmp_path_factory) -> Path:
    """The qwen export at the official sft.sh budget (read-only)."""
    lo, hi = OFFICIAL_SFT
    return _export("qwen", demo_root, store_path, tmp_path_factory, min_pixels=lo, max_pixels=hi)


@pytest.fixture(scope="session")
def llava(demo_root: Path, store_path: Path, tmp_path_factory) -> Path:
    """The llava export (read-only)."""
    return _export("llava", demo_root, store_path, tmp_path_factory)
