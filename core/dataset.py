"""Read a local LeRobot dataset straight from its files, without torch.

Supports the v3.0 layout (episode metadata in `meta/episodes/*/*.parquet`, many
episodes per data and video file, located by `from_timestamp`/`to_timestamp`) and
the v2.x layout (`meta/episodes.jsonl`, one parquet and one mp4 per episode).
Opening reads metadata only; signals are read per episode on demand. Every
failure is a `DatasetError` that names the file and what is wrong with it.
A folder in the Hugging Face cache (core.hub) downloads a data or video file the
first time an episode needs it.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from threading import Lock
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from core.errors import DatasetError
from core.hub import HubSource, source_for

SUPPORTED_VERSIONS = ("v2.0", "v2.1", "v3.0")
# Bookkeeping columns every LeRobot frame carries; not signals to plot.
BOOKKEEPING = ("timestamp", "frame_index", "episode_index", "index", "task_index")
NUMERIC_DTYPES = {"float16", "float32", "float64", "int8", "int16", "int32", "int64", "uint8", "bool"}
V3_EPISODE_COLUMNS = (
    "episode_index",
    "tasks",
    "length",
    "data/chunk_index",
    "data/file_index",
    "dataset_from_index",
    "dataset_to_index",
)


@dataclass(frozen=True)
class VideoRef:
    """Where one episode's frames of one camera live: a file and a time window in it."""

    path: Path
    camera: str
    episode: int
    from_timestamp: float
    to_timestamp: float
    fps: float
    length: int

    def timestamp(self, index: int) -> float:
        """Presentation time, in the file, of the episode's frame `index`.

        Matches lerobot: `from_timestamp + timestamp[index]`, with the stored
        timestamp being float32(index / fps).
        """
        return self.from_timestamp + float(np.float32(index / self.fps))


@dataclass(frozen=True)
class EpisodeInfo:
    index: int
    length: int
    tasks: tuple[str, ...]
    fps: float

    @property
    def duration(self) -> float:
        """Seconds covered by the episode's frame grid: length / fps."""
        return self.length / self.fps

    @property
    def task(self) -> str:
        return " / ".join(self.tasks)


@dataclass
class EpisodeSignals:
    """Per-frame numeric features of one episode, as numpy arrays of shape (T, D)."""

    episode: int
    timestamps: np.ndarray
    frame_index: np.ndarray
    channels: dict[str, np.ndarray] = field(default_factory=dict)
    names: dict[str, list[str]] = field(default_factory=dict)
    # Dataset-wide typical range (q01..q99) per dimension, where meta/stats.json says: what a
    # small motion in this one episode is small against.
    ranges: dict[str, np.ndarray] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.timestamps)

    def find(self, pattern: str) -> list[tuple[str, int]]:
        """(feature, dim) pairs whose dimension name contains `pattern` (case-insensitive)."""
        p = pattern.lower()
        return [(f, i) for f, names in self.names.items() for i, n in enumerate(names) if p in n.lower()]


@dataclass(frozen=True)
class _V3Location:
    data_chunk: int
    data_file: int
    from_index: int
    to_index: int
    videos: dict[str, tuple[int, int, float, float]]


def _read_json(path: Path) -> Any:
    if not path.is_file():
        raise DatasetError(f"{path}: file is missing")
    try:
        return json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DatasetError(f"{path}: not valid JSON ({exc})") from exc


def _read_parquet(path: Path, columns: list[str] | None = None, **kwargs: Any) -> pa.Table:
    if not path.is_file():
        raise DatasetError(f"{path}: file is missing")
    try:
        schema = pq.read_schema(path)
    except (OSError, pa.ArrowException) as exc:
        raise DatasetError(f"{path}: not a readable parquet file ({exc})") from exc
    if columns is not None:
        missing = [c for c in columns if c not in schema.names]
        if missing:
            raise DatasetError(f"{path}: missing column(s) {', '.join(repr(c) for c in missing)}")
    try:
        return pq.read_table(path, columns=columns, **kwargs)
    except (OSError, pa.ArrowException) as exc:
        raise DatasetError(f"{path}: cannot read parquet ({exc})") from exc


def _dim_names(feature: str, spec: dict[str, Any], width: int) -> list[str]:
    names = spec.get("names")
    if isinstance(names, dict):  # older datasets: {"motors": [...]}
        names = next(iter(names.values()), None)
    if isinstance(names, list) and len(names) == width and all(isinstance(n, str) for n in names):
        return list(names)
    return [f"{feature}[{i}]" for i in range(width)]


