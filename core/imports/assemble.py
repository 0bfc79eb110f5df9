"""One revision per episode from everything the sources say, written to the store.

Per kind the best-informed source that has it wins: segments from skills.json
(exact times), else the per-frame `subtask_index`, else the `subtask` rows (frame
times); the task from skills.json's description, else the dataset's; dialogue from
syn_annotations.jsonl where it has more turns, else tasks_high_level.parquet (both
carry the skill and the scenario and response types), else the language events;
motion, task phrasings, QAs, boxes, contacts and trajectories from the language
columns. What came from where, and what a lower source said that was not taken, is
in the report.

An episode the store already has gets the import as a new revision on top of its
head (base_revision = the head; the kinds the import does not carry stay as they
were), never a silent overwrite. The correction UUID is a digest of the dataset,
the episode, the author, --accept and what the sources say about the episode, so
re-running the same import makes no new revision (the store knows the UUID), and
a changed file makes new revisions only for the episodes whose annotations changed.
"""

from __future__ import annotations

import hashlib
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec

from core.annotations import DialogueTurn, EpisodeAnnotation, Segment, segment_index_at
from core.errors import AnnotationError
from core.imports.base import Context, Found, ImportFileError, SourceResult, episode_list
from core.imports.dialogue import HIGH_LEVEL_FILE, SYN_FILE, read_high_level, read_syn_annotations
from core.imports.language import read_events, read_persistent
from core.imports.skills import SKILLS_FILE, SUBTASKS_FILE, read_skills, read_subtask_index

# Kinds the import can carry, as EpisodeAnnotation fields.
KINDS = ("segments", "task", "task_aug", "dialogue", "qa", "boxes", "contacts", "trajectories")
# Correction UUIDs of imports live in their own namespace (uuid5 of this name).
NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "https://github.com/robo-annotate/import")
# Episodes per store transaction.
BATCH = 200
# Notes printed per source before "... and N more".
NOTES_SHOWN = 20


@dataclass
class Assembled:
    """One episode's import: the fields it sets and the source of each."""

    fields: dict[str, Any]
    sources: dict[str, str]


