"""The shared VLM engine logic (backend.engines.vlm) with a scripted model.

The model here is a script that answers each prompt by task, so the tests can
say exactly what a good, a sloppy and a garbage answer must become: two-pass
describe-then-segment, windows stitched into one cover, boundaries snapped to
gripper events, uncertainty from log-probabilities, partial and total failure.
The real model path is tests/backend/test_transformers_engine.py.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest

from backend.engines.base import EpisodeJob
from backend.engines.vlm import (
    Generation,
    GenRequest,
    VLMEngine,
    confidence_from_logprobs,
    gripper_events,
    snap_boundaries,
    stitch_windows,
)
from core.annotations import EpisodeAnnotation, Segment
from core.dataset import Dataset
from core.store import Store
from tests.fixtures.servers import running_server

SMALL = {"rate": 1.0, "sheet_frames": 4, "sheets_per_window": 1, "frame_side": 112, "sheet_side": 224}


class ScriptedEngine(VLMEngine):
    """Answers from `script(request) -> text` with a fixed per-token log-probability."""

    engine_name = "scripted"

    def __init__(self, script: Callable[[GenRequest], str], logprob: float = math.log(0.8), **options):
        super().__init__(family="qwen2_5_vl", version="1", **options)
        self.script, self.logprob = script, logprob
        self.seen: list[GenRequest] = []
        self.calls = 0

    def generate(self, requests: Sequence[GenRequest]) -> list[Generation]:
        self.calls += 1
        self.seen.extend(requests)
        out = []
        for r in requests:
            text = self.script(r)
            if text is None:
                out.append(Generation(error="connection refused"))
            else:
                out.append(Generation(text=text, logprobs=[self.logprob] * 10, finish="stop"))
        return out


def truth_segments(demo_root: Path, episode: int) -> list[dict]:
    gt = json.loads((demo_root / "ground_truth.json").read_text())
    return gt["episodes"][episode]["segments"]


def good_answer(demo_root: Path) -> Callable[[GenRequest], str]:
    """A competent model: true segments (clipped to the window), sensible boxes and points."""

    def answer(r: GenRequest) -> str:
        s = r.sample
        if s.task == "describe":
            return "The arm reaches the cylinder, grasps it, lifts it and puts it in the bowl."
        if s.task == "segmentation":
            a, b = s.meta["window"]
            spans = [
                {"name": x["name"], "start": max(a, x["start"]), "end": min(b, x["end"])}
                for x in truth_segments(demo_root, s.episode)
                if min(b, x["end"]) > max(a, x["start"])
            ]
            return "```json\n" + json.dumps(spans) + "\n```"
        w, h = s.meta.get("image_size", (100, 100))
        if s.task in ("box_current", "box_final", "box_contact", "gripper"):
            return json.dumps([{"bbox_2d": [w // 4, h // 4, w // 2, h // 2], "label": "blue cylinder"}])
        if s.task == "trajectory":
            return json.dumps([{"t": t, "point_2d": [w // 2, h // 2]} for t in s.meta["times"]])
        if s.task == "contact_point":
            return json.dumps([{"point_2d": [w // 3, h // 3]}])
        if s.task == "qa_choice":
            return json.dumps(
                [{"question": "Is the gripper closed?", "choices": ["yes", "no"], "answer": "no"}]
            )
        if s.task == "qa_open":
            return json.dumps([{"question": "What moves?", "answer": "the arm"}])
        if s.task == "dialogue":
            return json.dumps(
                {
                    "user_prompt": "Please pick it up.",
                    "robot_utterance": "On it.",
                    "scenario_type": "implicit_request",
                    "response_type": "confirmation",
                }
            )
        raise AssertionError(s.task)

    return answer


ALL_KINDS = ("segments", "boxes", "trajectories", "contacts", "dialogue", "qa")


def test_good_answers_make_a_full_valid_annotation(demo_root: Path) -> None:
    ds = Dataset(demo_root)
    eng = ScriptedEngine(good_answer(demo_root), **SMALL)
    jobs = [EpisodeJob("demo", ds, e, ALL_KINDS) for e in (0, 1)]
    preds = eng.predict(jobs)
    # One generate call for both episodes' first pass, one for the segmentation pass.
    assert eng.calls == 2
    for e, p in zip((0, 1), preds, strict=True):
        assert p.status == "ok", (p.error, p.notes)
        ann = p.annotation
        assert ann.episode == e and ann.model == "scripted@1"
        for kind in ALL_KINDS:
            assert getattr(ann, kind), kind
        assert [s.name for s in ann.segments] == [x["name"] for x in truth_segments(demo_root, e)]
        assert ann.uncertainty == pytest.approx(0.2, abs=1e-3)  # exp(mean log 0.8) = 0.8
        assert all(s.source == "scripted@1" and s.confidence == pytest.approx(0.8) for s in ann.segments)
        # Valid in the data model, end to end (the store decodes through the same checks).
        EpisodeAnnotation(**{f: getattr(ann, f) for f in ann.__struct_fields__})
        assert p.notes["context"] == "kinematic@2.0"  # contact tasks looked at the gripper's close


def test_segmentation_prompt_carries_the_description(demo_root: Path) -> None:
    ds = Dataset(demo_root)
    eng = ScriptedEngine(good_answer(demo_root), **SMALL)
    eng.predict([EpisodeJob("demo", ds, 2, ("segments",))])
    tasks = [r.sample.task for r in eng.seen]
    assert tasks == ["describe", "segmentation"]
    assert "The arm reaches the cylinder" in eng.seen[1].sample.prompt
    assert "The arm reaches the cylinder" not in eng.seen[0].sample.prompt
    # Frames were rendered at the size the prompt's coordinates refer to.
    assert [i.size for i in eng.seen[1].images] == [s.size for s in eng.seen[1].sample.images]


def test_long_episode_windows_are_stitched(demo_root: Path) -> None:
    ds = Dataset(demo_root)
    eng = ScriptedEngine(good_answer(demo_root), describe=False, window_s=3.0, window_overlap_s=1.0, **SMALL)
    (p,) = eng.predict([EpisodeJob("demo", ds, 0, ("segments",))])
    assert p.status == "ok"
    assert p.notes["windows"] >= 3
    want = truth_segments(demo_root, 0)
    assert [s.name for s in p.annotation.segments] == [x["name"] for x in want]
    for got, w in zip(p.annotation.segments[1:], want[1:], strict=True):
        assert got.start == pytest.approx(w["start"], abs=0.05)


def test_stitch_prefers_a_boundary_both_windows_agree_on() -> None:
    a = [Segment(name="reach", start=0, end=4.1), Segment(name="grasp", start=4.1, end=6)]
    b = [Segment(name="reach", start=4, end=4.2), Segment(name="grasp", start=4.2, end=10)]
    out = stitch_windows([((0, 6), a), ((4, 10), b)], 10.0, 30.0)
    assert [s.name for s in out] == ["reach", "grasp"]
    assert out[0].end == pytest.approx(4.15, abs=1 / 30)
    # No common boundary: cut mid-overlap and join the subtask the cut split.
    c = [Segment(name="move", start=0, end=6)]
    d = [Segment(name="move", start=4, end=8), Segment(name="place", start=8, end=10)]
    out = stitch_windows([((0, 6), c), ((4, 10), d)], 10.0, 30.0)
    assert [(s.name, s.start, s.end) for s in out] == [("move", 0.0, 8.0), ("place", 8.0, 10.0)]


def test_snap_to_gripper_events(demo_root: Path) -> None:
    ds = Dataset(demo_root)
    job = EpisodeJob("demo", ds, 0, ("segments",))
    events = gripper_events(job)
    assert events, "the demo's gripper closes and opens"
    dur = ds.episode(0).duration
    g = events[0]
    segs = [Segment(name="reach", start=0, end=g - 0.3), Segment(name="grasp", start=g - 0.3, end=dur)]
    snapped, moved = snap_boundaries(segs, events, 0.5, dur, ds.fps)
    assert moved == 1 and snapped[0].end == pytest.approx(g, abs=1 / ds.fps)
    far, moved = snap_boundaries(segs, events, 0.1, dur, ds.fps)
    assert moved == 0 and far[0].end == pytest.approx(g - 0.3)

    def late(r: GenRequest) -> str:
        if r.sample.task == "describe":
            return "x"
        return json.dumps(
            [{"name": "reach", "start": 0, "end": g + 0.2}, {"name": "grasp", "start": g + 0.2, "end": dur}]
        )

    (p,) = ScriptedEngine(late, snap_to_gripper_s=0.5, **SMALL).predict([job])
    assert p.notes["snapped_boundaries"] == 1
    assert p.annotation.segments[0].end == pytest.approx(g, abs=1 / ds.fps)


def test_one_unreadable_kind_makes_the_episode_unparseable_and_keeps_the_rest(demo_root: Path) -> None:
    ds = Dataset(demo_root)
    good = good_answer(demo_root)

    def half(r: GenRequest) -> str:
        return "I am not sure what happens here." if r.sample.task == "segmentation" else good(r)

    (p,) = ScriptedEngine(half, **SMALL).predict([EpisodeJob("demo", ds, 0, ("segments", "boxes"))])
    assert p.status == "unparseable"
    assert "I am not sure what happens here." in p.raw
    assert "segments" in p.error
    assert p.annotation is not None and p.annotation.boxes and not p.annotation.segments
    assert p.annotation.uncertainty == 1.0


def test_garbage_and_failures(demo_root: Path) -> None:
    ds = Dataset(demo_root)
    (p,) = ScriptedEngine(lambda r: "ype�stotbox", **SMALL).predict(
        [EpisodeJob("demo", ds, 0, ("segments",))]
    )
    assert p.status == "unparseable" and p.annotation is None and "ype�stotbox" in p.raw
    (p,) = ScriptedEngine(lambda r: None, **SMALL).predict([EpisodeJob("demo", ds, 0, ("segments",))])
    assert p.status == "error" and "connection refused" in p.error
    preds = ScriptedEngine(good_answer(demo_root), **SMALL).predict(
        [EpisodeJob("demo", ds, 0, ("poems",)), EpisodeJob("demo", ds, 1, ("segments",))]
    )
    assert preds[0].status == "error" and "poems" in preds[0].error
    assert preds[1].status == "ok"  # one bad job does not sink the batch


def test_confidence_from_logprobs() -> None:
    assert confidence_from_logprobs([]) is None
    assert confidence_from_logprobs([0.0, 0.0]) == 1.0
    assert confidence_from_logprobs([math.log(0.5)] * 3) == pytest.approx(0.5)
    assert 0.0 <= confidence_from_logprobs([-1e9, float("nan")]) < 1e-9


def test_through_the_backend_ok_and_unparseable_stay_in_the_queue(server_config, demo_root: Path) -> None:
    """Real server, real store: a good answer becomes a revision; garbage keeps the raw text and
    the episode (pre-annotated by the kinematic engine, as `robo-backend annotate` does) stays queued."""
    from backend.engines.kinematic import KinematicEngine
    from client import BackendClient

    ds = Dataset(server_config.datasets[0] / "demo")
    kin = KinematicEngine().predict([EpisodeJob("demo", ds, 1)])[0]
    with Store(server_config.store) as store, store.transaction():
        store.add_prediction("demo", 1, "kinematic@2.0", "ok", kin.annotation, ["segments"])

    good = good_answer(demo_root)

    def script(r: GenRequest) -> str:
        return good(r) if r.sample.episode == 0 else "Sorry, I can't help with that."

    with (
        running_server(server_config, engine=ScriptedEngine(script, **SMALL)),
        BackendClient(server_config.bind, timeout=60) as c,
    ):
        c.hello()
        results, done = c.predict("demo", [0, 1], kinds=["segments"])
        by_ep = {r.episode: r for r in results}
        assert by_ep[0].status == "ok" and by_ep[0].revision == 1
        assert by_ep[1].status == "unparseable" and "can't help" in by_ep[1].raw
        assert done.ok == 1 and done.failed == 1
        head = c.annotation("demo", 1)
        assert head.model == "kinematic@2.0"  # garbage replaced nothing
        queued = {q.episode for q in c.queue("demo")}
        assert {0, 1} <= queued
        # Asked again, the unparseable episode is not re-run for the same model version.
        again, _ = c.predict("demo", [1], kinds=["segments"])
        assert again == []


def test_a_fresh_unparseable_episode_is_queued(server_config) -> None:
    from client import BackendClient

    with (
        running_server(server_config, engine=ScriptedEngine(lambda r: "no idea", **SMALL)),
        BackendClient(server_config.bind, timeout=60) as c,
    ):
        c.hello()
        (r,), _ = c.predict("demo", [4], kinds=["segments"])
        assert r.status == "unparseable"
        queued = {q.episode: q for q in c.queue("demo")}
        assert "unparseable" in queued[4].reason and queued[4].uncertainty == 1.0
        assert c.annotation("demo", 4) is None  # nothing was applied
