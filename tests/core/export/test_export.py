"""export(): which episodes go out, bad input, the CLI, and the shared per-frame rule."""

from __future__ import annotations

import argparse
import itertools
import json
import subprocess
import sys
from pathlib import Path

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.annotations import Segment, segment_index_at
from core.dataset import Dataset
from core.export import FORMATS, ExportError, export
from core.export.base import frame_segment_indices
from core.export.cli import register, run

from .conftest import UNREVIEWED_EPISODE, write_store

REPO = Path(__file__).resolve().parents[3]


def _skills(out: Path) -> dict:
    return json.loads((out / "meta" / "skills.json").read_text())


def test_unreviewed_is_left_out_unless_asked(demo_root: Path, store_path: Path, tmp_path: Path):
    report = export(demo_root, store_path, "lerobot-subtasks", tmp_path / "a")
    assert report.episodes == 5
    assert str(UNREVIEWED_EPISODE) not in _skills(tmp_path / "a")["episodes"]
    report = export(demo_root, store_path, "lerobot-subtasks", tmp_path / "b", include_unreviewed=True)
    assert report.episodes == 6
    assert str(UNREVIEWED_EPISODE) in _skills(tmp_path / "b")["episodes"]


def _store_with(tmp_path: Path, ann) -> Path:
    return write_store(tmp_path / "bad.db", [ann])


def test_annotation_of_a_missing_episode_is_refused(demo_root: Path, annotations, tmp_path: Path):
    bad = msgspec.structs.replace(annotations[0], episode=99)
    store = _store_with(tmp_path, bad)
    with pytest.raises(ExportError, match=r"bad\.db.*episode 99 is not in the dataset"):
        export(demo_root, store, "lerobot-language", tmp_path / "out")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("fmt", FORMATS)
def test_items_on_a_camera_the_dataset_lacks_are_left_out_and_named(
    fmt: str, demo_root: Path, annotations, tmp_path: Path
):
    """The dataset no longer has the camera: each such item is named in a warning, the rest goes out."""
    ann = annotations[0]
    side = "observation.images.side"
    qa = [msgspec.structs.replace(ann.qa[0], camera=side), *ann.qa[1:]]
    boxes = [msgspec.structs.replace(ann.boxes[2], camera=side), *ann.boxes[:2], *ann.boxes[3:]]
    store = _store_with(tmp_path, msgspec.structs.replace(ann, qa=qa, boxes=boxes))
    report = export(demo_root, store, fmt, tmp_path / "out")
    assert report.episodes == 1 and (tmp_path / "out").is_dir()
    named = [w for w in report.warnings if side in w]
    assert len(named) == 2 and all("episode 0" in w and "left out" in w for w in named)
    assert any(f"qa[0] ('{ann.qa[0].question}'" in w for w in named)
    b = ann.boxes[2]
    assert any(f"boxes[0] ({b.kind} box '{b.label}' at t={b.t:.3f} s)" in w for w in named)
    if fmt in ("llava", "qwen"):
        records = json.loads((tmp_path / "out" / "annotations.json").read_text())
        assert records and all(r["source"]["camera"] in (None, *Dataset(demo_root).cameras) for r in records)
        assert ann.qa[0].question not in json.dumps(records) and ann.qa[1].question in json.dumps(records)


def test_annotation_of_another_length_is_refused(demo_root: Path, annotations, tmp_path: Path):
    ann = annotations[0]
    segs = [*ann.segments[:-1], msgspec.structs.replace(ann.segments[-1], end=ann.duration + 1)]
    store = _store_with(tmp_path, msgspec.structs.replace(ann, duration=ann.duration + 1, segments=segs))
    with pytest.raises(ExportError, match="episode 0: duration"):
        export(demo_root, store, "lerobot-subtasks", tmp_path / "out")


def test_missing_store_unknown_format_and_v21_dataset(demo_root: Path, store_path: Path, tmp_path: Path):
    with pytest.raises(ExportError, match="no such store"):
        export(demo_root, tmp_path / "nope.db", "lerobot-language", tmp_path / "out")
    with pytest.raises(ExportError, match="format 'csv' is not known"):
        export(demo_root, store_path, "csv", tmp_path / "out")
    v21 = tmp_path / "old"
    (v21 / "meta").mkdir(parents=True)
    info = {"codebase_version": "v2.1", "fps": 30, "features": {}, "data_path": "data/x.parquet"}
    (v21 / "meta" / "info.json").write_text(json.dumps(info))
    (v21 / "meta" / "episodes.jsonl").write_text('{"episode_index": 0, "length": 3, "tasks": ["t"]}\n')
    with pytest.raises(ExportError, match=r"needs a LeRobot v3\.0 dataset"):
        export(v21, store_path, "lerobot-subtasks", tmp_path / "out")
    assert not (tmp_path / "out").exists()


def _parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="robo-annotate")
    register(parser.add_subparsers(dest="command", required=True))
    return parser.parse_args(argv)


def test_cli_exports_and_reports_errors(demo_root: Path, store_path: Path, tmp_path: Path, capsys):
    out = tmp_path / "out"
    args = _parse(
        [
            "export",
            str(demo_root),
            "--store",
            str(store_path),
            "--format",
            "lerobot-language",
            "--out",
            str(out),
        ]
    )
    assert args.func is run
    assert run(args) == 0
    assert "lerobot-language: 5 annotated episode(s)" in capsys.readouterr().out
    assert run(args) == 1
    assert "already exists; use --force" in capsys.readouterr().err
    args = _parse(
        [
            "export",
            str(demo_root),
            "--store",
            str(store_path),
            "--format",
            "lerobot-subtasks",
            "--out",
            str(out),
            "--force",
            "--include-unreviewed",
        ]
    )
    assert run(args) == 0
    assert str(UNREVIEWED_EPISODE) in _skills(out)["episodes"]