@dataclass
class ImportReport:
    """What an import read, combined and stored, for the CLI and the tests."""

    dataset: str
    author: str
    sources: list[SourceResult]
    # source name -> kind -> episodes whose kind it gave / had but another source's was taken.
    used: dict[str, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))
    shadowed: dict[str, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))
    # Why each shadowed kind was not taken: source -> kind -> the source taken instead.
    instead: dict[str, dict[str, str]] = field(default_factory=lambda: defaultdict(dict))
    stored: list[int] = field(default_factory=list)
    # Stored episodes whose head had a person's edits (the import is a revision on top).
    on_top: list[int] = field(default_factory=list)
    already: list[int] = field(default_factory=list)
    unchanged: list[int] = field(default_factory=list)
    failed: dict[int, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        out = []
        for src in self.sources:
            out.append(src.summary())
            used = ", ".join(f"{k} of {n}" for k, n in self.used[src.name].items())
            if used:
                out.append(f"  used: {used} episode(s)")
            for kind, n in self.shadowed[src.name].items():
                out.append(
                    f"  not used: {kind} of {n} episode(s) ({self.instead[src.name][kind]}'s are taken)"
                )
            out.extend(f"  note: {n.removeprefix(src.name + ': ')}" for n in src.notes[:NOTES_SHOWN])
            if len(src.notes) > NOTES_SHOWN:
                out.append(f"  ... and {len(src.notes) - NOTES_SHOWN} more note(s)")
        out.extend(f"note: {n}" for n in self.notes)
        stored = f"stored {len(self.stored)} episode(s) as revisions by human:{self.author}"
        if self.on_top:
            stored += (
                f" ({len(self.on_top)} on top of a person's edits: episode(s) {episode_list(self.on_top)})"
            )
        skipped = len(self.already) + len(self.unchanged) + len(self.failed)
        stored += (
            f", skipped {skipped} ({len(self.already)} already imported, "
            f"{len(self.unchanged)} unchanged, {len(self.failed)} failed)"
        )
        out.append(stored)
        out.extend(f"  episode {ep} failed: {why}" for ep, why in sorted(self.failed.items()))
        return out

    def format(self) -> str:
        return "\n".join(self.lines())


def read_sources(ctx: Context, skills: Path | None) -> tuple[list[SourceResult], list[SourceResult]]:
    """Every source the dataset has: (in the order shown, in the order of preference)."""
    root = ctx.dataset.root
    if skills is not None and not skills.is_file():
        raise ImportFileError(f"{skills}: no such file (--skills)")
    skills_path = skills or root / SKILLS_FILE
    skills_res = (
        read_skills(ctx, skills_path, str(skills) if skills else SKILLS_FILE)
        if skills_path.is_file()
        else None
    )
    sub_path = root / SUBTASKS_FILE
    taken = set(skills_res.episodes) if skills_res else set()
    sub_res = read_subtask_index(ctx, sub_path, taken) if sub_path.is_file() else None
    hl_path, syn_path = root / HIGH_LEVEL_FILE, root / SYN_FILE
    hl_res = read_high_level(ctx, hl_path) if hl_path.is_file() else None
    syn_res = read_syn_annotations(ctx, syn_path, hl_res) if syn_path.is_file() else None
    persistent, events = read_persistent(ctx), read_events(ctx)
    shown = [r for r in (skills_res, sub_res, hl_res, syn_res, persistent, events) if r is not None]
    preferred = [r for r in (skills_res, sub_res, syn_res, hl_res, persistent, events) if r is not None]
    if not shown:
        raise ImportFileError(
            f"{root}: nothing to import: no {SKILLS_FILE}, {SUBTASKS_FILE}, {HIGH_LEVEL_FILE} or {SYN_FILE}, "
            "and the data files have no language_persistent / language_events columns"
        )
    return shown, preferred


def _has(found: Found, kind: str) -> bool:
    value = getattr(found, kind)
    return value is not None and (kind == "task" or len(value) > 0)


def _turns(
    found: list, segments: list[Segment], task: str, duration: float, source: str
) -> list[DialogueTurn]:
    out = []
    for turn in sorted(found, key=lambda u: u.t):
        skill = turn.skill
        if not skill:
            i = segment_index_at(segments, turn.t)
            skill = segments[i].name if i is not None else (task or "task")
        out.append(
            DialogueTurn(
                t=min(turn.t, duration),
                skill=skill,
                user_prompt=turn.user_prompt,
                robot_utterance=turn.robot_utterance,
                scenario_type=turn.scenario_type,  # type: ignore[arg-type]
                response_type=turn.response_type,  # type: ignore[arg-type]
                source=source,
            )
        )
    return out


def _attach_motion(
    segments: list[Segment], motion: list[tuple[float, str]], ep: int, src: SourceResult
) -> list[Segment]:
    out = [msgspec.structs.replace(s) for s in segments]
    for t, text in sorted(motion):
        i = segment_index_at(out, t)
        if i is None:
            src.note(f"episode {ep}: a motion description at t={t:.3f} s has no segment there; left out")
        elif out[i].motion and out[i].motion != text:
            src.note(
                f"episode {ep}: segment {i} '{out[i].name}' has two motion descriptions; the first is kept"
            )
        else:
            out[i].motion = text
    return out


def assemble(ep: int, ctx: Context, preferred: list[SourceResult], report: ImportReport) -> Assembled | None:
    """What the sources say about episode `ep`, one source per kind."""
    fields: dict[str, Any] = {}
    sources: dict[str, str] = {}
    chosen: dict[str, Found] = {}
    for kind in (*KINDS, "motion"):
        for src in preferred:
            found = src.episodes.get(ep)
            if found is None or not _has(found, kind):
                continue
            if kind in sources:
                report.shadowed[src.name][kind] += 1
                report.instead[src.name][kind] = sources[kind]
                continue
            sources[kind], chosen[kind] = src.name, found
            report.used[src.name][kind] += 1
    if not sources:
        return None
    duration = ctx.duration(ep)
    task = chosen["task"].task if "task" in chosen else ctx.dataset.episodes[ep].task
    segments = chosen["segments"].segments if "segments" in chosen else []
    if "motion" in chosen:
        src = next(s for s in preferred if s.name == sources["motion"])
        if segments:
            segments = _attach_motion(segments, chosen["motion"].motion, ep, src)
        else:
            src.note(f"episode {ep}: motion descriptions but no segments to hold them; left out")
    if "segments" in chosen:
        fields["segments"] = segments
    if "task" in chosen:
        fields["task"] = task
    if "task_aug" in chosen:
        fields["task_aug"] = [p for p in chosen["task_aug"].task_aug or [] if p != task]
    if "dialogue" in chosen:
        fields["dialogue"] = _turns(chosen["dialogue"].dialogue or [], segments, task, duration, ctx.source)
    for kind in ("qa", "boxes", "contacts", "trajectories"):
        if kind in chosen:
            fields[kind] = list(getattr(chosen[kind], kind))
    if not fields:
        return None
    return Assembled(fields, {k: v for k, v in sources.items() if k in fields or k == "motion"})


def correction_uuid(ctx: Context, ep: int, author: str, accept: bool, fields: dict[str, Any]) -> str:
    """The same import of the same episode always gets the same UUID (see the module docstring)."""
    digest = hashlib.sha256(msgspec.json.encode(fields, order="sorted")).hexdigest()
    return uuid.uuid5(NAMESPACE, f"{ctx.dataset.name}\0{ep}\0{author}\0{int(accept)}\0{digest}").hex


def _content(ann: EpisodeAnnotation) -> dict[str, Any]:
    data = msgspec.to_builtins(ann)
    data.pop("revision", None)
    return data


def build(
    ctx: Context, ep: int, head: EpisodeAnnotation | None, a: Assembled, accept: bool
) -> EpisodeAnnotation:
    """The new revision: the head (or a blank annotation) with the imported kinds replaced."""
    info = ctx.dataset.episodes[ep]
    base = head or EpisodeAnnotation(
        dataset=ctx.dataset.name, episode=ep, duration=info.duration, fps=ctx.fps, task=info.task
    )
    used = sorted(set(a.sources.values()), key=list(a.sources.values()).index)
    new = msgspec.structs.replace(
        base,
        **a.fields,
        duration=info.duration,
        fps=ctx.fps,
        review="accepted" if accept else "unreviewed",
        uncertainty=None,
        origin=f"imported from {', '.join(used)}",
    )
    new.__post_init__()
    return new


def store_all(
    store_path: Path,
    ctx: Context,
    episodes: dict[int, Assembled],
    author: str,
    accept: bool,
    report: ImportReport,
) -> None:
    """Write each episode's revision through `Store.apply_correction`, one transaction per batch."""
    from core.protocol import Correction
    from core.store import Applied, Store

    items = sorted(episodes.items())
    name = ctx.dataset.name
    with Store(store_path) as store:
        for i in range(0, len(items), BATCH):
            with store.transaction():
                for ep, a in items[i : i + BATCH]:
                    cid = correction_uuid(ctx, ep, author, accept, a.fields)
                    if store.correction_revision(cid) is not None:
                        report.already.append(ep)
                        continue
                    info, head = store.head_info(name, ep), store.head(name, ep)
                    try:
                        new = build(ctx, ep, head, a, accept)
                    except AnnotationError as exc:
                        report.failed[ep] = str(exc)
                        continue
                    if head is not None and _content(new) == _content(head):
                        report.unchanged.append(ep)
                        continue
                    c = Correction(
                        uuid=cid,
                        dataset=name,
                        episode=ep,
                        base_revision=info.revision if info else 0,
                        user=author,
                        annotation=new,
                    )
                    outcome = store.apply_correction(c)
                    if isinstance(outcome, Applied):
                        report.stored.append(ep)
                        if info is not None and info.human_edits:
                            report.on_top.append(ep)
                    else:
                        report.failed[ep] = getattr(outcome, "message", "conflicts with the store's head")


def import_dataset(
    dataset_path: str | Path,
    store_path: str | Path,
    skills: str | Path | None = None,
    accept: bool = False,
    author: str = "import",
) -> ImportReport:
    """Store the annotations a dataset already has as revisions by `human:<author>`.

    `skills`: a skills.json to read instead of the dataset's meta/skills.json.
    `accept`: store them accepted (exemplars for propagation), else unreviewed.
    Raises `ImportFileError` (naming the file and field) on a source that cannot be
    read; nothing is stored then.
    """
    from core.dataset import Dataset

    author = author.strip()
    if not author or any(c.isspace() for c in author):
        raise ImportFileError(f"--author {author!r}: must be one word (revisions are by human:<author>)")
    ds = Dataset(dataset_path)
    ctx = Context(ds, f"human:{author}")
    shown, preferred = read_sources(ctx, Path(skills) if skills is not None else None)
    report = ImportReport(ds.name, author, shown)
    assembled = {}
    for ep in sorted({ep for src in preferred for ep in src.episodes}):
        a = assemble(ep, ctx, preferred, report)
        if a is not None:
            assembled[ep] = a
    if not assembled:
        report.notes.append("no source has annotations of any episode of this dataset; nothing stored")
        return report
    store_all(Path(store_path), ctx, assembled, author, accept, report)
    return report
