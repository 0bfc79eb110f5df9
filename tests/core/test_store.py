"""core.store on its own, no sockets: revisions, conflicts, idempotent resends, history, predictions.

The store owns the rules the backend's protocol promises (a correction applies only on
the revision it was based on, a resend is recognized by its UUID, a prediction never
overwrites a person's edit), so they are checked here against a real SQLite file, with
explicit clocks (`now=`) instead of sleeps.
"""

from __future__ import annotations

import sqlite3
import uuid
from pathlib import Path

import pytest

from core.annotations import Box, EpisodeAnnotation, Segment
from core.protocol import Correction
from core.store import SCHEMA_VERSION, Applied, Conflicted, Rejected, Store, StoreError

DS = "ds"


def ann(episode: int = 0, names: tuple[str, ...] = ("reach", "grasp"), **kw) -> EpisodeAnnotation:
    """A 2-second episode cut into equal named segments."""
    step = 2.0 / len(names)
    segments = [Segment(name=n, start=i * step, end=(i + 1) * step) for i, n in enumerate(names)]
    return EpisodeAnnotation(dataset=DS, episode=episode, duration=2.0, fps=10.0, segments=segments, **kw)


def names(a: EpisodeAnnotation | None) -> list[str]:
    assert a is not None
    return [s.name for s in a.segments]


def correction(base: int, annotation=None, patch=None, episode: int = 0, user: str = "ann", uid=None):
    return Correction(
        uuid=uid or uuid.uuid4().hex,
        dataset=DS,
        episode=episode,
        base_revision=base,
        user=user,
        annotation=annotation,
        patch=patch,
    )


def submit(store: Store, c: Correction, now: float | None = None):
    with store.transaction():
        return store.apply_correction(c, now=now)


def predict(store: Store, a: EpisodeAnnotation | None, status: str = "ok", now: float = 0.0, **kw):
    with store.transaction():
        return store.add_prediction(
            DS, a.episode if a else kw.pop("episode", 0), kw.pop("model", "m@1"), status, a, ["segments"],
            now=now, **kw,
        )  # fmt: skip


@pytest.fixture
def store(tmp_path: Path):
    with Store(tmp_path / "store.db") as s:
        yield s


# ---------------------------------------------------------------- revisions


def test_predictions_and_corrections_add_revisions_and_nothing_is_overwritten(store):
    assert store.head(DS, 0) is None and store.head_info(DS, 0) is None
    assert predict(store, ann(names=("a", "b"), uncertainty=0.4), now=1.0) == 1
    head = store.head_info(DS, 0)
    assert (head.revision, head.kind, head.model, head.human_edits, head.uncertainty) == (
        1,
        "model",
        "m@1",
        0,
        0.4,
    )
    assert store.head(DS, 0).review == "unreviewed"

    out = submit(store, correction(1, ann(names=("reach", "grasp"))), now=2.0)
    assert isinstance(out, Applied) and out.revision == 2 and not out.duplicate
    head = store.head_info(DS, 0)
    assert (head.revision, head.kind, head.human_edits, head.updated) == (2, "human", 1, 2.0)
    assert head.model == "m@1"  # the person edited the model's proposal: provenance is kept
    assert names(store.head(DS, 0)) == ["reach", "grasp"]
    assert names(store.get(DS, 0, 1)) == ["a", "b"]  # revision 1 is still there
    assert store.get(DS, 0, 3) is None
    assert store.counts() == {"model": 1, "human": 1}


def test_a_patch_replaces_only_the_fields_it_names(store):
    box = Box(t=0.5, camera="top", label="cup", kind="current", xyxy=(0.1, 0.1, 0.3, 0.3))
    submit(store, correction(0, ann(boxes=[box])))
    out = submit(store, correction(1, patch={"segments": [{"name": "all", "start": 0.0, "end": 2.0}]}))
    assert isinstance(out, Applied) and out.revision == 2
    head = store.head(DS, 0)
    assert names(head) == ["all"] and head.boxes == [box] and head.revision == 2


def test_invalid_corrections_are_rejected_with_a_reason_and_change_nothing(store):
    out = submit(store, correction(0, patch={"review": "accepted"}))
    assert isinstance(out, Rejected) and out.code == "not_found" and "no annotation to patch" in out.message
    submit(store, correction(0, ann()))
    out = submit(store, correction(1, patch={"segments": [{"name": "x", "start": 0.0, "end": 1.0}]}))
    assert isinstance(out, Rejected) and out.code == "invalid" and "duration" in out.message
    out = submit(store, correction(1, ann(episode=5), episode=0))
    assert isinstance(out, Rejected) and out.code == "invalid" and "another dataset or episode" in out.message
    assert [r.revision for r in store.history(DS, 0)] == [1]


