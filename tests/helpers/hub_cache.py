"""A dataset laid out in a Hugging Face Hub cache exactly as huggingface_hub lays one out.

`<cache>/datasets--owner--name/` holds `blobs/<hash>` (git's blob sha1 for plain
files, the sha256 for LFS ones, as the Hub's ETags name them), `snapshots/<commit>/<path>`
as relative symlinks to those blobs, and `refs/<branch or tag>` holding the commit
(no newline). huggingface_hub's own `scan_cache_dir` reads it back (see tests).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterable
from pathlib import Path

# lerobot's dataset repos keep these in LFS (their .gitattributes).
LFS_SUFFIXES = (".parquet", ".mp4", ".png", ".jpg", ".arrow")
COMMIT = "0123456789abcdef0123456789abcdef01234567"


def git_blob_id(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def blob_name(rel: str, data: bytes) -> str:
    """The blob's name in the cache: the Hub's ETag of the file."""
    return hashlib.sha256(data).hexdigest() if rel.endswith(LFS_SUFFIXES) else git_blob_id(data)


def write_hub_cache(
    cache: Path,
    repo_id: str,
    source: Path,
    *,
    commit: str = COMMIT,
    refs: Iterable[str] = ("main",),
    include: Callable[[str], bool] = lambda rel: True,
) -> Path:
    """Put the files of dataset folder `source` (those `include` keeps) in `cache` as revision
    `commit` of dataset repo `repo_id`; returns the snapshot folder."""
    repo = cache / "--".join(["datasets", *repo_id.split("/")])
    snapshot = repo / "snapshots" / commit
    snapshot.mkdir(parents=True, exist_ok=True)
    for path in sorted(source.rglob("*")):
        rel = path.relative_to(source).as_posix()
        if not path.is_file() or rel.startswith(".") or not include(rel):
            continue
        data = path.read_bytes()
        blob = repo / "blobs" / blob_name(rel, data)
        blob.parent.mkdir(parents=True, exist_ok=True)
        if not blob.exists():
            blob.write_bytes(data)
        link = snapshot / rel
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(os.path.relpath(blob, link.parent))
    (repo / "refs").mkdir(exist_ok=True)
    for ref in refs:
        (repo / "refs" / ref).write_text(commit)
    return snapshot


def meta_only(rel: str) -> bool:
    """What a dataset's first open downloads: meta/ (no data, no videos)."""
    return rel.startswith("meta/")
