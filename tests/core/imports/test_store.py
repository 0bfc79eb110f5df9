"""How an import lands in the store: accepted or not, idempotent, on top of a person's edits."""

from __future__ import annotations

import uuid
from pathlib import Path

import msgspec
import pytest

from core.annotations import Segment
from core.dataset import Dataset
from core.imports import import_dataset
from core.protocol import Correction
from core.store import Applied, Store

from .conftest import EXPORTED

pytest.importorskip("lerobot")


def _revisions(store: Path) -> int:
    with Store(store, readonly=True) as s:
        return sum(s.counts().values())


def test_accept_makes_accepted_revisions_that_serve_as_exemplars(subtasks_export: Path, tmp_path: Path):
    from backend.exemplars import ExemplarIndex

    plain, accepted = tmp_path / "plain.db", tmp_path / "accepted.db"
    import_dataset(subtasks_export, plain)
    import_dataset(subtasks_export, accepted, accept=True, author="lab")
    with Store(plain, readonly=True) as s:
        assert {h.review for h in s.heads("out")} == {"unreviewed"}
        assert list(s.accepted("out")) == []
    with Store(accepted, readonly=True) as s:
        assert [h.review for h in s.heads("out")] == ["accepted"] * len(EXPORTED)
        assert {r.author for ep in EXPORTED for r in s.history("out", ep)} == {"human:lab"}
        index = ExemplarIndex.load(s, "out", Dataset(subtasks_export))
    assert index.unusable == {}
    assert sorted(a.episode for group in index.groups.values() for a in group) == list(EXPORTED)


def test_re_import_is_idempotent(language_export: Path, tmp_path: Path):
    store = tmp_path / "a.db"
    first = import_dataset(language_export, store)
    n = _revisions(store)
    assert sorted(first.stored) == list(EXPORTED) and n == len(EXPORTED)
    again = import_dataset(language_export, store)
    assert again.stored == [] and sorted(again.already) == list(EXPORTED)
    assert _revisions(store) == n
    assert (
        f"stored 0 episode(s) as revisions by human:import, skipped {len(EXPORTED)} ({len(EXPORTED)} already imported"
        in again.format()
    )
    # Another author (or --accept) is another import: one more revision each, on top.
    third = import_dataset(language_export, store, accept=True)
    assert sorted(third.stored) == list(EXPORTED) and _revisions(store) == 2 * n
    with Store(store, readonly=True) as s:
        assert [r.base_revision for r in s.history("out", 0)] == [0, 1]


def test_an_episode_a_person_edited_gets_the_import_on_top(
    subtasks_export: Path, annotations, tmp_path: Path
):
    """Never a silent overwrite: a new revision based on the head; kinds the import lacks stay."""
    store = tmp_path / "a.db"
    mine = msgspec.structs.replace(annotations[0], dataset="out", review="in_review")
    with Store(store) as s, s.transaction():
        c = Correction(
            uuid=uuid.uuid4().hex, dataset="out", episode=0, base_revision=0, user="alice", annotation=mine
        )
        assert isinstance(s.apply_correction(c), Applied)
        renamed = [msgspec.structs.replace(seg, name=f"my {seg.name}") for seg in mine.segments]
        patch = {"segments": [msgspec.to_builtins(seg) for seg in renamed]}
        c = Correction(
            uuid=uuid.uuid4().hex, dataset="out", episode=0, base_revision=1, user="alice", patch=patch
        )
        assert isinstance(s.apply_correction(c), Applied)
    report = import_dataset(subtasks_export, store)
    assert report.on_top == [0] and sorted(report.stored) == list(EXPORTED)
    assert "1 on top of a person's edits: episode(s) 0" in report.format()
    with Store(store, readonly=True) as s:
        history = s.history("out", 0)
        assert [(r.revision, r.author, r.base_revision) for r in history] == [
            (1, "human:alice", 0),
            (2, "human:alice", 1),
            (3, "human:import", 2),
        ]
        head = s.head("out", 0)
        edited = s.get("out", 0, 2)
    assert all(seg.name.startswith("my ") for seg in edited.segments)  # the edit stays in the history
    assert [seg.name for seg in head.segments] == [seg.name for seg in annotations[0].segments]
    assert head.boxes == mine.boxes and head.qa == mine.qa  # kinds the import does not carry stay
    assert head.review == "unreviewed" and head.model == mine.model
    # A person edits the imported revision; the same import again leaves the edit alone.
    with Store(store) as s, s.transaction():
        seg = Segment(name="one", start=0.0, end=head.duration, source="human:alice")
        patch = {"segments": [msgspec.to_builtins(seg)]}
        c = Correction(
            uuid=uuid.uuid4().hex, dataset="out", episode=0, base_revision=3, user="alice", patch=patch
        )
        assert isinstance(s.apply_correction(c), Applied)
    again = import_dataset(subtasks_export, store)
    assert again.stored == [] and 0 in again.already
    with Store(store, readonly=True) as s:
        assert [seg.name for seg in s.head("out", 0).segments] == ["one"]


def test_an_import_the_head_already_says_is_skipped_as_unchanged(subtasks_export: Path, tmp_path: Path):
    """Imported unreviewed, accepted as it is by a person in the app: importing it accepted adds nothing."""
    store = tmp_path / "a.db"
    import_dataset(subtasks_export, store)
    with Store(store) as s, s.transaction():
        for ep in EXPORTED:
            c = Correction(
                uuid=uuid.uuid4().hex,
                dataset="out",
                episode=ep,
                base_revision=1,
                user="import",
                patch={"review": "accepted"},
            )
            assert isinstance(s.apply_correction(c), Applied)
    n = _revisions(store)
    report = import_dataset(subtasks_export, store, accept=True)
    assert report.stored == [] and sorted(report.unchanged) == list(EXPORTED)
    assert _revisions(store) == n
