"""Export then import gives back the same annotations, within what each format can hold.

`lerobot-subtasks` carries segments (exact times), the task and dialogue (every
field; a turn lands on its nearest frame). `lerobot-language` carries segments
(each starting on the first frame it covers), motion, task phrasings, dialogue
(prompt and reply on the nearest frame; no skill or types: the skill comes back as
the subtask active then), QAs, boxes of every kind, contact points (a question
may move up to 0.1 s, a box up to 0.5 s, read off its track) and trajectories;
coordinates go through whole pixels of the camera frame.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from core.annotations import EpisodeAnnotation, box_tracks, interpolate_box, segment_at
from core.dataset import Dataset
from core.export.language_grounding import INSTANT_WINDOW_S, TRACK_WINDOW_S
from core.imports import import_dataset
from core.store import Store

from .conftest import EXPORTED

pytest.importorskip("lerobot")


def _heads(store: Path, dataset: str) -> dict[int, EpisodeAnnotation]:
    with Store(store, readonly=True) as s:
        return {h.episode: s.head(dataset, h.episode) for h in s.heads(dataset)}


def _half_frame(fps: float) -> float:
    return 0.5 / fps + 1e-9


def _check_common(got: EpisodeAnnotation, want: EpisodeAnnotation, author: str = "import") -> None:
    assert (got.duration, got.fps, got.task) == (want.duration, want.fps, want.task)
    assert got.origin.startswith("imported from ")
    items = [*got.segments, *got.dialogue, *got.qa, *got.boxes, *got.contacts, *got.trajectories]
    assert items and all(i.source == f"human:{author}" for i in items)


def _check_turns_timing(got: EpisodeAnnotation, want: EpisodeAnnotation) -> None:
    assert len(got.dialogue) == len(want.dialogue)
    for g, w in zip(got.dialogue, sorted(want.dialogue, key=lambda d: d.t), strict=True):
        assert (g.user_prompt, g.robot_utterance) == (w.user_prompt, w.robot_utterance)
        assert abs(g.t - w.t) <= _half_frame(want.fps)
        assert abs(g.t * want.fps - round(g.t * want.fps)) < 1e-6  # on the frame grid


def test_lerobot_subtasks_round_trip(subtasks_export: Path, annotations, tmp_path: Path):
    store = tmp_path / "a.db"
    report = import_dataset(subtasks_export, store)
    assert sorted(report.stored) == list(EXPORTED) and not report.failed
    heads = _heads(store, "out")
    assert sorted(heads) == list(EXPORTED)
    for ep in EXPORTED:
        got, want = heads[ep], annotations[ep]
        _check_common(got, want)
        assert got.review == "unreviewed"
        # skills.json keeps the times exactly (even episode 1's, off the frame grid).
        assert [(s.name, s.start, s.end) for s in got.segments] == [
            (s.name, s.start, s.end) for s in want.segments
        ]
        assert all(s.motion == "" for s in got.segments)  # this format has no motion
        _check_turns_timing(got, want)
        for g, w in zip(got.dialogue, sorted(want.dialogue, key=lambda d: d.t), strict=True):
            assert (g.skill, g.scenario_type, g.response_type) == (w.skill, w.scenario_type, w.response_type)
        assert got.task_aug == [] and got.qa == got.boxes == got.contacts == got.trajectories == []
    text = report.format()
    assert "meta/skills.json: 5 episode(s)" in text
    assert "used: dialogue of 5 episode(s)" in text


def test_lerobot_language_round_trip(language_export: Path, annotations, tmp_path: Path):
    store = tmp_path / "a.db"
    report = import_dataset(language_export, store)
    assert sorted(report.stored) == list(EXPORTED) and not report.failed
    assert not [n for s in report.sources for n in s.notes]  # nothing repaired or left out
    heads = _heads(store, "out")
    sizes = {cam: Dataset(language_export).camera_shape(cam) for cam in Dataset(language_export).cameras}
    for ep in EXPORTED:
        got, want = heads[ep], annotations[ep]
        fps = want.fps
        _check_common(got, want)
        # Segments: names, motion; each starts on the first frame it covers.
        assert [(s.name, s.motion) for s in got.segments] == [(s.name, s.motion) for s in want.segments]
        for g, w in zip(got.segments, want.segments, strict=True):
            assert -1e-6 <= g.start - w.start < 1 / fps
            assert abs(g.start * fps - round(g.start * fps)) < 1e-6
        assert got.segments[-1].end == want.duration
        assert got.task_aug == want.task_aug
        _check_turns_timing(got, want)
        for turn in got.dialogue:  # no slot for the skill: the subtask active then
            assert turn.skill == segment_at(got.segments, turn.t).name
        # QAs: every field, within the window a question may move.
        assert len(got.qa) == len(want.qa)
        for w in want.qa:
            g = next(q for q in got.qa if (q.camera, q.question) == (w.camera, w.question))
            assert (g.answer, g.kind, g.choices) == (w.answer, w.kind, w.choices)
            assert abs(g.t - w.t) <= INSTANT_WINDOW_S + _half_frame(fps)
        # Contact points: within half a pixel.
        assert len(got.contacts) == len(want.contacts)
        for g, w in zip(
            sorted(got.contacts, key=lambda c: (c.camera, c.t)),
            sorted(want.contacts, key=lambda c: (c.camera, c.t)),
            strict=True,
        ):
            h, wd = sizes[w.camera]
            assert g.camera == w.camera and abs(g.t - w.t) <= INSTANT_WINDOW_S + _half_frame(fps)
            assert abs(g.x - w.x) <= 0.5 / wd + 1e-9 and abs(g.y - w.y) <= 0.5 / h + 1e-9
        # Boxes: every track of every kind, keyframe for keyframe, each on its track within half a pixel.
        got_tracks, want_tracks = box_tracks(got.boxes), box_tracks(want.boxes)
        assert {k: len(v) for k, v in got_tracks.items()} == {k: len(v) for k, v in want_tracks.items()}
        assert {k[2] for k in got_tracks} == {"current", "final", "contact", "gripper"}
        for key, frames in got_tracks.items():
            h, wd = sizes[key[0]]
            for g in frames:
                assert min(abs(g.t - w.t) for w in want_tracks[key]) <= TRACK_WINDOW_S + _half_frame(fps)
                value, _ = interpolate_box(want_tracks[key], g.t)
                for a, b, px in zip(g.xyxy, value, (wd, h, wd, h), strict=True):
                    assert abs(a - b) <= 0.5 / px + 1e-6, (ep, key, g.t)
        # Trajectories: every point, timestamps to 0.1 ms, positions within half a pixel.
        assert sorted(t.camera for t in got.trajectories) == sorted(t.camera for t in want.trajectories)
        for w in want.trajectories:
            g = next(t for t in got.trajectories if t.camera == w.camera)
            h, wd = sizes[w.camera]
            assert len(g.points) == len(w.points)
            for (gt, gx, gy), (wt, wx, wy) in zip(g.points, w.points, strict=True):
                assert (
                    abs(gt - wt) <= 5e-5
                    and abs(gx - wx) <= 0.5 / wd + 1e-9
                    and abs(gy - wy) <= 0.5 / h + 1e-9
                )
    text = report.format()
    assert "language_persistent: 5 episode(s)" in text and "language_events: 5 episode(s)" in text
    assert "plan rows (derived from the subtasks, not imported)" in text


def test_both_formats_in_one_dataset_take_each_kind_from_the_source_that_knows_it_best(
    subtasks_export: Path, language_export: Path, annotations, tmp_path: Path
):
    """skills.json's exact times and the dialogue tables' types, with the language columns' other kinds."""
    both = tmp_path / "both"
    shutil.copytree(language_export, both)
    for name in ("skills.json", "subtasks.parquet", "tasks_high_level.parquet", "syn_annotations.jsonl"):
        shutil.copy(subtasks_export / "meta" / name, both / "meta" / name)
    store = tmp_path / "a.db"
    report = import_dataset(both, store)
    heads = _heads(store, "both")
    for ep in EXPORTED:
        got, want = heads[ep], annotations[ep]
        assert [(s.name, s.start, s.end, s.motion) for s in got.segments] == [
            (s.name, s.start, s.end, s.motion) for s in want.segments
        ]
        assert [(d.skill, d.response_type) for d in got.dialogue] == [
            (d.skill, d.response_type) for d in sorted(want.dialogue, key=lambda d: d.t)
        ]
        assert got.task_aug == want.task_aug and len(got.boxes) == len(want.boxes)
    text = report.format()
    assert "not used: segments of 5 episode(s) (meta/skills.json's are taken)" in text
    # The language export's data files have no task_index_high_level: the turns' times come from the jsonl.
    assert "turns with no time (not imported)" in text
    assert "not used: dialogue of 5 episode(s) (meta/syn_annotations.jsonl's are taken)" in text
    assert heads[0].origin == (
        "imported from meta/skills.json, language_persistent, meta/syn_annotations.jsonl, language_events"
    )