def test_robo_annotate_export_is_the_command(demo_root: Path, store_path: Path, tmp_path: Path):
    """The documented command line, as a user runs it: `robo-annotate export ...` in its own process."""
    out = tmp_path / "llava"
    cmd = [sys.executable, "-m", "app.cli", "export", str(demo_root), "--store", str(store_path)]
    done = subprocess.run(
        [*cmd, "--format", "llava", "--out", str(out)], capture_output=True, text=True, cwd=REPO, timeout=300
    )
    assert done.returncode == 0, done.stderr
    assert "export llava" in done.stderr  # the progress bar
    assert (out / "README.md").is_file() and not list(tmp_path.glob(".llava*"))
    again = subprocess.run(
        [*cmd, "--format", "llava", "--out", str(out)], capture_output=True, text=True, cwd=REPO, timeout=300
    )
    assert again.returncode == 1 and "already exists; use --force" in again.stderr


def test_cli_takes_the_qwen_pixel_budget(demo_root: Path, store_path: Path, tmp_path: Path, capsys):
    out = tmp_path / "qwen"
    argv = ["export", str(demo_root), "--store", str(store_path), "--format", "qwen", "--out", str(out)]
    assert run(_parse([*argv, "--min-pixels", "3136", "--max-pixels", "50176", "--quiet"])) == 0
    info = json.loads((out / "export.json").read_text())
    assert info["pixel_budget"] == {"min_pixels": 3136, "max_pixels": 50176}
    assert "--min_pixels 3136 --max_pixels 50176" in (out / "README.md").read_text()
    bad = [*argv, "--force", "--max-pixels", "100", "--quiet"]
    assert run(_parse(bad)) == 1
    assert "--max-pixels 100: too small for any image" in capsys.readouterr().err
    assert info == json.loads((out / "export.json").read_text())  # the refused export left it as it was
    llava = [
        "export",
        str(demo_root),
        "--store",
        str(store_path),
        "--format",
        "llava",
        "--out",
        str(tmp_path / "l"),
    ]
    assert run(_parse([*llava, "--max-pixels", "50176", "--quiet"])) == 1
    assert "only the qwen export has a pixel budget" in capsys.readouterr().err


def test_cli_offers_every_format():
    for fmt in FORMATS:
        assert _parse(["export", "d", "--store", "s", "--format", fmt, "--out", "o"]).format == fmt
    with pytest.raises(SystemExit):
        _parse(["export", "d", "--store", "s", "--format", "csv", "--out", "o"])


@st.composite
def covers(draw):
    fps = draw(st.sampled_from([10.0, 15.0, 30.0, 29.97, 50.0]))
    n = draw(st.integers(1, 200))
    duration = n / fps
    cuts = sorted(set(draw(st.lists(st.floats(0.001, duration - 0.001), max_size=8))))
    if draw(st.booleans()):
        cuts = sorted({round(c * fps) / fps for c in cuts} - {0.0, duration})
    bounds = [0.0, *cuts, duration]
    segs = [
        Segment(name=f"s{i}", start=a, end=b) for i, (a, b) in enumerate(itertools.pairwise(bounds)) if b > a
    ]
    return segs, n, fps


@settings(max_examples=200, deadline=None)
@given(covers())
def test_frame_segment_indices_is_segment_index_at(case):
    segs, n, fps = case
    got = frame_segment_indices(segs, n, fps)
    want = [segment_index_at(segs, k / fps) for k in range(n)]
    assert got.tolist() == [-1 if w is None else w for w in want]


@pytest.mark.parametrize("fmt", ["lerobot-language", "lerobot-subtasks", "llava"])
def test_a_dataset_with_no_annotations_exports_empty_and_warns(
    fmt: str, demo_copy: Path, store_path: Path, tmp_path: Path
):
    """The store's annotations are of the demo's own name; this copy ('demo') has none."""
    report = export(demo_copy, store_path, fmt, tmp_path / "out")
    assert report.episodes == 0
    assert len(report.warnings) == 1 and "no accepted annotations of dataset 'demo'" in report.warnings[0]
    if fmt == "llava":
        assert json.loads((tmp_path / "out" / "annotations.json").read_text()) == []
        return
    pytest.importorskip("lerobot")
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    hf = LeRobotDataset("robo-annotate/empty", root=tmp_path / "out").hf_dataset.with_format(None)
    if fmt == "lerobot-subtasks":
        assert set(hf["subtask_index"]) == {-1}
        assert "task_index_high_level" not in hf.column_names
    else:
        assert all(rows == [] for rows in hf["language_persistent"])


def test_unreadable_stored_annotation_is_a_clear_error(demo_root: Path, store_path: Path, tmp_path: Path):
    import shutil
    import sqlite3

    bad = tmp_path / "bad.db"
    shutil.copy(store_path, bad)
    with sqlite3.connect(bad) as conn:
        conn.execute("UPDATE revisions SET data = x'c1' WHERE episode = 2")
    with pytest.raises(ExportError, match=r"bad\.db: a stored annotation of .* cannot be read"):
        export(demo_root, bad, "lerobot-language", tmp_path / "out")
    assert not (tmp_path / "out").exists()
