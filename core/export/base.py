"""What every exporter shares: the job, the per-frame rules and the copying.

An `ExportJob` is built once by `core.export.export` (dataset opened, annotations
read from the store and checked against the dataset) and handed to one format's
writer together with a temporary directory; writers never see `--out` itself.
"""

from __future__ import annotations

import math
import os
import shutil
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from core.annotations import COVER_TOLERANCE, TIME_EPS, EpisodeAnnotation, Segment
from core.dataset import Dataset
from core.export.report import ExportError, ExportReport, Progress


@dataclass(frozen=True)
class ExportOptions:
    """Per-format settings (the CLI's flags); `check(fmt)` refuses ones the format has no use for."""

    # Qwen pixel budget of every image (None: the qwen export's default, RoboInterVLM's recipe).
    min_pixels: int | None = None
    max_pixels: int | None = None

    def check(self, fmt: str) -> None:
        given = [n for n in ("min_pixels", "max_pixels") if getattr(self, n) is not None]
        if given and fmt != "qwen":
            flags = " and ".join("--" + n.replace("_", "-") for n in given)
            raise ExportError(f"{flags}: only the qwen export has a pixel budget (format is {fmt})")
        for name in given:
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ExportError(
                    f"--{name.replace('_', '-')} = {value!r}: must be a whole number of pixels >= 1"
                )
        if given == ["min_pixels", "max_pixels"] and self.min_pixels > self.max_pixels:  # type: ignore[operator]
            raise ExportError(
                f"--min-pixels {self.min_pixels} is above --max-pixels {self.max_pixels}: no image fits that budget"
            )


@dataclass
class ExportJob:
    """One export's inputs, already validated."""

    dataset: Dataset
    # Annotations to export, by episode index.
    annotations: dict[int, EpisodeAnnotation]
    report: ExportReport
    progress: Progress | None = None
    # Hard-link big immutable files (videos) instead of copying them.
    link: bool = True
    options: ExportOptions = ExportOptions()

    def tick(self, done: int, total: int) -> None:
        if self.progress is not None:
            self.progress(done, total)

    def warn(self, message: str) -> None:
        self.report.warnings.append(message)


# ---------------------------------------------------------------- per-frame labels


def frame_segment_indices(segments: Sequence[Segment], n_frames: int, fps: float) -> np.ndarray:
    """For each frame k (time k / fps), the index of its segment, or -1.

    The same rule as `core.annotations.segment_index_at` (start <= t < end; the
    last segment also takes t up to its end), vectorized so an export labels
    hundreds of thousands of frames without a Python loop per frame.
    """
    out = np.full(n_frames, -1, dtype=np.int64)
    if not segments or n_frames <= 0:
        return out
    t = np.arange(n_frames, dtype=np.float64) / fps
    starts = np.array([s.start for s in segments], dtype=np.float64)
    ends = np.array([s.end for s in segments], dtype=np.float64)
    i = np.searchsorted(starts, t + TIME_EPS, side="right") - 1
    valid = i >= 0
    ic = np.clip(i, 0, len(segments) - 1)
    inside = valid & (t < ends[ic] - TIME_EPS)
    last = len(segments) - 1
    at_end = valid & (ic == last) & (t <= ends[last] + COVER_TOLERANCE)
    keep = inside | at_end
    out[keep] = ic[keep]
    return out


def nearest_frame(t: float, fps: float, n_frames: int) -> int:
    """The frame nearest to time t (events land on exact frames, as lerobot snaps them)."""
    return min(max(math.floor(t * fps + 0.5), 0), n_frames - 1)


# ---------------------------------------------------------------- copying


def link_or_copy(src: Path, dst: Path, link: bool) -> None:
    """Hard-link `src` to `dst` where allowed (same filesystem), else copy it."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    if link:
        try:
            os.link(src, dst)
            return
        except OSError:
            pass
    shutil.copy2(src, dst)


def mirror_files(
    root: Path,
    dst: Path,
    skip: Iterable[Path],
    *,
    link: bool,
    on_file: Callable[[], None] | None = None,
) -> int:
    """Copy every file under `root` into `dst`, except `skip`; returns the count.

    Videos and images (large, never rewritten in place by lerobot's tools) are
    hard-linked when `link`; everything else (metadata that tools rewrite in
    place with open('w')) is copied, so editing the export never edits the source.
    A symlinked file (a hub cache's blob) is copied or linked as its target, so
    the export stands alone; a symlinked directory is refused.
    """
    skipped = {p.resolve() for p in skip}
    count = 0
    for path in sorted(root.rglob("*")):
        if path.is_symlink() and path.is_dir():
            raise ExportError(f"{path}: is a symbolic link to a directory; copy the dataset without it")
        if not path.is_file() or path.resolve() in skipped:
            continue
        rel = path.relative_to(root)
        big = rel.parts[0] in ("videos", "images") or path.suffix.lower() in (".mp4", ".mkv", ".png", ".jpg")
        link_or_copy(path.resolve(), dst / rel, link=link and big)
        count += 1
        if on_file is not None:
            on_file()
    return count
