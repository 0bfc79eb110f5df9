"""The task registry: every built-in task is one registered module, and one more module adds a task."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from core.annotations import ITEM_FIELDS, Box, EpisodeAnnotation
from core.dataset import Dataset
from core.vlm import prompts, tasks
from core.vlm.parse import parse_answer
from core.vlm.samples import TASKS, SampleConfig, build_inference_requests, build_samples

PLUGIN = Path(__file__).parent / "plugin_task" / "box_count.py"
SMALL = SampleConfig(rate=1.0, sheet_frames=4, sheets_per_window=1, frame_side=224, sheet_side=448)
BUILTIN = (
    "segmentation",
    "box_current",
    "box_final",
    "box_contact",
    "gripper",
    "trajectory",
    "trajectory_from_start",
    "contact_point",
    "qa_choice",
    "qa_open",
    "dialogue",
)


@pytest.fixture(scope="module")
def ds(demo_root: Path) -> Dataset:
    return Dataset(demo_root)


@pytest.fixture
def box_count():
    """The plug-in task, loaded from its file as a plug-in would be, and removed afterwards."""
    spec = importlib.util.spec_from_file_location("box_count_plugin", PLUGIN)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    try:
        yield module.TASK
    finally:
        tasks.unregister("box_count")


def boxed(ds: Dataset) -> EpisodeAnnotation:
    """Episode 0 with two current boxes at 1 s and one at 2 s on the first camera."""
    info, cam = ds.episode(0), ds.cameras[0]
    fps = float(ds.fps)
    boxes = [
        Box(t=1.0, camera=cam, label="cup", kind="current", xyxy=(0.1, 0.1, 0.3, 0.3)),
        Box(t=1.0, camera=cam, label="bowl", kind="current", xyxy=(0.5, 0.5, 0.9, 0.8)),
        Box(t=2.0, camera=cam, label="cup", kind="current", xyxy=(0.2, 0.1, 0.4, 0.3)),
        Box(t=0.0, camera=cam, label="bowl", kind="final", xyxy=(0.5, 0.5, 0.9, 0.8)),
    ]
    return EpisodeAnnotation(
        dataset=ds.name, episode=0, duration=info.length / fps, fps=fps, task=info.task, boxes=boxes
    )


def test_every_builtin_task_is_registered_in_order_with_its_prompt() -> None:
    assert TASKS == BUILTIN
    assert tasks.trained_names() == BUILTIN
    assert [t.name for t in tasks.ordered()] == ["describe", *BUILTIN]
    for task in tasks.ordered():
        assert prompts.load_template(task.name), task.name
        assert task.kind is None or task.kind in ITEM_FIELDS
    # Every item kind an engine may be asked for has a task that fills it.
    assert set(tasks.kind_tasks()) == set(ITEM_FIELDS)
    assert tasks.kind_tasks()["trajectories"] == ("trajectory",)  # the other is asked only by name


def test_a_task_from_one_file_is_asked_trained_and_read_back(ds: Dataset, box_count) -> None:
    # Registered: listed with the built-ins, and engines asked for QA run it too.
    assert tasks.get("box_count") is box_count
    assert tasks.trained_names() == (*BUILTIN, "box_count")
    assert tasks.kind_tasks()["qa"] == ("qa_choice", "qa_open", "box_count")

    # Requests: its own prompt file, filled.
    (req,) = build_inference_requests(ds, 0, "qwen2_5_vl", ["box_count"], config=SMALL)
    assert req.task == "box_count" and req.answer == "" and len(req.images) == 1
    assert "How many objects" in req.prompt and f'camera "{ds.cameras[0]}"' in req.prompt
    assert "$" not in req.prompt
    # Without a task list, every registered task is asked, this one included.
    assert any(s.task == "box_count" for s in build_inference_requests(ds, 0, config=SMALL))

    # Samples: one per (camera, time) of current boxes, the answer its count.
    ann = boxed(ds)
    samples = build_samples(ann, ds, "qwen2_5_vl", ["box_count"], config=SMALL)
    assert [(s.meta["t"], json.loads(s.answer)) for s in samples] == [
        (1.0, {"count": 2}),
        (2.0, {"count": 1}),
    ]
    every = build_samples(ann, ds, "qwen2_5_vl", config=SMALL)
    assert [s.task for s in every if s.task == "box_count"] == ["box_count", "box_count"]
    assert {s.task for s in every} == {"box_current", "box_final", "box_count"}

    # Answers: read back through the same parser as every task.
    r = parse_answer("box_count", samples[0].answer, samples[0].meta, source="m@1", confidence=0.8)
    assert r.ok, r.error
    (qa,) = r.items
    assert (qa.answer, qa.kind, qa.t, qa.source) == ("2", "open", 1.0, "m@1")
    bad = parse_answer("box_count", "```json\n{'count': 'many'}\n```", samples[0].meta)
    assert bad.status == "unparseable" and bad.error.startswith("box_count:")


def test_an_unregistered_task_is_unknown_everywhere(ds: Dataset) -> None:
    assert "box_count" not in tasks.REGISTRY
    with pytest.raises(ValueError, match="box_count"):
        build_inference_requests(ds, 0, tasks=["box_count"], config=SMALL)
    with pytest.raises(ValueError, match=r"known: describe, segmentation, box_current"):
        tasks.get("box_count")
    r = parse_answer("box_count", '{"count": 1}', {"t": 0.0, "camera": ds.cameras[0]})
    assert r.status == "unparseable" and "unknown task" in r.error


def test_registering_a_name_twice_or_a_kind_that_is_not_an_item_kind_fails(box_count) -> None:
    with pytest.raises(ValueError, match="registered twice"):
        tasks.register(type(box_count)())

    class Odd(tasks.Task):
        name = "odd"
        kind = "gestures"

    with pytest.raises(ValueError, match="gestures"):
        tasks.register(Odd())
    assert "odd" not in tasks.REGISTRY
