"""Dialogue in the layout of lerobot's `annotate_pgen.py` (and our `lerobot-subtasks` export).

- `meta/tasks_high_level.parquet`: one row per distinct turn, `task_index` with
  `user_prompt`, `robot_utterance`, `skill`, `scenario_type`, `response_type`
  (the last three optional); the per-frame `task_index_high_level` of the data
  files says when each turn is spoken: a turn starts on each frame where the index
  changes (-1: none).
- `meta/syn_annotations.jsonl`: one record per turn (`episode_id`, the episode's
  frame as `episode_frame_index`, else `timestamp`, and the turn's fields with
  `skill_current`). A turn repeated on consecutive frames, or two on one frame, is
  invisible in the per-frame column, so where the file has more turns for an
  episode than the column shows, its turns are taken.
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from core.annotations import RESPONSE_TYPES, SCENARIO_TYPES
from core.imports.base import Context, ImportFileError, SourceResult, Turn, episode_list
from core.imports.frames import episode_indices, has_column, runs

HIGH_LEVEL_FILE = "meta/tasks_high_level.parquet"
SYN_FILE = "meta/syn_annotations.jsonl"
HIGH_LEVEL_INDEX = "task_index_high_level"
REQUIRED = ("task_index", "user_prompt", "robot_utterance")
OPTIONAL = ("skill", "scenario_type", "response_type")


def _text_column(table: pa.Table, name: str, path: Path) -> list[str]:
    col = table.column(name)
    if not (pa.types.is_string(col.type) or pa.types.is_large_string(col.type) or pa.types.is_null(col.type)):
        raise ImportFileError(f"{path}: column '{name}' is {col.type}, not text")
    return [v or "" for v in col.to_pylist()]


def read_turn_table(path: Path) -> dict[int, dict[str, str]]:
    """task_index -> the turn's fields, from tasks_high_level.parquet."""
    try:
        table = pq.read_table(path)
    except (OSError, pa.ArrowException) as exc:
        raise ImportFileError(f"{path}: not a readable parquet file ({exc})") from exc
    for name in REQUIRED:
        if name not in table.column_names:
            raise ImportFileError(f"{path}: missing column '{name}'")
    idx = table.column("task_index")
    if not pa.types.is_integer(idx.type):
        raise ImportFileError(f"{path}: column 'task_index' is {idx.type}, not an integer index")
    fields = {n: _text_column(table, n, path) for n in (*REQUIRED[1:], *OPTIONAL) if n in table.column_names}
    out: dict[int, dict[str, str]] = {}
    for row, k in enumerate(idx.to_pylist()):
        if k is None:
            raise ImportFileError(f"{path}: row {row}: task_index is null")
        if k in out:
            raise ImportFileError(f"{path}: task_index {k} appears twice (rows name one turn each)")
        out[int(k)] = {n: values[row] for n, values in fields.items()}
    return out


def _turn(fields: dict[str, Any], t: float, where: str, result: SourceResult) -> Turn | None:
    """A Turn from a row's fields; unknown types fall back to the defaults, with a note."""
    prompt = str(fields.get("user_prompt") or "").strip()
    reply = str(fields.get("robot_utterance") or "").strip()
    if not prompt or not reply:
        missing = "user_prompt" if not prompt else "robot_utterance"
        result.note(f"{where}: {missing} is empty; the turn is not imported")
        return None
    turn = Turn(t=t, user_prompt=prompt, robot_utterance=reply, skill=str(fields.get("skill") or "").strip())
    for name, allowed in (("scenario_type", SCENARIO_TYPES), ("response_type", RESPONSE_TYPES)):
        value = fields.get(name)
        if value in (None, ""):
            continue
        if value not in allowed:
            result.note(f"{where}: {name} {value!r} is not one of {', '.join(allowed)}; {allowed[0]} is used")
            continue
        setattr(turn, name, value)
    return turn