def test_robo_backend_import_is_the_command(subtasks_export: Path, annotations, tmp_path: Path):
    """The real CLI in a subprocess: summary per source, the count stored, accepted revisions by the author."""
    exe = shutil.which("robo-backend", path=os.path.dirname(sys.executable)) or "robo-backend"
    store = tmp_path / "a.db"
    cmd = [exe, "import", str(subtasks_export), "--store", str(store), "--accept", "--author", "alice"]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    n_segments = sum(len(annotations[ep].segments) for ep in EXPORTED)
    assert f"meta/skills.json: 5 episode(s): {n_segments} segments, 5 tasks" in out.stdout
    assert "meta/tasks_high_level.parquet + per-frame task_index_high_level: 5 episode(s)" in out.stdout
    assert "stored 5 episode(s) as revisions by human:alice, skipped 0" in out.stdout
    with Store(store, readonly=True) as s:
        assert [a.episode for a in s.accepted("out")] == list(EXPORTED)
        assert {r.author for ep in EXPORTED for r in s.history("out", ep)} == {"human:alice"}
    bad = tmp_path / "skills.json"
    bad.write_text("{not json")
    out = subprocess.run([*cmd, "--skills", str(bad)], capture_output=True, text=True, timeout=120)
    assert out.returncode == 1 and f"{bad}: not valid JSON" in out.stderr