def test_a_failed_transaction_leaves_nothing_behind(store):
    with pytest.raises(RuntimeError), store.transaction():
        store.apply_correction(correction(0, ann()))
        raise RuntimeError("crash before commit")
    assert store.head(DS, 0) is None and store.history(DS, 0) == []


# ---------------------------------------------------------------- conflicts and resends


def test_a_stale_correction_is_a_conflict_carrying_both_versions(store):
    submit(store, correction(0, ann(names=("a", "b"))))
    mine = submit(store, correction(1, ann(names=("mine", "too")), user="alice"))
    assert isinstance(mine, Applied) and mine.revision == 2

    theirs = submit(store, correction(1, ann(names=("theirs", "too")), user="bob"))
    assert isinstance(theirs, Conflicted)
    assert names(theirs.current) == ["mine", "too"] and theirs.current.revision == 2
    assert names(theirs.yours) == ["theirs", "too"]
    # A patch that conflicts comes back applied to the current head, so the two can be compared.
    patched = submit(store, correction(1, patch={"review": "accepted"}, user="bob"))
    assert isinstance(patched, Conflicted)
    assert patched.yours.review == "accepted" and names(patched.yours) == ["mine", "too"]
    # Neither conflicting edit was written.
    assert [(r.revision, r.author) for r in store.history(DS, 0)] == [(1, "human:ann"), (2, "human:alice")]


def test_a_correction_based_on_a_revision_of_an_episode_never_stored_is_not_found(store):
    out = submit(store, correction(3, ann(), episode=0))
    assert isinstance(out, Rejected) and out.code == "not_found" and "no revision 3" in out.message


def test_a_resend_is_recognized_by_its_uuid_and_answered_with_the_same_revision(store):
    c = correction(0, ann(names=("a", "b")))
    first = submit(store, c)
    submit(store, correction(1, ann(names=("c", "d"))))  # someone else edits after it
    again = submit(store, c)
    assert isinstance(again, Applied) and again.duplicate
    assert again.revision == first.revision == 1 and names(again.annotation) == ["a", "b"]
    assert len(store.history(DS, 0)) == 2  # the resend added nothing
    assert store.correction_revision(c.uuid) == (DS, 0, 1)
    # The same UUID for another episode is not a resend but a client bug.
    reused = submit(store, correction(0, ann(episode=1), episode=1, uid=c.uuid))
    assert isinstance(reused, Rejected) and reused.code == "invalid" and "already used" in reused.message
    assert store.head(DS, 1) is None


def test_history_lists_every_revision_with_author_base_and_correction(store):
    predict(store, ann(), now=1.0)
    c1 = correction(1, patch={"review": "in_review"}, user="alice")
    c2 = correction(2, patch={"review": "accepted"}, user="bob")
    submit(store, c1, now=2.0)
    submit(store, c2, now=3.0)
    hist = store.history(DS, 0)
    assert [
        (h.revision, h.author, h.kind, h.base_revision, h.correction, h.review, h.created) for h in hist
    ] == [
        (1, "m@1", "model", 0, None, "unreviewed", 1.0),
        (2, "human:alice", "human", 1, c1.uuid, "in_review", 2.0),
        (3, "human:bob", "human", 2, c2.uuid, "accepted", 3.0),
    ]
    assert store.history(DS, 9) == []


# ---------------------------------------------------------------- predictions


def test_a_prediction_replaces_only_its_kinds_and_never_a_persons_edit(store):
    box = Box(t=0.5, camera="top", label="cup", kind="current", xyxy=(0.1, 0.1, 0.3, 0.3))
    predict(store, ann(names=("a", "b"), boxes=[box]), now=1.0)
    assert predict(store, ann(names=("c", "d"), uncertainty=0.7), model="m@2", now=2.0) == 2
    head = store.head(DS, 0)
    assert names(head) == ["c", "d"] and head.boxes == [box]  # only "segments" were predicted
    assert (head.model, head.uncertainty) == ("m@2", 0.7)

    submit(store, correction(2, patch={"review": "accepted"}), now=3.0)
    assert predict(store, ann(names=("e", "f")), model="m@3", now=4.0) is None  # kept aside, not applied
    assert store.head_info(DS, 0).revision == 3 and store.head(DS, 0).review == "accepted"
    assert store.prediction(DS, 0, "m@3") == {
        "status": "ok", "created": 4.0, "revision": None, "uncertainty": None, "raw": "", "error": "",
    }  # fmt: skip
    assert store.prediction(DS, 0, "m@2")["revision"] == 2


