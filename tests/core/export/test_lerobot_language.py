"""lerobot-language: checked against lerobot 0.6's own schema, validator, writer, loader and resolvers.

Every kind the store holds must come out: subtasks and plans, motion, task
rephrasings, dialogue, QAs, boxes of the four kinds and contact points (vqa on
their camera, in the answer shapes lerobot's validator knows), trajectories
(trace). The frames are read back with LeRobotDataset and looked up with
lerobot's own `active_at` / `emitted_at` / `render_sample`.
"""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from core.annotations import QA, EpisodeAnnotation, box_tracks, frame_time, interpolate_box, segment_at
from core.dataset import Dataset
from core.export import export
from core.export.language_grounding import BOX_QUESTIONS, CONTACT_QUESTION, TRACE_QUESTION, pixels
from core.export.lerobot_language import (
    HF_FEATURES,
    LANGUAGE_EVENTS,
    LANGUAGE_FEATURES,
    LANGUAGE_PERSISTENT,
    SAY_TOOL_SCHEMA,
    episode_rows,
    event_row_type,
    persistent_row_type,
    task_phrasings,
)

from .conftest import NO_MOTION_EPISODE, OFF_GRID_EPISODE, UNREVIEWED_EPISODE

pytest.importorskip("lerobot")

EXPORTED = (0, 1, 2, 3, 4)