def _column_to_array(col: pa.ChunkedArray, rows: int) -> np.ndarray:
    arr = col.combine_chunks()
    if pa.types.is_fixed_size_list(arr.type) or pa.types.is_list(arr.type):
        flat = arr.flatten().to_numpy(zero_copy_only=False)
        return flat.reshape(rows, -1) if rows else flat.reshape(0, 0)
    return arr.to_numpy(zero_copy_only=False).reshape(rows, 1)


class Dataset:
    """A LeRobot dataset on disk, opened from its metadata."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root).expanduser().resolve()
        if not self.root.is_dir():
            raise DatasetError(f"{self.root}: no such dataset directory")
        # Set for a dataset from the Hub: where its missing files are downloaded from.
        self.hub: HubSource | None = source_for(self.root)
        info_path = self._local("meta/info.json")
        if not info_path.is_file():
            raise DatasetError(f"{info_path}: missing, so {self.root} is not a LeRobot dataset")
        info = _read_json(info_path)
        if not isinstance(info, dict):
            raise DatasetError(f"{info_path}: expected a JSON object")
        self.info: dict[str, Any] = info
        for key in ("codebase_version", "fps", "features"):
            if key not in info:
                raise DatasetError(f"{info_path}: missing field '{key}'")
        self.version: str = str(info["codebase_version"])
        if self.version not in SUPPORTED_VERSIONS:
            raise DatasetError(
                f"{info_path}: codebase_version '{self.version}' is not supported "
                f"(supported: {', '.join(SUPPORTED_VERSIONS)})"
            )
        try:
            self.fps = float(info["fps"])
        except (TypeError, ValueError):
            raise DatasetError(f"{info_path}: field 'fps' = {info['fps']!r} is not a number") from None
        if self.fps <= 0:
            raise DatasetError(f"{info_path}: field 'fps' = {info['fps']!r} must be > 0")
        features = info["features"]
        if not isinstance(features, dict):
            raise DatasetError(f"{info_path}: field 'features' must be an object")
        self.features: dict[str, dict[str, Any]] = features
        self.robot_type: str | None = info.get("robot_type")
        for key in ("data_path",) + (("video_path",) if self.cameras else ()):
            if not isinstance(info.get(key), str):
                raise DatasetError(f"{info_path}: missing field '{key}'")
        self.name = self.hub.dataset_id if self.hub is not None else self.root.name
        self._locations: dict[int, _V3Location] = {}
        self._data_cache: OrderedDict[Path, pa.Table] = OrderedDict()
        self._data_lock = Lock()
        self._stats: dict[str, dict[str, np.ndarray]] | None = None
        if self.version == "v3.0":
            self.episodes = self._load_v3_episodes()
        else:
            self.episodes = self._load_v2_episodes()

    # ------------------------------------------------------------ metadata

    @property
    def cameras(self) -> list[str]:
        """Video feature keys, e.g. 'observation.images.front', in info.json order."""
        return [k for k, v in self.features.items() if isinstance(v, dict) and v.get("dtype") == "video"]

    @property
    def signal_features(self) -> list[str]:
        """Numeric per-frame features worth plotting (state, action, ...)."""
        return [
            k
            for k, v in self.features.items()
            if isinstance(v, dict) and v.get("dtype") in NUMERIC_DTYPES and k not in BOOKKEEPING
        ]

    @property
    def total_frames(self) -> int:
        return sum(e.length for e in self.episodes.values())

    def camera_shape(self, camera: str) -> tuple[int, int]:
        """(height, width) of a camera as recorded in info.json."""
        spec = self.features[camera]
        vi = spec.get("info") or {}
        if "video.height" in vi and "video.width" in vi:
            return int(vi["video.height"]), int(vi["video.width"])
        shape = list(spec.get("shape", []))
        names = spec.get("names") or []
        if len(shape) == 3 and names and names[0] in ("channels", "channel"):
            return int(shape[1]), int(shape[2])
        if len(shape) == 3:
            return int(shape[0]), int(shape[1])
        raise DatasetError(f"{self.root / 'meta' / 'info.json'}: camera '{camera}' has no usable shape")

    def select(self, episodes: list[int] | None = None) -> list[int]:
        """The episodes a command was asked for (None: all of them); ValueError naming the absent ones."""
        if episodes is None:
            return list(self.episodes)
        missing = [e for e in episodes if e not in self.episodes]
        if missing:
            raise ValueError(f"episodes {missing[:10]}: not in {self.root} ({len(self)} episodes)")
        return list(episodes)

    def episode(self, index: int) -> EpisodeInfo:
        try:
            return self.episodes[index]
        except KeyError:
            raise DatasetError(
                f"{self.root}: episode {index} does not exist ({len(self.episodes)} episodes)"
            ) from None

    def __len__(self) -> int:
        return len(self.episodes)

    def __iter__(self) -> Iterator[EpisodeInfo]:
        return iter(self.episodes.values())

    def _load_v3_episodes(self) -> dict[int, EpisodeInfo]:
        meta_dir = self.root / "meta" / "episodes"
        files = sorted(meta_dir.glob("chunk-*/file-*.parquet"))
        if not files:
            raise DatasetError(f"{meta_dir}: no episode metadata files (chunk-*/file-*.parquet)")
        video_cols = [
            f"videos/{cam}/{part}"
            for cam in self.cameras
            for part in ("chunk_index", "file_index", "from_timestamp", "to_timestamp")
        ]
        episodes: dict[int, EpisodeInfo] = {}
        for path in files:
            table = _read_parquet(path, columns=[*V3_EPISODE_COLUMNS, *video_cols])
            cols = {name: table.column(name).to_pylist() for name in table.column_names}
            for row in range(table.num_rows):
                idx = int(cols["episode_index"][row])
                length = int(cols["length"][row])
                if length <= 0:
                    raise DatasetError(f"{path}: episode {idx} has length {length}")
                tasks = tuple(str(t) for t in (cols["tasks"][row] or ()))
                episodes[idx] = EpisodeInfo(idx, length, tasks, self.fps)
                self._locations[idx] = _V3Location(
                    int(cols["data/chunk_index"][row]),
                    int(cols["data/file_index"][row]),
                    int(cols["dataset_from_index"][row]),
                    int(cols["dataset_to_index"][row]),
                    {
                        cam: (
                            int(cols[f"videos/{cam}/chunk_index"][row]),
                            int(cols[f"videos/{cam}/file_index"][row]),
                            float(cols[f"videos/{cam}/from_timestamp"][row]),
                            float(cols[f"videos/{cam}/to_timestamp"][row]),
                        )
                        for cam in self.cameras
                    },
                )
        return dict(sorted(episodes.items()))

    def _load_v2_episodes(self) -> dict[int, EpisodeInfo]:
        path = self._local("meta/episodes.jsonl")
        if not path.is_file():
            raise DatasetError(f"{path}: file is missing")
        episodes: dict[int, EpisodeInfo] = {}
        with path.open() as fh:
            for lineno, line in enumerate(fh, 1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                    idx = int(row["episode_index"])
                    length = int(row["length"])
                    tasks = tuple(str(t) for t in row.get("tasks", ()))
                except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
                    raise DatasetError(f"{path}:{lineno}: bad episode record ({exc!r})") from exc
                if length <= 0:
                    raise DatasetError(f"{path}:{lineno}: episode {idx} has length {length}")
                episodes[idx] = EpisodeInfo(idx, length, tasks, self.fps)
        if not episodes:
            raise DatasetError(f"{path}: no episodes")
        return dict(sorted(episodes.items()))

    # ------------------------------------------------------------ file locations

    def _local(self, rel: str) -> Path:
        """`root/rel`; a dataset from the Hub downloads it first if it is not there yet."""
        path = self.root / rel
        if self.hub is not None and not path.is_file():
            self.hub.fetch(rel)
        return path

    def _chunk(self, episode: int) -> int:
        return episode // int(self.info.get("chunks_size", 1000))

    def data_file(self, episode: int) -> Path:
        self.episode(episode)
        template = self.info["data_path"]
        if self.version == "v3.0":
            loc = self._locations[episode]
            rel = template.format(chunk_index=loc.data_chunk, file_index=loc.data_file)
        else:
            rel = template.format(episode_chunk=self._chunk(episode), episode_index=episode)
        return self._local(rel)

    def video(self, episode: int, camera: str) -> VideoRef:
        """The video location of (episode, camera); a missing file is a DatasetError."""
        info = self.episode(episode)
        if camera not in self.cameras:
            raise DatasetError(f"{self.root}: no camera '{camera}' (cameras: {', '.join(self.cameras)})")
        template = self.info["video_path"]
        if self.version == "v3.0":
            chunk, file, t0, t1 = self._locations[episode].videos[camera]
            rel = template.format(video_key=camera, chunk_index=chunk, file_index=file)
        else:
            rel = template.format(episode_chunk=self._chunk(episode), video_key=camera, episode_index=episode)
            t0, t1 = 0.0, info.duration
        path = self._local(rel)
        if not path.is_file():
            raise DatasetError(f"{path}: video file for episode {episode}, camera '{camera}' is missing")
        return VideoRef(path, camera, episode, t0, t1, self.fps, info.length)

    # ------------------------------------------------------------ signals

    def feature_stats(self) -> dict[str, dict[str, np.ndarray]]:
        """Dataset-wide statistics per numeric feature from meta/stats.json (min, max, std,
        q01, q99 ... as lerobot writes them); {} when the file is missing or unreadable, since
        they only sharpen what the episodes themselves show."""
        if self._stats is None:
            stats: dict[str, dict[str, np.ndarray]] = {}
            path = self.root / "meta" / "stats.json"
            try:
                raw = json.loads(path.read_text()) if path.is_file() else {}
            except (OSError, UnicodeDecodeError, json.JSONDecodeError):
                raw = {}
            for feature in self.signal_features:
                entry = raw.get(feature) if isinstance(raw, dict) else None
                if not isinstance(entry, dict):
                    continue
                width = int(np.prod(self.features[feature].get("shape") or [1]))
                vals = {}
                for key, v in entry.items():
                    try:
                        arr = np.asarray(v, dtype=np.float64).reshape(-1)
                    except (TypeError, ValueError):
                        continue
                    if arr.shape == (width,) and np.all(np.isfinite(arr)):
                        vals[key] = arr
                if vals:
                    stats[feature] = vals
            self._stats = stats
        return self._stats

    def _data_table(self, path: Path, columns: list[str]) -> pa.Table:
        """Data files hold many episodes in v3: keep the last few in memory."""
        with self._data_lock:
            table = self._data_cache.get(path)
            if table is not None and all(c in table.column_names for c in columns):
                self._data_cache.move_to_end(path)
                return table
        table = _read_parquet(path, columns=columns)
        with self._data_lock:
            self._data_cache[path] = table
            while len(self._data_cache) > 2:
                self._data_cache.popitem(last=False)
        return table

    def signals(self, episode: int, features: list[str] | None = None) -> EpisodeSignals:
        """Timestamps and numeric features of one episode, ordered by frame index."""
        info = self.episode(episode)
        wanted = self.signal_features if features is None else list(features)
        unknown = [f for f in wanted if f not in self.features]
        if unknown:
            raise DatasetError(f"{self.root}: unknown feature(s) {', '.join(unknown)}")
        path = self.data_file(episode)
        columns = ["timestamp", "frame_index", "episode_index", *wanted]
        table = self._data_table(path, columns)
        if self.version == "v3.0":
            loc = self._locations[episode]
            ep_col = table.column("episode_index").to_numpy()
            rows = np.flatnonzero(ep_col == episode)
            if len(rows) and rows[-1] - rows[0] + 1 == len(rows):
                table = table.slice(int(rows[0]), len(rows))
            else:
                table = table.take(pa.array(rows))
            expected = loc.to_index - loc.from_index
        else:
            expected = info.length
        if table.num_rows != info.length or table.num_rows != expected:
            raise DatasetError(
                f"{path}: episode {episode} has {table.num_rows} rows, metadata says {info.length}"
            )
        frame_index = table.column("frame_index").to_numpy().astype(np.int64)
        order = np.argsort(frame_index, kind="stable")
        if not np.array_equal(frame_index[order], np.arange(info.length)):
            raise DatasetError(f"{path}: episode {episode} frame_index is not 0..{info.length - 1}")
        out = EpisodeSignals(
            episode=episode,
            timestamps=table.column("timestamp").to_numpy().astype(np.float64)[order],
            frame_index=frame_index[order],
        )
        stats = self.feature_stats()
        for name in wanted:
            arr = _column_to_array(table.column(name), table.num_rows)[order]
            out.channels[name] = arr
            out.names[name] = _dim_names(name, self.features[name], arr.shape[1])
            st = stats.get(name, {})
            lo, hi = st.get("q01", st.get("min")), st.get("q99", st.get("max"))
            if lo is not None and hi is not None and lo.shape == (arr.shape[1],):
                out.ranges[name] = np.maximum(hi - lo, 0.0)
        return out

    # ------------------------------------------------------------ reporting

    def summary(self) -> str:
        lines = [
            f"dataset   {self.name}  ({self.root})",
            f"format    LeRobot {self.version}, {self.fps:g} fps, robot {self.robot_type or '?'}",
            f"episodes  {len(self)}  ({self.total_frames} frames, "
            f"{self.total_frames / self.fps / 60:.1f} min)",
        ]
        for cam in self.cameras:
            h, w = self.camera_shape(cam)
            codec = (self.features[cam].get("info") or {}).get("video.codec", "?")
            lines.append(f"camera    {cam}  {w}x{h} {codec}")
        for feat in self.signal_features:
            shape = self.features[feat].get("shape")
            lines.append(f"signal    {feat}  shape {shape}")
        tasks = sorted({t for e in self for t in e.tasks})
        lines.append(f"tasks     {len(tasks)} distinct")
        lines.extend(f"          - {t}" for t in tasks[:8])
        if len(tasks) > 8:
            lines.append(f"          ... and {len(tasks) - 8} more")
        return "\n".join(lines)


def open_dataset(root: str | Path) -> Dataset:
    return Dataset(root)
