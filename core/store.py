"""The annotation store: every revision of every episode, in SQLite (WAL).

Nothing is overwritten: each model prediction and each human correction adds a
revision (who, when, model or human, base revision), so history can be read
back. A correction applies only on top of the revision it was based on; anything
else is a conflict reported with both versions. Correction UUIDs are unique, so
a resend is recognized and answered with the revision it already became.

This module is plain sqlite3 and has no threads: the backend serializes writes
through one writer thread that commits them in groups (backend/writer.py), and
readers (exporters, the trainer, `robo-backend annotate`) open their own
connections, which WAL lets run beside the writer.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import msgspec

from core.annotations import EpisodeAnnotation, convert_annotation
from core.errors import AnnotationError, RoboAnnotateError
from core.protocol import Correction, RevisionInfo

SCHEMA_VERSION = 1
SCHEMA = """
CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS revisions(
    dataset TEXT NOT NULL,
    episode INTEGER NOT NULL,
    revision INTEGER NOT NULL,
    author TEXT NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('model', 'human')),
    created REAL NOT NULL,
    base_revision INTEGER NOT NULL,
    correction TEXT UNIQUE,
    model TEXT NOT NULL,
    review TEXT NOT NULL,
    uncertainty REAL,
    data BLOB NOT NULL,
    PRIMARY KEY (dataset, episode, revision)
);
CREATE TABLE IF NOT EXISTS heads(
    dataset TEXT NOT NULL,
    episode INTEGER NOT NULL,
    revision INTEGER NOT NULL,
    kind TEXT NOT NULL,
    review TEXT NOT NULL,
    uncertainty REAL,
    model TEXT NOT NULL,
    human_edits INTEGER NOT NULL,
    updated REAL NOT NULL,
    PRIMARY KEY (dataset, episode)
);
CREATE TABLE IF NOT EXISTS predictions(
    dataset TEXT NOT NULL,
    episode INTEGER NOT NULL,
    model TEXT NOT NULL,
    status TEXT NOT NULL,
    created REAL NOT NULL,
    revision INTEGER,
    uncertainty REAL,
    raw TEXT NOT NULL,
    error TEXT NOT NULL,
    data BLOB,
    PRIMARY KEY (dataset, episode, model)
);
CREATE INDEX IF NOT EXISTS heads_review ON heads(review, uncertainty);
"""

_enc = msgspec.msgpack.Encoder()
_dec = msgspec.msgpack.Decoder(EpisodeAnnotation)


class StoreError(RoboAnnotateError):
    """The store file is missing, locked, corrupt or of another schema version."""


@dataclass(frozen=True)
class Head:
    dataset: str
    episode: int
    revision: int
    kind: str
    review: str
    uncertainty: float | None
    model: str
    human_edits: int
    updated: float


@dataclass(frozen=True)
class Applied:
    revision: int
    annotation: EpisodeAnnotation
    duplicate: bool = False
    # The review state of the revision this one replaced (None: there was none).
    previous_review: str | None = None


@dataclass(frozen=True)
class Conflicted:
    current: EpisodeAnnotation
    yours: EpisodeAnnotation | None


@dataclass(frozen=True)
class Rejected:
    code: Literal["invalid", "not_found"]
    message: str


CorrectionOutcome = Applied | Conflicted | Rejected


def _connect(path: Path, readonly: bool) -> sqlite3.Connection:
    if readonly:
        if not path.is_file():
            raise StoreError(f"{path}: no such store")
        uri = f"file:{path}?mode=ro"
        conn = sqlite3.connect(uri, uri=True, isolation_level=None, check_same_thread=False, timeout=30)
    else:
        path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=30)
    conn.execute("PRAGMA busy_timeout = 30000")
    return conn


class Store:
    """One connection to the store. Use one per thread."""

    def __init__(self, path: str | Path, readonly: bool = False) -> None:
        self.path = Path(path)
        self.readonly = readonly
        try:
            self.conn = _connect(self.path, readonly)
            if not readonly:
                # Before anything is written: another program's SQLite file is refused, not
                # switched to WAL with our tables added to it.
                tables = [
                    r[0] for r in self.conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
                ]
                if tables and "meta" not in tables:
                    self.conn.close()
                    raise StoreError(
                        f"{self.path}: an SQLite file of another kind (tables {', '.join(tables[:5])}), "
                        "not an annotation store; give a new file or an existing store"
                    )
                mode = self.conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
                if mode.lower() != "wal":
                    raise StoreError(f"{self.path}: cannot switch to WAL mode (got {mode})")
                # FULL: a commit is on disk (WAL fsynced) before it returns.
                self.conn.execute("PRAGMA synchronous = FULL")
                self.conn.executescript(SCHEMA)
                self.conn.execute(
                    "INSERT OR IGNORE INTO meta(key, value) VALUES ('schema', ?)", (str(SCHEMA_VERSION),)
                )
            row = self.conn.execute("SELECT value FROM meta WHERE key = 'schema'").fetchone()
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"{self.path}: not a usable annotation store ({exc})") from exc
        if row is None or int(row[0]) != SCHEMA_VERSION:
            raise StoreError(f"{self.path}: store schema {row and row[0]} is not {SCHEMA_VERSION}")

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------ reads

    def head(self, dataset: str, episode: int) -> EpisodeAnnotation | None:
        row = self.conn.execute(
            "SELECT r.data FROM heads h JOIN revisions r USING (dataset, episode, revision) "
            "WHERE h.dataset = ? AND h.episode = ?",
            (dataset, episode),
        ).fetchone()
        return _dec.decode(row[0]) if row else None

    def get(self, dataset: str, episode: int, revision: int) -> EpisodeAnnotation | None:
        row = self.conn.execute(
            "SELECT data FROM revisions WHERE dataset = ? AND episode = ? AND revision = ?",
            (dataset, episode, revision),
        ).fetchone()
        return _dec.decode(row[0]) if row else None

    def head_info(self, dataset: str, episode: int) -> Head | None:
        row = self.conn.execute(
            "SELECT * FROM heads WHERE dataset = ? AND episode = ?", (dataset, episode)
        ).fetchone()
        return Head(*row) if row else None

    def heads(self, dataset: str | None = None) -> list[Head]:
        if dataset is None:
            rows = self.conn.execute("SELECT * FROM heads ORDER BY dataset, episode").fetchall()
        else:
            rows = self.conn.execute(
                "SELECT * FROM heads WHERE dataset = ? ORDER BY episode", (dataset,)
            ).fetchall()
        return [Head(*r) for r in rows]

    def history(self, dataset: str, episode: int) -> list[RevisionInfo]:
        rows = self.conn.execute(
            "SELECT revision, author, kind, created, base_revision, correction, review FROM revisions "
            "WHERE dataset = ? AND episode = ? ORDER BY revision",
            (dataset, episode),
        ).fetchall()
        return [
            RevisionInfo(
                revision=r[0],
                author=r[1],
                kind=r[2],
                created=r[3],
                base_revision=r[4],
                correction=r[5],
                review=r[6],
            )
            for r in rows
        ]

    def correction_revision(self, uuid: str) -> tuple[str, int, int] | None:
        """(dataset, episode, revision) a correction UUID became, if it was applied."""
        row = self.conn.execute(
            "SELECT dataset, episode, revision FROM revisions WHERE correction = ?", (uuid,)
        ).fetchone()
        return (row[0], row[1], row[2]) if row else None

    def accepted(
        self, dataset: str | None = None, include_unreviewed: bool = False
    ) -> Iterator[EpisodeAnnotation]:
        """Head annotations ready for export or training (accepted only, unless told otherwise)."""
        sql = "SELECT r.data FROM heads h JOIN revisions r USING (dataset, episode, revision)"
        where, args = [], []
        if not include_unreviewed:
            where.append("h.review = 'accepted'")
        if dataset is not None:
            where.append("h.dataset = ?")
            args.append(dataset)
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY h.dataset, h.episode"
        for (data,) in self.conn.execute(sql, args):
            yield _dec.decode(data)

    def prediction(self, dataset: str, episode: int, model: str) -> dict[str, Any] | None:
        row = self.conn.execute(
            "SELECT status, created, revision, uncertainty, raw, error FROM predictions "
            "WHERE dataset = ? AND episode = ? AND model = ?",
            (dataset, episode, model),
        ).fetchone()
        if row is None:
            return None
        return dict(zip(("status", "created", "revision", "uncertainty", "raw", "error"), row, strict=True))

    def headless_predictions(self, dataset: str) -> list[tuple[int, float | None, str]]:
        """(episode, uncertainty, status) of the newest prediction of each episode that has no
        revision yet: a model answered but nothing could be applied (unparseable, failed), and
        the episode must still be reviewed."""
        # SQLite takes the bare columns from the row that has the MAX (its documented rule).
        rows = self.conn.execute(
            "SELECT p.episode, p.uncertainty, p.status, MAX(p.created) FROM predictions p "
            "LEFT JOIN heads h ON h.dataset = p.dataset AND h.episode = p.episode "
            "WHERE p.dataset = ? AND h.episode IS NULL GROUP BY p.episode ORDER BY p.episode",
            (dataset,),
        ).fetchall()
        return [(r[0], r[1], r[2]) for r in rows]

    def suggestion(self, dataset: str, episode: int) -> EpisodeAnnotation | None:
        """The newest successful prediction that was not applied because a person had edited
        the episode, if it is newer than the head; the reviewer accepts or rejects it."""
        info = self.head_info(dataset, episode)
        if info is None:
            return None
        row = self.conn.execute(
            "SELECT data FROM predictions WHERE dataset = ? AND episode = ? AND status = 'ok' "
            "AND revision IS NULL AND data IS NOT NULL AND created > ? ORDER BY created DESC LIMIT 1",
            (dataset, episode, info.updated),
        ).fetchone()
        return _dec.decode(row[0]) if row else None

    def counts(self) -> dict[str, int]:
        revs = self.conn.execute("SELECT kind, COUNT(*) FROM revisions GROUP BY kind").fetchall()
        return {k: n for k, n in revs}

    # ------------------------------------------------------------ writes

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """BEGIN IMMEDIATE ... COMMIT: durable (synchronous=FULL) when it returns."""
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            yield self.conn
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        self.conn.execute("COMMIT")

    def _insert_revision(
        self,
        ann: EpisodeAnnotation,
        *,
        author: str,
        kind: str,
        base_revision: int,
        correction: str | None,
        now: float,
        human_edits: int,
    ) -> None:
        self.conn.execute(
            "INSERT INTO revisions(dataset, episode, revision, author, kind, created, base_revision, correction, "
            "model, review, uncertainty, data) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                ann.dataset,
                ann.episode,
                ann.revision,
                author,
                kind,
                now,
                base_revision,
                correction,
                ann.model,
                ann.review,
                ann.uncertainty,
                _enc.encode(ann),
            ),
        )
        self.conn.execute(
            "INSERT INTO heads(dataset, episode, revision, kind, review, uncertainty, model, human_edits, updated) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(dataset, episode) DO UPDATE SET "
            "revision = excluded.revision, kind = excluded.kind, review = excluded.review, "
            "uncertainty = excluded.uncertainty, model = excluded.model, human_edits = excluded.human_edits, "
            "updated = excluded.updated",
            (
                ann.dataset,
                ann.episode,
                ann.revision,
                kind,
                ann.review,
                ann.uncertainty,
                ann.model,
                human_edits,
                now,
            ),
        )

    def apply_correction(self, c: Correction, now: float | None = None) -> CorrectionOutcome:
        """Apply one correction inside the caller's transaction."""
        now = time.time() if now is None else now
        done = self.correction_revision(c.uuid)
        if done is not None:
            ds, ep, rev = done
            if (ds, ep) != (c.dataset, c.episode):
                return Rejected("invalid", f"correction {c.uuid} was already used for {ds} episode {ep}")
            return Applied(rev, self.get(ds, ep, rev), duplicate=True)  # type: ignore[arg-type]
        info = self.head_info(c.dataset, c.episode)
        current = self.head(c.dataset, c.episode)
        head_rev = info.revision if info else 0
        if c.annotation is not None:
            proposed = c.annotation
        elif current is None:
            return Rejected(
                "not_found",
                f"{c.dataset} episode {c.episode} has no annotation to patch; send a whole annotation",
            )
        else:
            proposed = None
        if c.base_revision != head_rev:
            yours = proposed or _patched(current, c.patch or {}, None)  # type: ignore[arg-type]
            if current is None:
                return Rejected(
                    "not_found", f"{c.dataset} episode {c.episode} has no revision {c.base_revision}"
                )
            return Conflicted(current, yours if isinstance(yours, EpisodeAnnotation) else None)
        try:
            if proposed is None:
                proposed = _patched(current, c.patch or {}, head_rev + 1)  # type: ignore[arg-type]
                if isinstance(proposed, str):
                    return Rejected("invalid", proposed)
            if (proposed.dataset, proposed.episode) != (c.dataset, c.episode):
                return Rejected("invalid", "correction.annotation is for another dataset or episode")
            new = msgspec.structs.replace(proposed, revision=head_rev + 1)
            if current is not None and not new.model:
                new = msgspec.structs.replace(new, model=current.model)
        except AnnotationError as exc:
            return Rejected("invalid", str(exc))
        self._insert_revision(
            new,
            author=f"human:{c.user}",
            kind="human",
            base_revision=c.base_revision,
            correction=c.uuid,
            now=now,
            human_edits=(info.human_edits if info else 0) + 1,
        )
        return Applied(new.revision, new, previous_review=info.review if info else None)

    def add_prediction(
        self,
        dataset: str,
        episode: int,
        model: str,
        status: str,
        annotation: EpisodeAnnotation | None,
        kinds: list[str],
        raw: str = "",
        error: str = "",
        now: float | None = None,
    ) -> int | None:
        """Record a model's prediction inside the caller's transaction.

        It becomes a new revision only while no person has edited the episode (the
        predicted kinds replace those of the head); otherwise it is kept as a
        suggestion in `predictions` and no revision is made. Returns the new
        revision, if one was made.
        """
        now = time.time() if now is None else now
        info = self.head_info(dataset, episode)
        revision = None
        data = _enc.encode(annotation) if annotation is not None else None
        if status == "ok" and annotation is not None and (info is None or info.human_edits == 0):
            head = self.head(dataset, episode)
            merged = annotation
            if head is not None:
                merged = msgspec.structs.replace(head, **{k: getattr(annotation, k) for k in kinds})
                merged = msgspec.structs.replace(
                    merged, uncertainty=annotation.uncertainty, model=model, origin=annotation.origin
                )
            revision = (info.revision if info else 0) + 1
            merged = msgspec.structs.replace(merged, revision=revision, model=model, review="unreviewed")
            self._insert_revision(
                merged,
                author=model,
                kind="model",
                base_revision=info.revision if info else 0,
                correction=None,
                now=now,
                human_edits=0,
            )
        self.conn.execute(
            "INSERT OR REPLACE INTO predictions(dataset, episode, model, status, created, revision, uncertainty, raw, "
            "error, data) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                dataset,
                episode,
                model,
                status,
                now,
                revision,
                annotation.uncertainty if annotation else None,
                raw,
                error,
                data,
            ),
        )
        return revision


def _patched(
    current: EpisodeAnnotation, patch: dict[str, Any], revision: int | None
) -> EpisodeAnnotation | str:
    """`current` with top-level fields replaced, validated; a message if invalid."""
    base = msgspec.to_builtins(current)
    base.update(patch)
    if revision is not None:
        base["revision"] = revision
    try:
        return convert_annotation(base, where="correction.patch")
    except AnnotationError as exc:
        return str(exc)
