"""`lerobot-subtasks`: the subtask/skill layout of the reference annotation tools.

What lerobot's subtask annotation scripts and the LeRobot Annotate GUI write,
on a copy of the dataset:

- `meta/subtasks.parquet`: the sorted subtask names as a pandas index
  ("subtask") with one column, `subtask_index`.
- `meta/skills.json`: {"coarse_description", "skill_to_subtask_index",
  "episodes": {"<ep>": {"episode_index", "description", "skills": [{name, start, end}]}}}.
- a per-frame `subtask_index` (int64): the segment with start <= t < end at the
  frame's time t = frame_index / fps, the last frame taking the last segment;
  -1 on frames of episodes that were not exported.
- with dialogue: `meta/tasks_high_level.parquet` (index "task" =
  "user_prompt | robot_utterance"; columns task_index, user_prompt,
  robot_utterance, skill, scenario_type, response_type), `meta/syn_annotations.jsonl`
  (one record per turn) and a per-frame `task_index_high_level` (int64): the
  latest turn at or before the frame (a turn lands on the frame nearest its
  time), -1 before the first turn and on episodes without dialogue.
- `meta/info.json` features for the new columns, so `LeRobotDataset` returns them.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from core.annotations import DialogueTurn, EpisodeAnnotation
from core.export.base import ExportJob, frame_segment_indices, nearest_frame
from core.export.lerobot_data import (
    copy_dataset,
    count_files,
    counter,
    data_files,
    fresh,
    read_rows,
    require_v3,
    update_info,
    write_rows,
)

SUBTASK_INDEX = "subtask_index"
HIGH_LEVEL_INDEX = "task_index_high_level"
INDEX_FEATURE: dict[str, Any] = {"dtype": "int64", "shape": [1], "names": None}
HF_INDEX_FEATURE: dict[str, Any] = {"dtype": "int64", "_type": "Value"}
HIGH_LEVEL_FIELDS = ("user_prompt", "robot_utterance", "skill", "scenario_type", "response_type")


def indexed_table(index: str, index_values: list[str], columns: dict[str, pa.Array]) -> pa.Table:
    """A table that pandas reads back with `index` as its index (as DataFrame.to_parquet writes it)."""
    names = [*columns, index]
    table = pa.table([*columns.values(), pa.array(index_values, type=pa.string())], names=names)

    def kind(t: pa.DataType) -> tuple[str, str]:
        return ("int64", "int64") if pa.types.is_integer(t) else ("unicode", "object")

    meta = {
        "index_columns": [index],
        "column_indexes": [
            {
                "name": None,
                "field_name": None,
                "pandas_type": "unicode",
                "numpy_type": "object",
                "metadata": {"encoding": "UTF-8"},
            }
        ],
        "columns": [
            {
                "name": n,
                "field_name": n,
                "pandas_type": kind(table.schema.field(n).type)[0],
                "numpy_type": kind(table.schema.field(n).type)[1],
                "metadata": None,
            }
            for n in names
        ],
        "attributes": {},
        "creator": {"library": "pyarrow", "version": pa.__version__},
        "pandas_version": "2.0.0",
    }
    return table.replace_schema_metadata({b"pandas": json.dumps(meta).encode()})


def subtask_vocabulary(anns: dict[int, EpisodeAnnotation]) -> dict[str, int]:
    """Sorted unique subtask names -> index (the reference tools sort them too)."""
    names = sorted({s.name for a in anns.values() for s in a.segments})
    return {n: i for i, n in enumerate(names)}


def dataset_tasks(job: ExportJob) -> list[str]:
    """Every task of the dataset, in episode order, each once (an exported annotation's own
    task stands for its episode's)."""
    tasks: dict[str, None] = {}
    for ep, info in sorted(job.dataset.episodes.items()):
        ann = job.annotations.get(ep)
        for task in (ann.task,) if ann is not None and ann.task else info.tasks:
            if task.strip():
                tasks.setdefault(task.strip(), None)
    return list(tasks)


def coarse_description(job: ExportJob) -> str:
    """What the whole dataset is about: its task when it has one (as the reference tools
    write it), else "N tasks: first; second; ..." so a multi-task dataset is not
    described by one of its tasks."""
    tasks = dataset_tasks(job)
    if len(tasks) <= 1:
        return tasks[0] if tasks else ""
    return f"{len(tasks)} tasks: " + "; ".join(tasks)


def skills_json(job: ExportJob, vocab: dict[str, int]) -> dict[str, Any]:
    episodes = {}
    for ep, ann in sorted(job.annotations.items()):
        episodes[str(ep)] = {
            "episode_index": ep,
            "description": ann.task or job.dataset.episodes[ep].task,
            "skills": [{"name": s.name, "start": s.start, "end": s.end} for s in ann.segments],
        }
    return {
        "coarse_description": coarse_description(job),
        "skill_to_subtask_index": vocab,
        "episodes": episodes,
    }


class HighLevelTasks:
    """Unique dialogue turns -> task_index_high_level, in first-seen order."""

    def __init__(self) -> None:
        self.index: dict[tuple[str, ...], int] = {}

    def add(self, key: tuple[str, ...]) -> int:
        return self.index.setdefault(key, len(self.index))

    def table(self) -> pa.Table:
        keys = list(self.index)
        columns: dict[str, pa.Array] = {"task_index": pa.array(list(self.index.values()), type=pa.int64())}
        for i, name in enumerate(HIGH_LEVEL_FIELDS):
            columns[name] = pa.array([k[i] for k in keys], type=pa.string())
        return indexed_table("task", [f"{k[0]} | {k[1]}" for k in keys], columns)


def episode_columns(
    ann: EpisodeAnnotation, n: int, fps: float, vocab: dict[str, int], tasks: HighLevelTasks
) -> tuple[np.ndarray, np.ndarray, list[tuple[int, int, DialogueTurn]]]:
    """Per-frame subtask and high-level indices of one episode, and its turns (frame, index, turn)."""
    seg = frame_segment_indices(ann.segments, n, fps)
    seg_vocab = np.array([vocab[s.name] for s in ann.segments] + [-1], dtype=np.int64)
    subtask = seg_vocab[seg]  # seg == -1 picks the trailing -1
    high = np.full(n, -1, dtype=np.int64)
    turns = []
    for turn in sorted(ann.dialogue, key=lambda d: d.t):
        key = tuple(getattr(turn, f) for f in HIGH_LEVEL_FIELDS)
        k = nearest_frame(turn.t, fps, n)
        idx = tasks.add(key)
        high[k:] = idx
        turns.append((k, idx, turn))
    return subtask, high, turns


def syn_record(
    ann: EpisodeAnnotation, k: int, idx: int, turn: DialogueTurn, global_index: int, fps: float
) -> dict[str, Any]:
    """One line of meta/syn_annotations.jsonl: the reference keys (frame_index is the
    dataset-wide index, as there) plus the episode's own frame and the high-level index."""
    t = k / fps
    return {
        "episode_id": ann.episode,
        "frame_index": global_index,
        "episode_frame_index": k,
        "timestamp": t,
        "skill_current": turn.skill,
        "skill_history": [s.name for s in ann.segments if s.end <= t + 1e-9],
        "task_description": ann.task,
        "sampled": True,
        "user_prompt": turn.user_prompt,
        "robot_utterance": turn.robot_utterance,
        "scenario_type": turn.scenario_type,
        "response_type": turn.response_type,
        HIGH_LEVEL_INDEX: idx,
    }


def write_lerobot_subtasks(job: ExportJob, out: Path) -> None:
    """Copy the dataset into `out` with subtask (and dialogue) indices and their tables."""
    ds = job.dataset
    require_v3(ds, "lerobot-subtasks")
    anns = job.annotations
    vocab = subtask_vocabulary(anns)
    with_dialogue = any(a.dialogue for a in anns.values())
    files = data_files(ds)
    tick = counter(job, count_files(ds.root))
    copy_dataset(job, out, files, tick)
    tasks = HighLevelTasks()
    syn: list[dict[str, Any]] = []
    drop = (SUBTASK_INDEX, HIGH_LEVEL_INDEX)
    for path in files:
        rows = read_rows(path, ds, drop=drop)
        subtask = np.full(rows.num_rows, -1, dtype=np.int64)
        high = np.full(rows.num_rows, -1, dtype=np.int64)
        index_col = rows.table.column("index").to_numpy() if "index" in rows.table.column_names else None
        for ep in rows.spans:
            ann = anns.get(ep)
            if ann is None:
                continue
            row_ids = rows.rows(ep)
            s, h, turns = episode_columns(ann, len(row_ids), ds.fps, vocab, tasks)
            subtask[row_ids] = s
            high[row_ids] = h
            for k, idx, turn in turns:
                gi = int(index_col[row_ids[k]]) if index_col is not None else int(row_ids[k])
                syn.append(syn_record(ann, k, idx, turn, gi, ds.fps))
        columns = {SUBTASK_INDEX: pa.array(subtask)}
        hf = {SUBTASK_INDEX: HF_INDEX_FEATURE}
        if with_dialogue:
            columns[HIGH_LEVEL_INDEX] = pa.array(high)
            hf[HIGH_LEVEL_INDEX] = HF_INDEX_FEATURE
        write_rows(out / path.relative_to(ds.root), rows.table, columns, hf)
        job.report.files += 1
        job.report.frames += rows.num_rows
        tick()

    meta = out / "meta"
    names = list(vocab)
    pq.write_table(
        indexed_table("subtask", names, {SUBTASK_INDEX: pa.array(list(vocab.values()), type=pa.int64())}),
        fresh(meta / "subtasks.parquet"),
    )
    fresh(meta / "skills.json").write_text(
        json.dumps(skills_json(job, vocab), indent=2, ensure_ascii=False) + "\n"
    )
    features = {SUBTASK_INDEX: dict(INDEX_FEATURE)}
    remove: tuple[str, ...] = ()
    job.report.files += 2
    if with_dialogue:
        pq.write_table(tasks.table(), fresh(meta / "tasks_high_level.parquet"))
        with fresh(meta / "syn_annotations.jsonl").open("w", encoding="utf-8") as fh:
            for rec in sorted(syn, key=lambda r: (r["episode_id"], r["episode_frame_index"])):
                fh.write(json.dumps(rec, ensure_ascii=False) + "\n")
        features[HIGH_LEVEL_INDEX] = dict(INDEX_FEATURE)
        job.report.files += 2
    else:
        for stale in ("tasks_high_level.parquet", "syn_annotations.jsonl"):
            (meta / stale).unlink(missing_ok=True)
        remove = (HIGH_LEVEL_INDEX,)
    update_info(out, features, remove=remove)