def test_without_skills_json_the_per_frame_subtask_index_gives_the_segments(
    subtasks_export: Path, annotations, tmp_path: Path
):
    ds = tmp_path / "no-skills"
    shutil.copytree(subtasks_export, ds)
    (ds / "meta" / "skills.json").unlink()
    store = tmp_path / "a.db"
    report = import_dataset(ds, store)
    assert "meta/subtasks.parquet + per-frame subtask_index: 5 episode(s)" in report.format()
    heads = _heads(store, "no-skills")
    for ep in EXPORTED:
        got, want = heads[ep], annotations[ep]
        assert [s.name for s in got.segments] == [s.name for s in want.segments]
        for g, w in zip(got.segments, want.segments, strict=True):
            assert -1e-6 <= g.start - w.start < 1 / want.fps  # the first frame the segment covers
        assert got.task == want.task  # the dataset's own task


def test_syn_annotations_gives_the_turns_the_per_frame_column_cannot_show(
    demo_root: Path, annotations, tmp_path: Path
):
    """The same turn said twice in a row has one task_index_high_level: only the jsonl tells them apart."""
    import msgspec

    from core.export import export
    from tests.fixtures.export_truth import write_store

    ann = annotations[0]
    again = msgspec.structs.replace(ann.dialogue[0], t=1.0)
    twice = msgspec.structs.replace(ann, dialogue=[ann.dialogue[0], again, *ann.dialogue[1:]])
    out = tmp_path / "out"
    export(demo_root, write_store(tmp_path / "src.db", [twice]), "lerobot-subtasks", out)
    store = tmp_path / "a.db"
    report = import_dataset(out, store)
    text = report.format()
    assert "episode(s) 0: more turns here than task_index_high_level shows; these are taken" in text
    assert "not used: dialogue of 1 episode(s) (meta/syn_annotations.jsonl's are taken)" in text
    got = _heads(store, "out")[0]
    assert [(d.t, d.user_prompt) for d in got.dialogue] == [
        (round(d.t * twice.fps) / twice.fps, d.user_prompt) for d in twice.dialogue
    ]
