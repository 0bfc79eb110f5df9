"""lerobot-language: checked against lerobot 0.6's own schema, validator, writer and loader."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from core.annotations import QA, EpisodeAnnotation, frame_time, segment_at
from core.export import export
from core.export.lerobot_language import (
    HF_FEATURES,
    LANGUAGE_EVENTS,
    LANGUAGE_FEATURES,
    LANGUAGE_PERSISTENT,
    SAY_TOOL_SCHEMA,
    episode_rows,
    event_row_type,
    persistent_row_type,
)

from .conftest import OFF_GRID_EPISODE, UNREVIEWED_EPISODE

pytest.importorskip("lerobot")


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


def _tool_calls(rows: list[dict]) -> list[dict]:
    """Rows with JSON-string tool calls parsed (pyarrow returns the JSON type's text)."""
    out = []
    for r in rows:
        r = dict(r)
        if r.get("tool_calls") is not None:
            r["tool_calls"] = [json.loads(c) if isinstance(c, str) else c for c in r["tool_calls"]]
        out.append(r)
    return out


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


def test_every_frame_has_the_subtask_of_its_time(frames, annotations):
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
        row = active_at(f["timestamp"], persistent=f[LANGUAGE_PERSISTENT], style="subtask")
        assert row is not None and row["content"] == want.name, (ep, f["frame_index"])
        plan = active_at(f["timestamp"], persistent=f[LANGUAGE_PERSISTENT], style="plan")
        assert plan["content"].splitlines()[0] == f"1. {want.name}"
        if f["frame_index"] == ann.n_frames - 1:
            assert want is ann.segments[-1]
        seen_boundaries += any(abs(t - s.start) < 1 / ann.fps for s in ann.segments[1:])
    assert seen_boundaries > 0


def test_persistent_rows_broadcast_and_events_on_exact_frames(frames, annotations):
    by_ep: dict[int, list[dict]] = {}
    for f in frames:
        by_ep.setdefault(f["episode_index"], []).append(f)
    for ep, fs in by_ep.items():
        if ep == UNREVIEWED_EPISODE:
            continue
        first = fs[0][LANGUAGE_PERSISTENT]
        assert all(f[LANGUAGE_PERSISTENT] == first for f in fs)
        stamps = {f["timestamp"] for f in fs}
        assert all(r["timestamp"] in stamps for r in first)
        ann = annotations[ep]
        events = [(f["frame_index"], r) for f in fs for r in f[LANGUAGE_EVENTS]]
        says = [r for _, r in events if r["style"] is None]
        assert [c["function"]["arguments"]["text"] for r in says for c in r["tool_calls"]] == [
            d.robot_utterance for d in sorted(ann.dialogue, key=lambda d: d.t)
        ]
        vqa = [(k, r) for k, r in events if r["style"] == "vqa"]
        assert len(vqa) == 2 * len(ann.qa)
        for qa in ann.qa:
            k = round(qa.t * ann.fps)
            answer = next(
                r for kk, r in vqa if kk == k and r["role"] == "assistant" and r["camera"] == qa.camera
            )
            assert json.loads(answer["content"])["value"] == qa.answer


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
            mods["vqa" if e["style"] == "vqa" else "interjections"].append(e)
    for ep, mods in per_ep.items():
        st = EpisodeStaging(staging, ep)
        for name, module_rows in mods.items():
            st.write(name, module_rows)


def test_lerobots_validator_accepts_the_rows(exported: Path, demo_root: Path, tmp_path: Path):
    from lerobot.annotations.steerable_pipeline.reader import iter_episodes
    from lerobot.annotations.steerable_pipeline.validator import StagingValidator

    from core.dataset import Dataset

    _stage(exported, tmp_path / "staging")
    records = list(iter_episodes(exported))
    validator = StagingValidator(dataset_camera_keys=tuple(Dataset(demo_root).cameras))
    report = validator.validate(records, tmp_path / "staging")
    assert report.episodes_checked == 6
    assert report.ok, report.errors
    assert report.warnings == []


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


def test_two_qas_on_one_frame_and_camera_keep_the_first_and_warn(annotations):
    ann = annotations[0]
    cam = ann.qa[0].camera
    extra = QA(t=ann.qa[0].t + 0.001, camera=cam, question="Again?", answer="no")
    warnings: list[str] = []
    lang = episode_rows(
        EpisodeAnnotation(
            **{**{f: getattr(ann, f) for f in ann.__struct_fields__}, "qa": [ann.qa[0], extra]}
        ),
        ann.n_frames,
        ann.fps,
        warnings.append,
    )
    vqa = [r for _, r in lang.events if r[2] == "vqa"]
    assert len(vqa) == 2 and "Again?" not in [r[1] for r in vqa]
    assert len(warnings) == 1 and "already has a QA" in warnings[0]
