"""`lerobot-language`: the language columns of lerobot 0.6 (`lerobot.datasets.language`).

A copy of the dataset whose data files carry two list-of-struct columns:

- `language_persistent`: the same rows on every frame of an episode (broadcast),
  each stamped with the frame timestamp it becomes active at. One `subtask` row
  per segment, at the first frame the segment covers (start <= t < end); a
  `motion` row there too where the segment has a motion description; a `plan`
  row (the numbered list of subtasks still to do) at every subtask start and
  every dialogue turn (lerobot's validator requires a plan refresh at each
  interjection, and its plan rows are exactly "what is left to do"); and, where
  the task has rephrasings, `task_aug` rows (role user) on the first frame: the
  task itself first, then each rephrasing, as lerobot's plan module writes them
  (its renderer rotates `${task}` through them).
- `language_events`: rows only on the frame they happen at (the frame nearest
  the item's time). A dialogue turn is an `interjection` row (role user) plus a
  `say` tool-call speech atom (role assistant, style null, content null). QAs,
  boxes of every kind, contact points (`vqa`) and trajectories (`trace`) are
  (user, assistant) pairs on their camera: see `core.export.language_grounding`.

Dialogue's skill/scenario/response types have no slot here; the
`lerobot-subtasks` export keeps them.

Rows follow the writer's rules: persistent rows sorted by (timestamp, style,
role), events within a frame by (style, role, camera), timestamps taken from
the data file, never recomputed. The column types equal lerobot's
(`language_persistent_arrow_type`, `language_events_arrow_type`), written
with pyarrow only: lerobot is not needed to export, only to check.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from core.annotations import EpisodeAnnotation
from core.export.base import ExportJob, frame_segment_indices, nearest_frame
from core.export.language_grounding import Row, Warn, grounding_events
from core.export.lerobot_data import (
    FileRows,
    copy_dataset,
    count_files,
    counter,
    data_files,
    read_rows,
    require_v3,
    update_info,
    write_rows,
)
from core.export.lists import repeated_slices

LANGUAGE_PERSISTENT = "language_persistent"
LANGUAGE_EVENTS = "language_events"
LANGUAGE_COLUMNS = (LANGUAGE_PERSISTENT, LANGUAGE_EVENTS)


def _json_type() -> pa.DataType:
    return pa.json_() if hasattr(pa, "json_") else pa.string()


def persistent_row_type() -> pa.StructType:
    return pa.struct(
        [
            pa.field("role", pa.string(), nullable=False),
            pa.field("content", pa.string()),
            pa.field("style", pa.string()),
            pa.field("timestamp", pa.float32(), nullable=False),
            pa.field("camera", pa.string()),
            pa.field("tool_calls", pa.list_(_json_type())),
        ]
    )


def event_row_type() -> pa.StructType:
    return pa.struct(
        [
            pa.field("role", pa.string(), nullable=False),
            pa.field("content", pa.string()),
            pa.field("style", pa.string()),
            pa.field("camera", pa.string()),
            pa.field("tool_calls", pa.list_(_json_type())),
        ]
    )


# meta/info.json entries, as lerobot's `language_feature_info()` writes them.
LANGUAGE_FEATURES: dict[str, dict[str, Any]] = {
    LANGUAGE_PERSISTENT: {"dtype": "language", "shape": [1], "names": None},
    LANGUAGE_EVENTS: {"dtype": "language", "shape": [1], "names": None},
}


def _hf_row(with_timestamp: bool) -> dict[str, Any]:
    row: dict[str, Any] = {
        "role": {"dtype": "string", "_type": "Value"},
        "content": {"dtype": "string", "_type": "Value"},
        "style": {"dtype": "string", "_type": "Value"},
    }
    if with_timestamp:
        row["timestamp"] = {"dtype": "float32", "_type": "Value"}
    row["camera"] = {"dtype": "string", "_type": "Value"}
    row["tool_calls"] = {"feature": {"_type": "Json"}, "_type": "List"}
    return row


# The data files' Hugging Face feature metadata for the two columns.
HF_FEATURES: dict[str, Any] = {
    LANGUAGE_PERSISTENT: {"feature": _hf_row(True), "_type": "List"},
    LANGUAGE_EVENTS: {"feature": _hf_row(False), "_type": "List"},
}

# lerobot.datasets.language.SAY_TOOL_SCHEMA: the tool the speech atoms call.
SAY_TOOL_SCHEMA: dict[str, Any] = {
    "type": "function",
    "function": {
        "name": "say",
        "description": "Speak a short utterance to the user via the TTS executor.",
        "parameters": {
            "type": "object",
            "properties": {"text": {"type": "string", "description": "The verbatim text to speak."}},
            "required": ["text"],
        },
    },
}


def say_call(text: str) -> dict[str, Any]:
    return {"type": "function", "function": {"name": "say", "arguments": {"text": text}}}


def plan_text(names: list[str]) -> str:
    return "\n".join(f"{i}. {name}" for i, name in enumerate(names, 1))


@dataclass
class EpisodeLanguage:
    """One episode's rows: persistent ones with their frame, events keyed by frame."""

    # (frame, row), sorted as lerobot's writer sorts them.
    persistent: list[tuple[int, Row]] = field(default_factory=list)
    # (frame, row), sorted by frame then (style, role, camera).
    events: list[tuple[int, Row]] = field(default_factory=list)


