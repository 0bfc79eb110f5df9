"""lerobot-subtasks: the reference tools' files, and per-frame indices through LeRobotDataset."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from core.annotations import EpisodeAnnotation, frame_time, segment_at
from core.export import export

from .conftest import UNREVIEWED_EPISODE

pytest.importorskip("lerobot")


@pytest.fixture(scope="module")
def exported(demo_root: Path, store_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("subtasks") / "out"
    export(demo_root, store_path, "lerobot-subtasks", out)
    return out


@pytest.fixture(scope="module")
def lerobot_ds(exported: Path):
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    return LeRobotDataset("robo-annotate/subtasks", root=exported)


@pytest.fixture(scope="module")
def frames(lerobot_ds) -> list[dict]:
    cols = ["episode_index", "frame_index", "index", "subtask_index", "task_index_high_level"]
    return lerobot_ds.hf_dataset.select_columns(cols).with_format(None).to_list()


def test_subtasks_parquet_and_skills_json(exported: Path, annotations):
    subtasks = pd.read_parquet(exported / "meta" / "subtasks.parquet")
    assert subtasks.index.name == "subtask"
    names = sorted({s.name for ep, a in annotations.items() if ep != UNREVIEWED_EPISODE for s in a.segments})
    assert subtasks.index.tolist() == names
    assert subtasks["subtask_index"].tolist() == list(range(len(names)))
    skills = json.loads((exported / "meta" / "skills.json").read_text())
    assert skills["skill_to_subtask_index"] == {n: i for i, n in enumerate(names)}
    assert sorted(skills["episodes"], key=int) == [str(e) for e in range(5)]
    ep0 = skills["episodes"]["0"]
    assert ep0["episode_index"] == 0 and ep0["description"] == annotations[0].task
    assert ep0["skills"] == [
        {"name": s.name, "start": s.start, "end": s.end} for s in annotations[0].segments
    ]
    tasks = list(dict.fromkeys(annotations[e].task for e in sorted(annotations)))
    assert len(tasks) > 1  # the demo is a multi-task dataset
    assert skills["coarse_description"] == f"{len(tasks)} tasks: " + "; ".join(tasks)


def test_a_single_task_dataset_is_described_by_its_task(demo_root: Path, annotations, tmp_path: Path):
    """As the reference tools write it: the task itself (here every episode says the same)."""
    import msgspec

    from .conftest import write_store

    same = [msgspec.structs.replace(a, task="stack the blocks") for a in annotations.values()]
    store = write_store(tmp_path / "one.db", same)
    out = tmp_path / "out"
    export(demo_root, store, "lerobot-subtasks", out, include_unreviewed=True)
    assert json.loads((out / "meta" / "skills.json").read_text())["coarse_description"] == "stack the blocks"


def test_every_frame_has_the_subtask_of_its_time(frames, exported: Path, annotations):
    """start <= t < end at t = frame_index / fps; the last frame gets the last subtask; -1 when not exported."""
    names = pd.read_parquet(exported / "meta" / "subtasks.parquet")["subtask_index"]
    name_of = {int(i): n for n, i in names.items()}
    for f in frames:
        ep = f["episode_index"]
        if ep == UNREVIEWED_EPISODE:
            assert f["subtask_index"] == -1 and f["task_index_high_level"] == -1
            continue
        ann: EpisodeAnnotation = annotations[ep]
        want = segment_at(ann.segments, frame_time(f["frame_index"], ann.fps))
        assert name_of[f["subtask_index"]] == want.name, (ep, f["frame_index"])
        if f["frame_index"] == ann.n_frames - 1:
            assert want.name == ann.segments[-1].name


def test_getitem_returns_the_new_values_at_boundaries(lerobot_ds, frames, annotations, exported: Path):
    """LeRobotDataset.__getitem__ (video decoding included) on the frames either side of each boundary."""
    names = pd.read_parquet(exported / "meta" / "subtasks.parquet")["subtask_index"].to_dict()
    by_key = {(f["episode_index"], f["frame_index"]): f["index"] for f in frames}
    for ep in (0, 1):
        ann = annotations[ep]
        picks = {ann.n_frames - 1}
        for s in ann.segments[1:]:
            k = int(s.start * ann.fps + 1e-6)
            picks |= {k - 1, k, k + 1}
        for k in sorted(picks):
            item = lerobot_ds[by_key[(ep, k)]]
            want = segment_at(ann.segments, frame_time(k, ann.fps)).name
            assert int(item["subtask_index"]) == names[want], (ep, k)
            assert "observation.images.front" in item


def test_dialogue_tables_and_per_frame_high_level_index(exported: Path, frames, annotations):
    tasks = pd.read_parquet(exported / "meta" / "tasks_high_level.parquet")
    assert tasks.index.name == "task"
    assert list(tasks.columns) == [
        "task_index",
        "user_prompt",
        "robot_utterance",
        "skill",
        "scenario_type",
        "response_type",
    ]
    key_of = {
        (r.user_prompt, r.robot_utterance, r.skill, r.scenario_type, r.response_type): r.task_index
        for r in tasks.itertuples()
    }
    assert all(
        t == f"{u} | {r}"
        for t, u, r in zip(tasks.index, tasks.user_prompt, tasks.robot_utterance, strict=True)
    )
    syn = [
        json.loads(line) for line in (exported / "meta" / "syn_annotations.jsonl").read_text().splitlines()
    ]
    assert len(syn) == sum(len(a.dialogue) for ep, a in annotations.items() if ep != UNREVIEWED_EPISODE)
    for f in frames:
        ep = f["episode_index"]
        if ep == UNREVIEWED_EPISODE:
            continue
        ann = annotations[ep]
        t = frame_time(f["frame_index"], ann.fps)
        before = [d for d in sorted(ann.dialogue, key=lambda d: d.t) if round(d.t * ann.fps) / ann.fps <= t]
        want = (
            -1
            if not before
            else key_of[
                (
                    before[-1].user_prompt,
                    before[-1].robot_utterance,
                    before[-1].skill,
                    before[-1].scenario_type,
                    before[-1].response_type,
                )
            ]
        )
        assert f["task_index_high_level"] == want, (ep, f["frame_index"])


def test_info_json_declares_the_new_features(exported: Path):
    info = json.loads((exported / "meta" / "info.json").read_text())
    for name in ("subtask_index", "task_index_high_level"):
        assert info["features"][name] == {"dtype": "int64", "shape": [1], "names": None}
