"""Subtasks in the layout of LeRobot's subtask annotation tools (and our `lerobot-subtasks` export).

- `meta/skills.json`: {"coarse_description", "skill_to_subtask_index", "episodes":
  {"<ep>": {"episode_index", "description", "skills": [{name, start, end}]}}}, times
  in seconds from the episode start. `--skills FILE` reads another file of that layout.
  An episode's `description` is its task.
- `meta/subtasks.parquet` (the names as the index "subtask", one column
  `subtask_index`) with the per-frame `subtask_index` of the data files: the
  segments of episodes skills.json does not have (runs of one index; -1 is none).
"""

from __future__ import annotations

import json
from pathlib import Path

import msgspec
import pyarrow as pa
import pyarrow.parquet as pq

from core.imports.base import Context, ImportFileError, SourceResult, episode_list, make_cover
from core.imports.frames import episode_indices, has_column, runs

SKILLS_FILE = "meta/skills.json"
SUBTASKS_FILE = "meta/subtasks.parquet"
SUBTASK_INDEX = "subtask_index"


class _Skill(msgspec.Struct):
    name: str
    start: float
    end: float


class _Episode(msgspec.Struct):
    skills: list[_Skill] = msgspec.field(default_factory=list)
    episode_index: int | None = None
    description: str | None = None


class _Skills(msgspec.Struct):
    # Each episode decoded on its own, so an error can name its key (msgspec writes dict keys as [...]).
    episodes: dict[str, msgspec.Raw] = msgspec.field(default_factory=dict)
    coarse_description: str | None = None
    skill_to_subtask_index: dict[str, int] = msgspec.field(default_factory=dict)


def _decode(path: Path) -> tuple[_Skills, dict[str, _Episode]]:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ImportFileError(f"{path}: cannot read ({exc})") from exc
    try:
        doc = msgspec.json.decode(data, type=_Skills)
    except msgspec.ValidationError as exc:
        # msgspec names the field: "Expected `object`, got `array` - at `$.episodes`".
        raise ImportFileError(f"{path}: not in the skills.json layout: {exc}") from exc
    except msgspec.DecodeError as exc:
        raise ImportFileError(f"{path}: not valid JSON ({exc})") from exc
    episodes = {}
    for key, raw in doc.episodes.items():
        try:
            episodes[key] = msgspec.json.decode(raw, type=_Episode)
        except msgspec.ValidationError as exc:
            where = str(exc).replace("`$", f"`$.episodes[{key!r}]")
            if "`$" not in str(exc):
                where += f" - at `$.episodes[{key!r}]`"
            raise ImportFileError(f"{path}: not in the skills.json layout: {where}") from exc
    return doc, episodes


def read_skills(ctx: Context, path: Path, name: str) -> SourceResult:
    """Segments (and tasks) of every episode the file names and the dataset has."""
    _, episodes = _decode(path)
    result = SourceResult(name)
    unknown: list[str] = []
    for key, entry in episodes.items():
        try:
            ep = int(key)
        except ValueError:
            raise ImportFileError(f"{path}: episodes[{key!r}]: the key must be an episode index") from None
        if entry.episode_index is not None and entry.episode_index != ep:
            result.note(f"episodes[{key!r}].episode_index is {entry.episode_index}; the key {ep} is used")
        if ep not in ctx.dataset.episodes:
            unknown.append(key)
            continue
        for i, skill in enumerate(entry.skills):
            if not skill.name.strip():
                raise ImportFileError(f"{path}: episodes[{key!r}].skills[{i}].name is empty")
        found = result.found(ep)
        raw = [(s.name.strip(), s.start, s.end, "") for s in entry.skills]
        found.segments = make_cover(raw, ep, ctx.duration(ep), ctx.fps, ctx.source, result)
        result.counts["segments"] += len(found.segments)
        if entry.description and entry.description.strip():
            found.task = entry.description.strip()
            result.counts["tasks"] += 1
    if unknown:
        have = f"{min(ctx.dataset.episodes)}-{max(ctx.dataset.episodes)}" if ctx.dataset.episodes else "none"
        eps = episode_list({int(k) for k in unknown if k.lstrip("-").isdigit()})
        result.note(
            f"names episode(s) {eps} that the dataset {ctx.dataset.name} does not have (it has {have}); "
            "they are not imported"
        )
    return result


def _subtask_names(path: Path) -> dict[int, str]:
    """subtask_index -> name from meta/subtasks.parquet (names in the pandas index 'subtask')."""
    try:
        table = pq.read_table(path)
    except (OSError, pa.ArrowException) as exc:
        raise ImportFileError(f"{path}: not a readable parquet file ({exc})") from exc
    name_col = "subtask"
    if name_col not in table.column_names:
        meta = json.loads((table.schema.metadata or {}).get(b"pandas", b"{}") or b"{}")
        index = [c for c in meta.get("index_columns", []) if isinstance(c, str)]
        if not index or index[0] not in table.column_names:
            raise ImportFileError(f"{path}: no 'subtask' column or index (the subtask names)")
        name_col = index[0]
    if SUBTASK_INDEX not in table.column_names:
        raise ImportFileError(f"{path}: missing column '{SUBTASK_INDEX}'")
    idx, names = table.column(SUBTASK_INDEX), table.column(name_col)
    if not pa.types.is_integer(idx.type):
        raise ImportFileError(f"{path}: column '{SUBTASK_INDEX}' is {idx.type}, not an integer")
    if not pa.types.is_string(names.type) and not pa.types.is_large_string(names.type):
        raise ImportFileError(f"{path}: column '{name_col}' is {names.type}, not text")
    out: dict[int, str] = {}
    for i, (k, n) in enumerate(zip(idx.to_pylist(), names.to_pylist(), strict=True)):
        if k is None or not n or not n.strip():
            raise ImportFileError(
                f"{path}: row {i}: {SUBTASK_INDEX} = {k!r}, {name_col} = {n!r}: both are needed"
            )
        out[int(k)] = n.strip()
    return out


def read_subtask_index(ctx: Context, path: Path, skip: set[int]) -> SourceResult | None:
    """Segments from the per-frame `subtask_index` of episodes not in `skip` (those skills.json has)."""
    names = _subtask_names(path)
    result = SourceResult(f"{SUBTASKS_FILE} + per-frame {SUBTASK_INDEX}")
    result.counts["subtask names"] = len(names)
    if not has_column(ctx.dataset, SUBTASK_INDEX):
        result.note(f"the data files have no '{SUBTASK_INDEX}' column; the names alone give no segments")
        return result
    for ep, frames, values, _ in episode_indices(ctx.dataset, SUBTASK_INDEX):
        if ep in skip:
            continue
        raw, unknown = [], set()
        for a, b in runs(values):
            v = int(values[a])
            if v >= 0 and v not in names:
                unknown.add(v)
            elif v >= 0:
                raw.append(
                    (names[v], ctx.frame_time(int(frames[a])), ctx.frame_time(int(frames[b - 1]) + 1), "")
                )
        if unknown:
            result.note(
                f"episode {ep}: {SUBTASK_INDEX} {sorted(unknown)} not in {path}; those frames have no subtask"
            )
        if raw:
            found = result.found(ep)
            found.segments = make_cover(raw, ep, ctx.duration(ep), ctx.fps, ctx.source, result)
            result.counts["segments"] += len(found.segments)
    return result