def task_phrasings(task: str, aug: list[str]) -> list[str]:
    """The task first, then its rephrasings, each once (lerobot's `_task_aug_rows` order)."""
    return list(dict.fromkeys(p.strip() for p in [task, *aug] if p.strip()))


def episode_rows(
    ann: EpisodeAnnotation,
    n_frames: int,
    fps: float,
    warn: Warn,
    sizes: dict[str, tuple[int, int]] | None = None,
    task: str = "",
) -> EpisodeLanguage:
    """The language rows of one annotation on its episode's frame grid.

    `sizes` gives each camera's (height, width) for pixel coordinates; `task` is
    the dataset's task of the episode where the annotation has none.
    """
    seg_of_frame = frame_segment_indices(ann.segments, n_frames, fps)
    names = [s.name for s in ann.segments]
    persistent: dict[tuple[int, str], Row] = {}
    first_frames = {}
    for k in np.flatnonzero(np.diff(seg_of_frame, prepend=-2) != 0):
        i = int(seg_of_frame[k])
        if i >= 0 and i not in first_frames:
            first_frames[i] = int(k)
    described = [s for s in ann.segments if s.motion.strip()]
    for i, seg in enumerate(ann.segments):
        k = first_frames.get(i)
        if k is None:
            warn(
                f"episode {ann.episode}: segment {i} '{seg.name}' [{seg.start:.3f}, {seg.end:.3f}) "
                "covers no frame; it has no subtask row"
            )
            continue
        persistent[(k, "subtask")] = ("assistant", seg.name, "subtask", None, None)
        persistent[(k, "plan")] = ("assistant", plan_text(names[i:]), "plan", None, None)
        if seg.motion.strip():
            persistent[(k, "motion")] = ("assistant", seg.motion.strip(), "motion", None, None)
        elif described:
            warn(
                f"episode {ann.episode}: segment {i} '{seg.name}' has no motion description while "
                f"{len(described)} other segment(s) have one; lerobot's active_at(style=motion) returns "
                "the previous segment's there"
            )

    events: list[tuple[int, Row]] = []
    for turn in ann.dialogue:
        k = nearest_frame(turn.t, fps, n_frames)
        events.append((k, ("user", turn.user_prompt, "interjection", None, None)))
        call = json.dumps(say_call(turn.robot_utterance), ensure_ascii=False)
        events.append((k, ("assistant", None, None, None, [call])))
        if (k, "plan") not in persistent:
            i = int(seg_of_frame[k])
            todo = names[i:] if i >= 0 else [turn.skill]
            persistent[(k, "plan")] = ("assistant", plan_text(todo), "plan", None, None)
    events += grounding_events(ann, n_frames, fps, sizes or {}, warn)

    rows = [(k, row) for (k, _), row in persistent.items()]
    if ann.task_aug:
        rows += [
            (0, ("user", p, "task_aug", None, None)) for p in task_phrasings(ann.task or task, ann.task_aug)
        ]
    out = EpisodeLanguage()
    out.persistent = sorted(rows, key=lambda x: (x[0], x[1][2] or "", x[1][0]))
    out.events = sorted(events, key=lambda x: (x[0], x[1][2] or "", x[1][0], x[1][3] or ""))
    return out


