"""Bad input: a clear message naming the file, field or episode; nothing half-stored; the rest imported."""

from __future__ import annotations

import itertools
import json
import shutil
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from core.annotations import COVER_TOLERANCE
from core.imports import ImportFileError, import_dataset
from core.store import Store

from .conftest import EXPORTED

pytest.importorskip("lerobot")


def _skills(subtasks_export: Path) -> dict:
    return json.loads((subtasks_export / "meta" / "skills.json").read_text())


def _write(tmp_path: Path, doc: dict | str, name: str = "skills.json") -> Path:
    path = tmp_path / name
    path.write_text(doc if isinstance(doc, str) else json.dumps(doc))
    return path


def _heads(store: Path, dataset: str) -> dict:
    with Store(store, readonly=True) as s:
        return {h.episode: s.head(dataset, h.episode) for h in s.heads(dataset)}


def _assert_nothing_stored(store: Path) -> None:
    if store.exists():
        with Store(store, readonly=True) as s:
            assert s.counts() == {}


def test_skills_json_naming_episodes_the_dataset_lacks(
    demo_root: Path, subtasks_export: Path, tmp_path: Path
):
    doc = _skills(subtasks_export)
    doc["episodes"]["42"] = {**doc["episodes"]["0"], "episode_index": 42}
    doc["episodes"]["99"] = {**doc["episodes"]["0"], "episode_index": 99}
    store = tmp_path / "a.db"
    report = import_dataset(demo_root, store, skills=_write(tmp_path, doc))
    text = report.format()
    assert "names episode(s) 42, 99 that the dataset" in text and "they are not imported" in text
    assert sorted(report.stored) == list(EXPORTED)  # the rest is imported
    assert sorted(_heads(store, demo_root.name)) == list(EXPORTED)


@pytest.mark.parametrize(
    "content, where",
    [
        ("{not json", "not valid JSON"),
        ('{"episodes": []}', "$.episodes"),
        (
            '{"episodes": {"0": {"skills": [{"name": "reach", "start": 0, "end": 1}, {"name": "lift", "start": "soon", "end": 2}]}}}',
            "$.episodes['0'].skills[1].start",
        ),
        ('{"episodes": {"0": {"skills": [{"name": "reach", "start": 0}]}}}', "$.episodes['0'].skills[0]"),
        ('{"episodes": {"first": {"skills": []}}}', "episodes['first']"),
        (
            '{"episodes": {"0": {"skills": [{"name": " ", "start": 0, "end": 1}]}}}',
            "episodes['0'].skills[0].name",
        ),
    ],
)
def test_a_malformed_skills_json_names_the_file_and_field(
    demo_root: Path, tmp_path: Path, content: str, where: str
):
    path = _write(tmp_path, content)
    store = tmp_path / "a.db"
    with pytest.raises(ImportFileError) as err:
        import_dataset(demo_root, store, skills=path)
    assert str(err.value).startswith(str(path)) and where in str(err.value)
    _assert_nothing_stored(store)


def _copy(subtasks_export: Path, tmp_path: Path) -> Path:
    out = tmp_path / "copy"
    shutil.copytree(subtasks_export, out)
    return out


def test_a_malformed_parquet_names_the_file_and_field(subtasks_export: Path, tmp_path: Path):
    ds = _copy(subtasks_export, tmp_path)
    store = tmp_path / "a.db"
    high = ds / "meta" / "tasks_high_level.parquet"
    table = pq.read_table(high)
    pq.write_table(table.drop_columns(["user_prompt"]), high)
    with pytest.raises(ImportFileError, match=r"tasks_high_level\.parquet: missing column 'user_prompt'"):
        import_dataset(ds, store)
    strings = table.set_column(
        0, "task_index", pa.array([str(v) for v in table.column("task_index").to_pylist()])
    )
    pq.write_table(strings, high)
    with pytest.raises(ImportFileError, match=r"tasks_high_level\.parquet: column 'task_index' is string"):
        import_dataset(ds, store)
    pq.write_table(table, high)
    (ds / "meta" / "subtasks.parquet").write_bytes(b"PAR1 this is not parquet")
    with pytest.raises(ImportFileError, match=r"subtasks\.parquet: not a readable parquet file"):
        import_dataset(ds, store)
    _assert_nothing_stored(store)


