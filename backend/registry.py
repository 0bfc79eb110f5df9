"""Datasets the backend serves, by id, confined to the configured roots.

Clients name datasets by id (a directory name under a root); they never send
paths. An id is looked up in a table built by scanning the roots, and a dataset
whose real path (after symlinks) leaves its root is never served.
"""

from __future__ import annotations

import re
import threading
from pathlib import Path

from core.dataset import Dataset
from core.errors import DatasetError
from core.hub import dataset_name

_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


class RegistryError(DatasetError):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def _is_dataset(path: Path) -> bool:
    return (path / "meta" / "info.json").is_file()


class DatasetRegistry:
    def __init__(self, roots: list[Path]) -> None:
        if not roots:
            raise ValueError("datasets: give at least one dataset directory or folder of datasets")
        self.roots = [Path(r).expanduser().resolve() for r in roots]
        for r in self.roots:
            if not r.is_dir():
                raise ValueError(f"datasets: {r} is not a directory")
        self._lock = threading.Lock()
        self._paths: dict[str, Path] = {}
        self._open: dict[str, Dataset] = {}
        self.rescan()

    def rescan(self) -> None:
        """Find datasets: each root is a dataset itself or a folder of datasets (one level)."""
        found: dict[str, Path] = {}
        for root in self.roots:
            candidates = [root] if _is_dataset(root) else sorted(p for p in root.iterdir() if p.is_dir())
            base = root.parent if _is_dataset(root) else root
            for path in candidates:
                name = dataset_name(path)  # a Hub-cache snapshot is owner--name, not its commit
                if not _is_dataset(path) or not _ID.match(name):
                    continue
                real = path.resolve()
                if not real.is_relative_to(base):
                    continue  # a symlink out of the configured roots is never served
                if name in found and found[name] != real:
                    raise ValueError(f"datasets: two datasets are named '{name}': {found[name]} and {real}")
                found[name] = real
        with self._lock:
            self._paths = found
            self._open = {k: v for k, v in self._open.items() if k in found}

    @property
    def ids(self) -> list[str]:
        with self._lock:
            return sorted(self._paths)

    def check_id(self, dataset_id: str) -> None:
        if not isinstance(dataset_id, str) or not _ID.match(dataset_id) or ".." in dataset_id:
            raise RegistryError(
                "forbidden",
                f"dataset id {dataset_id!r} is not a plain name; datasets are named, never given as paths",
            )

    def get(self, dataset_id: str) -> Dataset:
        self.check_id(dataset_id)
        with self._lock:
            ds = self._open.get(dataset_id)
            path = self._paths.get(dataset_id)
        if ds is not None:
            return ds
        if path is None:
            self.rescan()
            with self._lock:
                path = self._paths.get(dataset_id)
            if path is None:
                raise RegistryError(
                    "not_found", f"no dataset '{dataset_id}' (served: {', '.join(self.ids) or 'none'})"
                )
        ds = Dataset(path)
        with self._lock:
            self._open.setdefault(dataset_id, ds)
            return self._open[dataset_id]

    def check_episode(self, dataset_id: str, episode: int) -> Dataset:
        ds = self.get(dataset_id)
        if episode not in ds.episodes:
            raise RegistryError(
                "not_found", f"dataset '{dataset_id}' has no episode {episode} ({len(ds)} episodes)"
            )
        return ds
