"""Language rows our model has no slot for, or that do not pair up, are counted or named, never fatal."""

from __future__ import annotations

import shutil
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from core.imports import ImportFileError, import_dataset
from core.store import Store

from .conftest import EXPORTED

pytest.importorskip("lerobot")


def _string_tool_calls(t: pa.DataType) -> pa.DataType:
    """The language row type with tool calls as plain strings (lerobot's type on an older pyarrow)."""
    row = t.value_type
    fields = [
        pa.field(f.name, pa.list_(pa.string()) if f.name == "tool_calls" else f.type, f.nullable) for f in row
    ]
    return pa.list_(pa.struct(fields))


def _rewrite(ds: Path, edit) -> None:
    """Apply `edit(frame_row_dict)` to every row of the data file and write it back."""
    path = next((ds / "data").rglob("*.parquet"))
    table = pq.read_table(path)
    rows = table.to_pylist()
    for row in rows:
        edit(row)
    schema = pa.schema(
        [
            pa.field(f.name, _string_tool_calls(f.type)) if f.name.startswith("language_") else f
            for f in table.schema
        ]
    )
    pq.write_table(pa.Table.from_pylist(rows, schema=schema), path)


def test_rows_without_a_slot_or_a_partner_are_reported(language_export: Path, tmp_path: Path):
    ds = tmp_path / "ds"
    shutil.copytree(language_export, ds)
    say = '{"type": "function", "function": {"name": "say", "arguments": "{\\"text\\": \\"Hello!\\"}"}}'

    def edit(row: dict) -> None:
        if row["episode_index"] != 0:
            return
        row["language_persistent"].append(
            {
                "role": "assistant",
                "content": "cup grasped",
                "style": "memory",
                "timestamp": 0.0,
                "camera": None,
            }
        )
        if row["frame_index"] == 5:  # lerobot's initial speech: a say with no interjection
            row["language_events"] += [
                {"role": "assistant", "content": None, "style": None, "tool_calls": [say]}
            ]
        if row["frame_index"] == 7:  # an interjection nobody answered
            row["language_events"] += [{"role": "user", "content": "Stop!", "style": "interjection"}]
        if row["frame_index"] == 8:  # a camera the dataset does not have
            row["language_events"] += [
                {
                    "role": "user",
                    "content": "What is this?",
                    "style": "vqa",
                    "camera": "observation.images.side",
                },
                {
                    "role": "assistant",
                    "content": "a cup",
                    "style": "vqa",
                    "camera": "observation.images.side",
                },
            ]
        if row["frame_index"] == 9:  # lerobot's say with OpenAI-style string arguments, answered
            row["language_events"] += [
                {"role": "assistant", "content": None, "style": None, "tool_calls": [say]},
                {"role": "user", "content": "Hi robot", "style": "interjection"},
            ]

    _rewrite(ds, edit)
    store = tmp_path / "a.db"
    report = import_dataset(ds, store)
    text = report.format()
    assert "memory rows (no slot in our model, not imported)" in text
    assert "episode 0 t=0.167 s: 0 interjection(s) and 1 say call(s)" in text
    assert "episode 0 t=0.233 s: 1 interjection(s) and 0 say call(s)" in text
    assert "camera 'observation.images.side', which the dataset does not have" in text
    assert sorted(report.stored) == list(EXPORTED)
    with Store(store, readonly=True) as s:
        turns = s.head("ds", 0).dialogue
    assert ("Hi robot", "Hello!") in [(d.user_prompt, d.robot_utterance) for d in turns]


def test_a_language_column_of_another_type_names_the_file(language_export: Path, tmp_path: Path):
    ds = tmp_path / "ds"
    shutil.copytree(language_export, ds)
    path = next((ds / "data").rglob("*.parquet"))
    table = pq.read_table(path)
    i = table.column_names.index("language_events")
    pq.write_table(table.set_column(i, "language_events", pa.array(["x"] * table.num_rows)), path)
    with pytest.raises(ImportFileError, match=r"file-000\.parquet: column 'language_events' is string"):
        import_dataset(ds, tmp_path / "a.db")