def test_a_malformed_syn_annotations_line_names_the_line(subtasks_export: Path, tmp_path: Path):
    ds = _copy(subtasks_export, tmp_path)
    path = ds / "meta" / "syn_annotations.jsonl"
    lines = path.read_text().splitlines()
    lines[2] = json.dumps({**json.loads(lines[2]), "episode_id": "zero"})
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(ImportFileError, match=r"syn_annotations\.jsonl:3: field 'episode_id' = 'zero'"):
        import_dataset(ds, tmp_path / "a.db")


def test_unknown_dialogue_types_fall_back_with_a_note(subtasks_export: Path, tmp_path: Path):
    """A generator's free-text scenario type is not lost silently: the default is used and said."""
    ds = _copy(subtasks_export, tmp_path)
    high = ds / "meta" / "tasks_high_level.parquet"
    table = pq.read_table(high)
    values = ["polite_request"] + table.column("scenario_type").to_pylist()[1:]
    pq.write_table(
        table.set_column(table.column_names.index("scenario_type"), "scenario_type", pa.array(values)), high
    )
    report = import_dataset(ds, tmp_path / "a.db")
    assert "scenario_type 'polite_request' is not one of" in report.format()
    assert sorted(report.stored) == list(EXPORTED)


def test_an_empty_source_is_said_and_stores_nothing(demo_root: Path, tmp_path: Path):
    store = tmp_path / "a.db"
    path = _write(tmp_path, {"coarse_description": "", "skill_to_subtask_index": {}, "episodes": {}})
    report = import_dataset(demo_root, store, skills=path)
    text = report.format()
    assert f"{path}: present but empty (no annotations in it)" in text
    assert "nothing stored" in text and report.stored == []
    _assert_nothing_stored(store)


def test_a_dataset_with_nothing_to_import_is_an_error(demo_root: Path, tmp_path: Path):
    with pytest.raises(ImportFileError, match=r"nothing to import: no meta/skills\.json"):
        import_dataset(demo_root, tmp_path / "a.db")
    with pytest.raises(ImportFileError, match=r"missing\.json: no such file \(--skills\)"):
        import_dataset(demo_root, tmp_path / "a.db", skills=tmp_path / "missing.json")
    with pytest.raises(ImportFileError, match="--author 'two words'"):
        import_dataset(demo_root, tmp_path / "a.db", skills=tmp_path / "missing.json", author="two words")


def test_spans_that_overlap_leave_gaps_or_overrun_are_repaired_and_reported(
    demo_root: Path, subtasks_export: Path, tmp_path: Path
):
    doc = _skills(subtasks_export)
    eps = doc["episodes"]
    overlap, gap, late, over = (eps[str(e)]["skills"] for e in (0, 1, 2, 4))
    overlap[1]["start"] -= 0.3  # starts 0.3 s before the previous one ends
    gap[2]["start"] += 0.4  # leaves 0.4 s uncovered
    late[0]["start"] = 0.5  # the first starts late
    over[-1]["end"] += 5.0  # runs past the episode's end
    store = tmp_path / "a.db"
    report = import_dataset(demo_root, store, skills=_write(tmp_path, doc))
    text = report.format()
    assert "episode 0: spans overlap at" in text and "episode 1: spans leave a gap at" in text
    assert "episode 2: the first span starts at 0.500 s, not 0" in text
    assert "episode 4: the last span ends at" in text and "after the episode's end" in text
    assert text.count("repaired into a gap-free cover") == 4
    heads = _heads(store, demo_root.name)
    assert sorted(heads) == list(EXPORTED)
    for ep, ann in heads.items():
        segs = ann.segments
        assert segs[0].start == 0.0 and abs(segs[-1].end - ann.duration) <= COVER_TOLERANCE
        assert all(abs(a.end - b.start) <= COVER_TOLERANCE for a, b in itertools.pairwise(segs))
        assert [s.name for s in segs] == [s["name"] for s in eps[str(ep)]["skills"]]
    # The overlap is split at its midpoint, on the frame grid.
    mid = (overlap[0]["end"] + overlap[1]["start"]) / 2
    assert abs(heads[0].segments[0].end - mid) <= 0.5 / heads[0].fps + 1e-9
    # Episode 3 was a cover: kept to the last bit.
    assert [(s.name, s.start, s.end) for s in heads[3].segments] == [
        (s["name"], s["start"], s["end"]) for s in eps["3"]["skills"]
    ]