def read_high_level(ctx: Context, path: Path) -> SourceResult:
    """Turns from tasks_high_level.parquet, timed by the per-frame task_index_high_level."""
    table = read_turn_table(path)
    result = SourceResult(f"{HIGH_LEVEL_FILE} + per-frame {HIGH_LEVEL_INDEX}")
    if not table:
        return result
    if not has_column(ctx.dataset, HIGH_LEVEL_INDEX):
        result.counts["turns with no time (not imported)"] = len(table)
        result.note(f"the data files have no '{HIGH_LEVEL_INDEX}' column, so no turn has a time")
        return result
    for ep, frames, values, _ in episode_indices(ctx.dataset, HIGH_LEVEL_INDEX):
        turns, unknown = [], set()
        for a, _ in runs(values):
            v = int(values[a])
            if v < 0:
                continue
            if v not in table:
                unknown.add(v)
                continue
            where = f"episode {ep} frame {int(frames[a])} ({HIGH_LEVEL_INDEX} {v})"
            turn = _turn(table[v], ctx.frame_time(int(frames[a])), where, result)
            if turn is not None:
                turns.append(turn)
        if unknown:
            result.note(f"episode {ep}: {HIGH_LEVEL_INDEX} {sorted(unknown)} not in {path}; not imported")
        if turns:
            result.found(ep).dialogue = turns
            result.counts["dialogue turns"] += len(turns)
    return result


def read_syn_annotations(ctx: Context, path: Path, per_frame: SourceResult | None) -> SourceResult:
    """Turns of syn_annotations.jsonl, for the episodes where it has more than the per-frame column."""
    result = SourceResult(SYN_FILE)
    by_episode: dict[int, list[Turn]] = defaultdict(list)
    unknown: set[int] = set()
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise ImportFileError(f"{path}: cannot read ({exc})") from exc
    for lineno, line in enumerate(lines, 1):
        if not line.strip():
            continue
        where = f"{path}:{lineno}"
        try:
            rec = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ImportFileError(f"{where}: not valid JSON ({exc})") from exc
        if not isinstance(rec, dict):
            raise ImportFileError(f"{where}: expected a JSON object")
        ep = rec.get("episode_id", rec.get("episode_index"))
        if not isinstance(ep, int) or isinstance(ep, bool):
            raise ImportFileError(f"{where}: field 'episode_id' = {ep!r}: must be an episode index")
        if ep not in ctx.dataset.episodes:
            unknown.add(ep)
            continue
        frame = rec.get("episode_frame_index")
        if isinstance(frame, int) and not isinstance(frame, bool):
            t = ctx.frame_time(min(max(frame, 0), ctx.n_frames(ep) - 1))
        else:
            stamp = rec.get("timestamp")
            if not isinstance(stamp, int | float) or isinstance(stamp, bool):
                raise ImportFileError(f"{where}: needs 'episode_frame_index' or a numeric 'timestamp'")
            t = ctx.snap(float(stamp), ep)
        fields = {**rec, "skill": rec.get("skill_current", rec.get("skill"))}
        turn = _turn(fields, t, f"line {lineno} (episode {ep})", result)
        if turn is not None:
            by_episode[ep].append(turn)
    if unknown:
        result.note(f"names episode(s) {episode_list(unknown)} that the dataset does not have; not imported")
    used, redundant = [], 0
    for ep, turns in sorted(by_episode.items()):
        known = per_frame.episodes.get(ep) if per_frame is not None else None
        have = len(known.dialogue or []) if known is not None else 0
        if len(turns) <= have:
            redundant += len(turns)
            continue
        result.found(ep).dialogue = sorted(turns, key=lambda u: u.t)
        result.counts["dialogue turns"] += len(turns)
        if have:
            used.append(ep)
    if redundant:
        result.counts[f"turns no more than {HIGH_LEVEL_INDEX} shows (not needed)"] = redundant
    if used:
        result.note(
            f"episode(s) {episode_list(used)}: more turns here than {HIGH_LEVEL_INDEX} shows; these are taken"
        )
    return result