@pytest.fixture(scope="module")
def exported(demo_root: Path, store_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("lang") / "out"
    report = export(demo_root, store_path, "lerobot-language", out)
    assert report.episodes == 5 and report.warnings == []
    return out


@pytest.fixture(scope="module")
def frames(exported: Path) -> list[dict]:
    """Every frame's bookkeeping and language columns, as LeRobotDataset loads them."""
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    ds = LeRobotDataset("robo-annotate/export", root=exported)
    cols = ["episode_index", "frame_index", "timestamp", LANGUAGE_PERSISTENT, LANGUAGE_EVENTS]
    table = ds.hf_dataset.select_columns(cols).with_format(None)
    return table.to_list()


@pytest.fixture(scope="module")
def by_episode(frames) -> dict[int, list[dict]]:
    out: dict[int, list[dict]] = {}
    for f in frames:
        out.setdefault(f["episode_index"], []).append(f)
    return out


@pytest.fixture(scope="module")
def sizes(demo_root: Path) -> dict[str, tuple[int, int]]:
    ds = Dataset(demo_root)
    return {cam: ds.camera_shape(cam) for cam in ds.cameras}


def _tool_calls(rows: list[dict]) -> list[dict]:
    """Rows with JSON-string tool calls parsed (pyarrow returns the JSON type's text)."""
    out = []
    for r in rows:
        r = dict(r)
        if r.get("tool_calls") is not None:
            r["tool_calls"] = [json.loads(c) if isinstance(c, str) else c for c in r["tool_calls"]]
        out.append(r)
    return out


def _emitted(f: dict, style: str, camera: str) -> tuple[dict | None, dict | None]:
    """(question, answer) of `style` on a frame for a camera, through lerobot's own resolver."""
    from lerobot.datasets.language_render import emitted_at

    kw = {
        "persistent": f[LANGUAGE_PERSISTENT],
        "events": f[LANGUAGE_EVENTS],
        "style": style,
        "camera": camera,
    }
    return emitted_at(f["timestamp"], role="user", **kw), emitted_at(f["timestamp"], role="assistant", **kw)


def _near(fs: list[dict], k: int, style: str, camera: str, question: str, reach: int) -> tuple[int, dict]:
    """The frame within `reach` of k whose `style` question on `camera` is `question`, and its answer."""
    for kk in sorted(range(max(0, k - reach), min(len(fs), k + reach + 1)), key=lambda x: abs(x - k)):
        q, a = _emitted(fs[kk], style, camera)
        if q is not None and q["content"] == question:
            return kk, json.loads(a["content"])
    raise AssertionError(f"no {style} '{question}' on {camera} within {reach} frames of {k}")


def test_schema_and_metadata_are_lerobots():
    import datasets
    from lerobot.datasets import language as L
    from lerobot.datasets.feature_utils import get_hf_features_from_features

    assert persistent_row_type() == L.language_persistent_row_arrow_type()
    assert event_row_type() == L.language_event_row_arrow_type()
    assert {
        k: {**v, "shape": tuple(v["shape"])} for k, v in LANGUAGE_FEATURES.items()
    } == L.language_feature_info()
    hf = get_hf_features_from_features(L.language_feature_info())
    assert datasets.Features(hf).to_dict() == HF_FEATURES
    assert SAY_TOOL_SCHEMA == L.SAY_TOOL_SCHEMA


def test_written_columns_have_lerobots_types_and_info(exported: Path):
    from lerobot.datasets import language as L

    schema = pq.read_schema(next((exported / "data").rglob("*.parquet")))
    assert schema.field(LANGUAGE_PERSISTENT).type == L.language_persistent_arrow_type()
    assert schema.field(LANGUAGE_EVENTS).type == L.language_events_arrow_type()
    info = json.loads((exported / "meta" / "info.json").read_text())
    assert info["features"][LANGUAGE_PERSISTENT]["dtype"] == "language"
    assert [t["function"]["name"] for t in info["tools"]] == ["say"]


def test_every_frame_has_the_subtask_and_motion_of_its_time(frames, annotations):
    """Through LeRobotDataset and lerobot's own resolver: start <= t < end, last frame -> last subtask."""
    from lerobot.datasets.language_render import active_at

    seen_boundaries = 0
    for f in frames:
        ep = f["episode_index"]
        ann: EpisodeAnnotation = annotations[ep]
        if ep == UNREVIEWED_EPISODE:
            assert f[LANGUAGE_PERSISTENT] == [] and f[LANGUAGE_EVENTS] == []
            continue
        t = frame_time(f["frame_index"], ann.fps)
        want = segment_at(ann.segments, t)
        rows = f[LANGUAGE_PERSISTENT]
        row = active_at(f["timestamp"], persistent=rows, style="subtask")
        assert row is not None and row["content"] == want.name, (ep, f["frame_index"])
        plan = active_at(f["timestamp"], persistent=rows, style="plan")
        assert plan["content"].splitlines()[0] == f"1. {want.name}"
        motion = active_at(f["timestamp"], persistent=rows, style="motion")
        if ep == NO_MOTION_EPISODE:
            assert motion is None
        else:
            assert motion["content"] == want.motion and motion["camera"] is None
        if f["frame_index"] == ann.n_frames - 1:
            assert want is ann.segments[-1]
        seen_boundaries += any(abs(t - s.start) < 1 / ann.fps for s in ann.segments[1:])
    assert seen_boundaries > 0


def test_task_rephrasings_are_what_lerobots_task_binding_rotates_through(by_episode, annotations):
    from lerobot.configs.recipe import MessageTurn, TrainingRecipe
    from lerobot.datasets.language_render import render_sample

    recipe = TrainingRecipe(
        messages=[
            MessageTurn(role="user", content="${task}", stream="high_level"),
            MessageTurn(role="assistant", content="${subtask}", stream="high_level", target=True),
        ]
    )
    for ep in EXPORTED:
        ann, f = annotations[ep], by_episode[ep][0]
        aug = [r for r in f[LANGUAGE_PERSISTENT] if r["style"] == "task_aug"]
        seen = set()
        for i in range(64):
            out = render_sample(
                recipe=recipe,
                persistent=f[LANGUAGE_PERSISTENT],
                events=f[LANGUAGE_EVENTS],
                t=f["timestamp"],
                sample_idx=i,
                dataset_ctx={"task": "the dataset's own task"},
            )
            seen.add(out["messages"][0]["content"])
        if ep == NO_MOTION_EPISODE:
            assert aug == [] and seen == {"the dataset's own task"}
        else:
            want = task_phrasings(ann.task, ann.task_aug)
            assert [r["content"] for r in aug] == want and len(want) == 3
            assert all(r["role"] == "user" and r["timestamp"] == f["timestamp"] for r in aug)
            assert seen == set(want)


def test_persistent_rows_broadcast_and_dialogue_on_exact_frames(by_episode, annotations):
    for ep in EXPORTED:
        fs = by_episode[ep]
        first = fs[0][LANGUAGE_PERSISTENT]
        assert all(f[LANGUAGE_PERSISTENT] == first for f in fs)
        stamps = {f["timestamp"] for f in fs}
        assert all(r["timestamp"] in stamps for r in first)
        ann = annotations[ep]
        events = [(f["frame_index"], r) for f in fs for r in _tool_calls(f[LANGUAGE_EVENTS])]
        says = [(k, r) for k, r in events if r["style"] is None]
        assert [c["function"]["arguments"]["text"] for _, r in says for c in r["tool_calls"]] == [
            d.robot_utterance for d in sorted(ann.dialogue, key=lambda d: d.t)
        ]
        assert [k for k, _ in says] == [round(d.t * ann.fps) for d in sorted(ann.dialogue, key=lambda d: d.t)]


def test_qas_and_contact_points_are_vqa_on_their_camera(by_episode, annotations, sizes):
    reach = 3  # 0.1 s at 30 fps
    for ep in EXPORTED:
        fs, ann = by_episode[ep], annotations[ep]
        for qa in ann.qa:
            _, answer = _near(fs, round(qa.t * ann.fps), "vqa", qa.camera, qa.question, reach)
            assert answer["value"] == qa.answer and answer.get("choices", []) == qa.choices
        for c in ann.contacts:
            _, answer = _near(fs, round(c.t * ann.fps), "vqa", c.camera, CONTACT_QUESTION, reach)
            assert answer == {
                "label": "contact",
                "point_format": "xy",
                "point": pixels((c.x, c.y), sizes[c.camera]),
            }


def test_boxes_of_every_kind_are_vqa_detections_of_their_track(by_episode, annotations, sizes):
    """Each keyframe group comes out on its camera, at its frame or moved (never past a neighbouring
    keyframe), with the track's box at the frame it landed on, in pixels of the camera frame."""
    from lerobot.annotations.steerable_pipeline.validator import classify_vqa_answer

    kinds = set()
    for ep in EXPORTED:
        fs, ann = by_episode[ep], annotations[ep]
        tracks = box_tracks(ann.boxes)
        groups: dict[tuple[str, str, int], list[str]] = {}
        for b in ann.boxes:
            groups.setdefault((b.camera, b.kind, round(b.t * ann.fps)), []).append(b.label)
        for (cam, kind, k), labels in groups.items():
            names = sorted(set(labels))
            question = BOX_QUESTIONS[kind].format(labels=f"the {', '.join(names)}")
            kk, answer = _near(
                fs, k, "vqa", cam, question + " Give each bounding box as [x1, y1, x2, y2] in pixels.", 15
            )
            assert classify_vqa_answer(answer) == "bbox"
            want = [
                pixels(interpolate_box(tracks[(cam, n, kind)], kk / ann.fps)[0], sizes[cam]) for n in names
            ]
            assert [d["bbox"] for d in answer["detections"]] == want
            assert [d["label"] for d in answer["detections"]] == names
            assert all(d["bbox_format"] == "xyxy" for d in answer["detections"])
            frames_of_kind = sorted(kf for c, kd, kf in groups if (c, kd) == (cam, kind))
            i = frames_of_kind.index(k)
            assert kk == k or (
                (i == 0 or frames_of_kind[i - 1] < kk)
                and (i + 1 == len(frames_of_kind) or kk < frames_of_kind[i + 1])
            )
            kinds.add(kind)
    assert kinds == set(BOX_QUESTIONS)


def test_trajectories_are_trace_events_in_pixels(by_episode, annotations, sizes):
    for ep in EXPORTED:
        fs, ann = by_episode[ep], annotations[ep]
        for tr in ann.trajectories:
            _, answer = _near(fs, round(tr.points[0][0] * ann.fps), "trace", tr.camera, TRACE_QUESTION, 3)
            assert answer["label"] == "gripper" and answer["point_format"] == "xy"
            assert answer["points"] == [pixels((x, y), sizes[tr.camera]) for _, x, y in tr.points]
            assert answer["timestamps"] == pytest.approx([t for t, _, _ in tr.points], abs=1e-4)


def test_lerobots_default_bindings_resolve_on_every_frame(frames):
    """One vqa (and one trace) pair per frame: `${vqa}` and the other default bindings never see two rows."""
    from lerobot.configs.recipe import MessageTurn, TrainingRecipe
    from lerobot.datasets.language_render import render_sample

    recipe = TrainingRecipe(
        messages=[
            MessageTurn(role="user", content="${vqa_query}", stream="high_level", if_present="vqa_query"),
            MessageTurn(
                role="assistant", content="${vqa}", stream="high_level", target=True, if_present="vqa"
            ),
            MessageTurn(role="assistant", content="${subtask}", stream="high_level", target=True),
        ]
    )
    answered = 0
    for i, f in enumerate(frames):
        out = render_sample(
            recipe=recipe,
            persistent=f[LANGUAGE_PERSISTENT],
            events=f[LANGUAGE_EVENTS],
            t=f["timestamp"],
            sample_idx=i,
        )
        answered += len(out["messages"]) == 3
    assert answered > 100


def _stage(exported: Path, staging: Path) -> None:
    """Our exported rows, put back into lerobot's staging layout (one JSONL per module)."""
    from lerobot.annotations.steerable_pipeline.staging import EpisodeStaging

    table = pq.read_table(next((exported / "data").rglob("*.parquet")))
    rows = table.select(["episode_index", "timestamp", LANGUAGE_PERSISTENT, LANGUAGE_EVENTS]).to_pylist()
    per_ep: dict[int, dict[str, list]] = {}
    for r in rows:
        mods = per_ep.setdefault(r["episode_index"], {"plan": None, "interjections": [], "vqa": []})
        if mods["plan"] is None:
            mods["plan"] = _tool_calls(r[LANGUAGE_PERSISTENT])
        for e in _tool_calls(r[LANGUAGE_EVENTS]):
            e["timestamp"] = r["timestamp"]
            mods["vqa" if e["style"] in ("vqa", "trace") else "interjections"].append(e)
    for ep, mods in per_ep.items():
        st = EpisodeStaging(staging, ep)
        for name, module_rows in mods.items():
            st.write(name, module_rows)


def test_lerobots_validator_accepts_the_rows(exported: Path, demo_root: Path, tmp_path: Path):
    from lerobot.annotations.steerable_pipeline.reader import iter_episodes
    from lerobot.annotations.steerable_pipeline.validator import StagingValidator

    _stage(exported, tmp_path / "staging")
    records = list(iter_episodes(exported))
    validator = StagingValidator(dataset_camera_keys=tuple(Dataset(demo_root).cameras))
    report = validator.validate(records, tmp_path / "staging")
    assert report.episodes_checked == 6
    assert report.ok, report.errors
    assert report.warnings == []
    styles = {
        e["style"]
        for p in (tmp_path / "staging").rglob("*.jsonl")
        for e in map(json.loads, p.read_text().splitlines())
    }
    assert {"subtask", "plan", "motion", "task_aug", "interjection", "vqa", "trace", None} <= styles


def test_lerobots_writer_places_the_same_rows(exported: Path, demo_copy: Path, tmp_path: Path):
    """lerobot's LanguageColumnsWriter, given our rows, writes exactly our per-frame lists."""
    from lerobot.annotations.steerable_pipeline.reader import iter_episodes
    from lerobot.annotations.steerable_pipeline.writer import LanguageColumnsWriter

    _stage(exported, tmp_path / "staging")
    LanguageColumnsWriter().write_all(list(iter_episodes(demo_copy)), tmp_path / "staging", demo_copy)
    theirs = pq.read_table(next((demo_copy / "data").rglob("*.parquet"))).to_pylist()
    ours = pq.read_table(next((exported / "data").rglob("*.parquet"))).to_pylist()
    assert len(theirs) == len(ours)
    for a, b in zip(ours, theirs, strict=True):
        for col in (LANGUAGE_PERSISTENT, LANGUAGE_EVENTS):
            assert _tool_calls(a[col]) == b[col], (a["episode_index"], a["frame_index"], col)


def test_off_grid_boundaries_start_on_the_first_frame_after(annotations, frames):
    ann = annotations[OFF_GRID_EPISODE]
    ts = {f["frame_index"]: f["timestamp"] for f in frames if f["episode_index"] == OFF_GRID_EPISODE}
    rows = next(f[LANGUAGE_PERSISTENT] for f in frames if f["episode_index"] == OFF_GRID_EPISODE)
    starts = {(r["content"], r["timestamp"]) for r in rows if r["style"] == "subtask"}  # a name may recur
    for seg in ann.segments[1:]:
        k = int(seg.start * ann.fps) + 1  # 0.4 frame past a frame: the next frame is the first inside
        assert (seg.name, ts[k]) in starts


def _replace(ann: EpisodeAnnotation, **changes) -> EpisodeAnnotation:
    return EpisodeAnnotation(**{**{f: getattr(ann, f) for f in ann.__struct_fields__}, **changes})


def _vqa_frames(lang) -> dict[str, int]:
    return {r[1]: k for k, r in lang.events if r[2] == "vqa" and r[0] == "user"}


def test_questions_on_one_frame_move_to_the_nearest_free_one(annotations, sizes):
    ann = annotations[0]
    cam = ann.qa[0].camera
    again = QA(t=ann.qa[0].t + 0.001, camera=cam, question="Again?", answer="no")
    warnings: list[str] = []
    lang = episode_rows(
        _replace(ann, qa=[ann.qa[0], again], contacts=[], boxes=[]),
        ann.n_frames,
        ann.fps,
        warnings.append,
        sizes,
    )
    k = round(ann.qa[0].t * ann.fps)
    assert _vqa_frames(lang) == {ann.qa[0].question: k, "Again?": k + 1}
    assert warnings == []


def test_a_question_with_no_free_frame_near_is_left_out_with_a_warning(annotations, sizes):
    ann = annotations[0]
    t = 4.0
    crowd = [QA(t=t, camera=ann.qa[0].camera, question=f"Q{i}?", answer="a") for i in range(8)]
    warnings: list[str] = []
    lang = episode_rows(
        _replace(ann, qa=crowd, contacts=[], boxes=[]), ann.n_frames, ann.fps, warnings.append, sizes
    )
    placed = _vqa_frames(lang)
    assert sorted(placed.values()) == list(range(117, 124))  # frame 120 and 3 frames (0.1 s) either side
    assert len(warnings) == 1 and "episode 0: qa[7] 'Q7?' at t=4.000 s" in warnings[0]
    assert "left out" in warnings[0]


def test_a_segment_without_motion_among_described_ones_warns(annotations, sizes):
    import msgspec

    ann = annotations[0]
    segs = [msgspec.structs.replace(ann.segments[0], motion=""), *ann.segments[1:]]
    warnings: list[str] = []
    episode_rows(_replace(ann, segments=segs), ann.n_frames, ann.fps, warnings.append, sizes)
    assert len(warnings) == 1 and f"segment 0 '{segs[0].name}' has no motion description" in warnings[0]