def _struct(rows: list[Row], timestamps: np.ndarray | None) -> pa.StructArray:
    """Rows as a struct array of lerobot's row type (with `timestamps` for persistent rows)."""
    n = len(rows)
    tool_lens = np.array([len(r[4]) if r[4] is not None else 0 for r in rows], dtype=np.int32)
    offsets = np.zeros(n + 1, dtype=np.int32)
    np.cumsum(tool_lens, out=offsets[1:])
    storage = pa.array([c for r in rows if r[4] is not None for c in r[4]], type=pa.string())
    calls = storage if _json_type() == pa.string() else pa.ExtensionArray.from_storage(_json_type(), storage)
    mask = pa.array([r[4] is None for r in rows], type=pa.bool_())
    tool_calls = pa.ListArray.from_arrays(pa.array(offsets), calls, mask=mask)
    children = [
        pa.array([r[0] for r in rows], type=pa.string()),
        pa.array([r[1] for r in rows], type=pa.string()),
        pa.array([r[2] for r in rows], type=pa.string()),
    ]
    if timestamps is not None:
        children.append(pa.array(timestamps.astype(np.float32), type=pa.float32()))
    children += [pa.array([r[3] for r in rows], type=pa.string()), tool_calls]
    row_type = persistent_row_type() if timestamps is not None else event_row_type()
    return pa.StructArray.from_arrays(children, fields=list(row_type))


def language_columns(
    rows: FileRows,
    anns: dict[int, EpisodeAnnotation],
    fps: float,
    warn: Warn,
    sizes: dict[str, tuple[int, int]] | None = None,
    tasks: dict[int, str] | None = None,
) -> dict[str, pa.Array]:
    """The two language columns for one data file's rows (see `FileRows`); `sizes` are the
    cameras' (height, width), `tasks` the dataset's task per episode."""
    n = rows.num_rows
    p_rows: list[Row] = []
    p_ts: list[float] = []
    p_start = np.zeros(n, dtype=np.int64)
    p_count = np.zeros(n, dtype=np.int64)
    e_rows: list[Row] = []
    e_start = np.zeros(n, dtype=np.int64)
    e_count = np.zeros(n, dtype=np.int64)
    for ep in rows.spans:
        ann = anns.get(ep)
        if ann is None:
            continue
        row_ids = rows.rows(ep)
        ts = rows.timestamps(ep)
        lang = episode_rows(ann, len(row_ids), fps, warn, sizes, (tasks or {}).get(ep, ""))
        first = len(p_rows)
        for k, row in lang.persistent:
            p_rows.append(row)
            p_ts.append(float(ts[k]))
        p_start[row_ids] = first
        p_count[row_ids] = len(lang.persistent)
        if lang.events:
            frames = np.array([k for k, _ in lang.events], dtype=np.int64)
            base = len(e_rows)
            e_rows.extend(row for _, row in lang.events)
            uniq, first_idx, counts = np.unique(frames, return_index=True, return_counts=True)
            e_start[row_ids[uniq]] = base + first_idx
            e_count[row_ids[uniq]] = counts
    p_values = _struct(p_rows, np.array(p_ts, dtype=np.float32))
    e_values = _struct(e_rows, None)
    persistent = repeated_slices(p_values, p_start, p_count, pa.list_(persistent_row_type()))
    events = repeated_slices(e_values, e_start, e_count, pa.list_(event_row_type()))
    return {LANGUAGE_PERSISTENT: persistent, LANGUAGE_EVENTS: events}


def write_lerobot_language(job: ExportJob, out: Path) -> None:
    """Copy the dataset into `out` with both language columns in every data file."""
    ds = job.dataset
    require_v3(ds, "lerobot-language")
    files = data_files(ds)
    tick = counter(job, count_files(ds.root))
    copy_dataset(job, out, files, tick)
    sizes = {cam: ds.camera_shape(cam) for cam in ds.cameras}
    tasks = {ep: info.task for ep, info in ds.episodes.items()}
    for path in files:
        rows = read_rows(path, ds)
        columns = language_columns(rows, job.annotations, ds.fps, job.warn, sizes, tasks)
        write_rows(out / path.relative_to(ds.root), rows.table, columns, HF_FEATURES)
        job.report.files += 1
        job.report.frames += rows.num_rows
        tick()
    tools = list(ds.info.get("tools") or [])
    if not any((t.get("function") or {}).get("name") == "say" for t in tools if isinstance(t, dict)):
        tools.append(SAY_TOOL_SCHEMA)
    update_info(out, LANGUAGE_FEATURES, tools=tools)