def test_a_prediction_after_a_persons_edit_is_a_suggestion_until_the_head_moves_past_it(store):
    submit(store, correction(0, ann(names=("a", "b"))), now=1.0)
    assert store.suggestion(DS, 0) is None
    predict(store, ann(names=("old", "x")), model="m@1", now=0.5)  # older than the edit: stale
    assert store.suggestion(DS, 0) is None
    predict(store, ann(names=("new", "x")), model="m@2", now=2.0)
    predict(store, ann(names=("newer", "x")), model="m@3", now=3.0)
    predict(store, None, status="unparseable", model="m@4", now=4.0, episode=0)  # not a suggestion
    assert names(store.suggestion(DS, 0)) == ["newer", "x"]
    submit(store, correction(1, patch={"review": "accepted"}), now=5.0)  # reviewed after it
    assert store.suggestion(DS, 0) is None
    assert store.suggestion(DS, 7) is None  # no head, no suggestion


def test_headless_predictions_are_the_episodes_a_model_answered_but_nothing_was_applied(store):
    predict(store, None, status="unparseable", raw="garbage", episode=3, now=1.0)
    predict(store, None, status="failed", error="boom", model="m@2", episode=3, now=2.0)
    predict(store, None, status="failed", error="boom", episode=4, now=1.0)
    predict(store, ann(episode=5), now=1.0)  # applied: it has a head
    assert store.headless_predictions(DS) == [(3, None, "failed"), (4, None, "failed")]
    assert store.prediction(DS, 3, "m@1")["raw"] == "garbage"
    submit(store, correction(0, ann(episode=4), episode=4))  # a person annotated it by hand
    assert [e for e, _, _ in store.headless_predictions(DS)] == [3]
    assert store.headless_predictions("other") == []


def test_accepted_yields_the_reviewed_heads_only(store):
    for ep in range(3):
        submit(store, correction(0, ann(episode=ep), episode=ep))
    submit(store, correction(1, patch={"review": "accepted"}, episode=1))
    assert [a.episode for a in store.accepted(DS)] == [1]
    assert [a.episode for a in store.accepted(DS, include_unreviewed=True)] == [0, 1, 2]
    assert list(store.accepted("other")) == []
    assert [(h.episode, h.review) for h in store.heads(DS)] == [
        (0, "unreviewed"),
        (1, "accepted"),
        (2, "unreviewed"),
    ]


# ---------------------------------------------------------------- connections and files


def test_a_read_only_connection_reads_committed_revisions_beside_the_writer(tmp_path):
    path = tmp_path / "store.db"
    with Store(path) as writer:
        submit(writer, correction(0, ann(names=("a", "b"))))
        with Store(path, readonly=True) as reader:
            assert names(reader.head(DS, 0)) == ["a", "b"]
            with writer.transaction():  # WAL: the reader is not blocked and sees the last commit
                writer.apply_correction(correction(1, ann(names=("c", "d"))))
                assert names(reader.head(DS, 0)) == ["a", "b"]
            assert names(reader.head(DS, 0)) == ["c", "d"]
            before = path.read_bytes()
            with pytest.raises(sqlite3.OperationalError, match="readonly"), reader.transaction():
                reader.apply_correction(correction(2, ann(names=("e", "f"))))
            assert path.read_bytes() == before
    with Store(path, readonly=True) as reader:  # after the writer closed
        assert [r.revision for r in reader.history(DS, 0)] == [1, 2]


def test_a_missing_store_opened_read_only_is_an_error_and_is_not_created(tmp_path):
    with pytest.raises(StoreError, match="no such store"):
        Store(tmp_path / "nope.db", readonly=True)
    assert not (tmp_path / "nope.db").exists()


def test_a_corrupt_file_is_a_store_error_naming_it_and_is_left_as_it_was(tmp_path):
    path = tmp_path / "notes.db"
    junk = b"these are someone's notes, not SQLite\n" * 200
    path.write_bytes(junk)
    for readonly in (True, False):
        with pytest.raises(StoreError, match=r"notes\.db: not a usable annotation store"):
            Store(path, readonly=readonly)
    assert path.read_bytes() == junk


def test_a_store_of_another_schema_version_is_refused(tmp_path):
    path = tmp_path / "future.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT NOT NULL)")
        conn.execute("INSERT INTO meta VALUES ('schema', ?)", (str(SCHEMA_VERSION + 1),))
    conn.close()
    for readonly in (True, False):
        with pytest.raises(StoreError, match=rf"future\.db: store schema {SCHEMA_VERSION + 1} is not"):
            Store(path, readonly=readonly)


def test_a_foreign_sqlite_file_is_refused_and_left_as_it_was(tmp_path):
    path = tmp_path / "other.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE songs(title TEXT)")
        conn.execute("INSERT INTO songs VALUES ('la')")
    conn.close()
    before = path.read_bytes()
    with pytest.raises(StoreError, match=r"other\.db: not a usable annotation store"):
        Store(path, readonly=True)
    with pytest.raises(StoreError, match=r"other\.db: an SQLite file of another kind \(tables songs\)"):
        Store(path)
    assert path.read_bytes() == before  # not switched to WAL, no tables of ours added
    assert not Path(f"{path}-wal").exists()
