"""Per-frame columns of a dataset's data files, by episode, read with pyarrow only.

The sources that live in the data files (`subtask_index`, `task_index_high_level`,
the language columns) read just their column plus the bookkeeping, file by file
(a v3 file holds many episodes), and see each episode's rows in frame order.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from core.dataset import Dataset
from core.imports.base import ImportFileError


def data_files(ds: Dataset) -> list[Path]:
    """The data files that hold the dataset's episodes, in order."""
    return sorted({ds.data_file(ep) for ep in ds.episodes})


def _schema(path: Path) -> pa.Schema:
    try:
        return pq.read_schema(path)
    except (OSError, pa.ArrowException) as exc:
        raise ImportFileError(f"{path}: not a readable parquet file ({exc})") from exc


def has_column(ds: Dataset, column: str) -> bool:
    """Whether the data files have `column`: declared in info.json (as lerobot's writers do), or,
    in a local dataset, in the first data file (lerobot writes them alike). A dataset from the
    Hub is not downloaded just to look."""
    if column in ds.features:
        return True
    if ds.hub is not None:
        return False
    files = data_files(ds)
    return bool(files) and column in _schema(files[0]).names


def _tables(ds: Dataset, column: str) -> Iterator[tuple[pa.Table, Path]]:
    """Each data file that has `column`, read with the bookkeeping columns."""
    for path in data_files(ds):
        schema = _schema(path)
        if column not in schema.names:
            continue
        for need in ("episode_index", "frame_index"):
            if need not in schema.names:
                raise ImportFileError(f"{path}: missing column '{need}'")
        try:
            yield pq.read_table(path, columns=["episode_index", "frame_index", column]), path
        except (OSError, pa.ArrowException) as exc:
            raise ImportFileError(f"{path}: cannot read column '{column}' ({exc})") from exc


def episode_indices(ds: Dataset, column: str) -> Iterator[tuple[int, np.ndarray, np.ndarray, Path]]:
    """(episode, frame_index, `column` as int64 with nulls as -1, file), in frame order, for every
    episode of the dataset whose data file has the integer column `column`."""
    for table, path in _tables(ds, column):
        col = table.column(column)
        if not pa.types.is_integer(col.type):
            raise ImportFileError(f"{path}: column '{column}' is {col.type}, not an integer index")
        episode = table.column("episode_index").to_numpy().astype(np.int64, copy=False)
        frame = table.column("frame_index").to_numpy().astype(np.int64, copy=False)
        values = col.fill_null(-1).to_numpy().astype(np.int64, copy=False)
        order = np.lexsort((frame, episode))
        episode, frame, values = episode[order], frame[order], values[order]
        eps, starts = np.unique(episode, return_index=True)
        stops = np.append(starts[1:], len(order))
        for ep, a, b in zip(eps, starts, stops, strict=True):
            if int(ep) in ds.episodes:
                yield int(ep), frame[a:b], values[a:b], path


def runs(values: np.ndarray) -> list[tuple[int, int]]:
    """(start, stop) of each run of equal values: [0 0 3 3 3 -1] -> [(0, 2), (2, 5), (5, 6)]."""
    if not len(values):
        return []
    starts = np.concatenate(([0], np.flatnonzero(np.diff(values) != 0) + 1))
    stops = np.append(starts[1:], len(values))
    return list(zip(starts.tolist(), stops.tolist(), strict=True))


def first_frame_values(ds: Dataset, column: str) -> Iterator[tuple[int, Any, Path]]:
    """(episode, `column` on its first frame, file): for columns repeated on every frame
    (lerobot's `language_persistent`), read once per episode rather than per frame."""
    for table, path in _tables(ds, column):
        episode = table.column("episode_index").to_numpy().astype(np.int64, copy=False)
        frame = table.column("frame_index").to_numpy().astype(np.int64, copy=False)
        order = np.lexsort((frame, episode))
        eps, starts = np.unique(episode[order], return_index=True)
        col = table.column(column)
        for ep, row in zip(eps, order[starts], strict=True):
            if int(ep) in ds.episodes:
                # A one-row slice: no copy of the column (a take would concatenate its chunks).
                yield int(ep), col.slice(int(row), 1).to_pylist()[0], path


def nonempty_list_values(ds: Dataset, column: str) -> Iterator[tuple[int, int, list[Any], Path]]:
    """(episode, frame, the list, file) for every frame whose list `column` is not empty
    (lerobot's `language_events`: most frames have none)."""
    for table, path in _tables(ds, column):
        col = table.column(column)
        if not (pa.types.is_list(col.type) or pa.types.is_large_list(col.type)):
            raise ImportFileError(f"{path}: column '{column}' is {col.type}, not a list of rows")
        lengths = pc.fill_null(pc.list_value_length(col), 0).to_numpy()
        picked = table.filter(pa.array(lengths > 0))
        episode = picked.column("episode_index").to_pylist()
        frame = picked.column("frame_index").to_pylist()
        for ep, k, value in zip(episode, frame, picked.column(column).to_pylist(), strict=True):
            if int(ep) in ds.episodes:
                yield int(ep), int(k), value, path
