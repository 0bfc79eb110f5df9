"""Export reviewed annotations: LeRobot language columns, LeRobot subtasks, LLaVA, Qwen.

`export(dataset, store, fmt, out)` reads the store's accepted annotations of the
dataset (its directory name is its id in the store), checks them against the
dataset, and writes the format into a temporary directory beside `out` that is
renamed into place only when complete (see `core.export.atomic`). The source
dataset is never modified: files an export does not rewrite are copied, or
hard-linked when they are videos.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import msgspec

from core.annotations import CAMERA_FIELDS
from core.errors import RoboAnnotateError
from core.export.report import ExportError, ExportReport, Progress

if TYPE_CHECKING:
    from core.annotations import EpisodeAnnotation
    from core.dataset import Dataset
    from core.export.base import ExportJob

__all__ = ["FORMATS", "ExportError", "ExportReport", "export"]

FORMATS: tuple[str, ...] = ("lerobot-language", "lerobot-subtasks", "llava", "qwen")
# Annotations may miss the dataset's episode length by less than this many frames.
DURATION_TOLERANCE_FRAMES = 1.0


def _writer(fmt: str) -> Callable[[ExportJob, Path], None]:
    """The format's writer, imported only when used (pyarrow, Pillow, core.vlm)."""
    if fmt == "lerobot-language":
        from core.export.lerobot_language import write_lerobot_language

        return write_lerobot_language
    if fmt == "lerobot-subtasks":
        from core.export.lerobot_subtasks import write_lerobot_subtasks

        return write_lerobot_subtasks
    if fmt in ("llava", "qwen"):
        from core.export.conversations import conversation_writer

        return conversation_writer(fmt)
    raise ExportError(f"format '{fmt}' is not known (formats: {', '.join(FORMATS)})")


def _inside(path: Path, root: Path) -> bool:
    return path == root or root in path.parents


def _describe(name: str, i: int, item: object) -> str:
    """An item as a person finds it in the app: its list, index, kind and time."""
    t = getattr(item, "t", None)
    when = f" at t={t:.3f} s" if isinstance(t, float | int) else ""
    if name == "boxes":
        return f"boxes[{i}] ({item.kind} box '{item.label}'{when})"  # type: ignore[attr-defined]
    if name == "trajectories":
        return f"trajectories[{i}] ({len(item.points)} points)"  # type: ignore[attr-defined]
    if name == "qa":
        return f"qa[{i}] ('{item.question}'{when})"  # type: ignore[attr-defined]
    return f"{name}[{i}] ({name[:-1]}{when})"


def _check_annotation(
    ann: EpisodeAnnotation, ds: Dataset, where: str, warn: Callable[[str], None]
) -> EpisodeAnnotation:
    """Refuse annotations made for other data (unknown episode, fps or length); items on a
    camera the dataset does not have are left out, each with a warning naming it."""
    if ann.episode not in ds.episodes:
        raise ExportError(
            f"{where}: episode {ann.episode} is not in the dataset {ds.root} ({len(ds)} episodes)"
        )
    info = ds.episodes[ann.episode]
    if abs(ann.fps - ds.fps) > 1e-6:
        raise ExportError(f"{where}: episode {ann.episode}: fps {ann.fps} but the dataset has {ds.fps}")
    if abs(ann.duration - info.duration) * ds.fps > DURATION_TOLERANCE_FRAMES:
        raise ExportError(
            f"{where}: episode {ann.episode}: duration {ann.duration:.3f} s but the dataset's "
            f"episode is {info.duration:.3f} s ({info.length} frames)"
        )
    cameras = set(ds.cameras)
    kept: dict[str, list] = {}
    for name in CAMERA_FIELDS:
        items = getattr(ann, name)
        kept[name] = [item for item in items if item.camera in cameras]
        for i, item in enumerate(items):
            if item.camera not in cameras:
                warn(
                    f"{where}: episode {ann.episode}: {_describe(name, i, item)} is on camera "
                    f"{item.camera!r}, which the dataset does not have ({', '.join(ds.cameras) or 'no cameras'}); "
                    "it is left out"
                )
    if all(len(kept[n]) == len(getattr(ann, n)) for n in kept):
        return ann
    return msgspec.structs.replace(ann, **kept)


def load_annotations(
    ds: Dataset, store_path: Path, include_unreviewed: bool, warn: Callable[[str], None] | None = None
) -> dict[int, EpisodeAnnotation]:
    """The store's head annotations of `ds` to export, checked against the dataset."""
    from core.store import Store

    with Store(store_path, readonly=True) as store:
        try:
            anns = list(store.accepted(ds.name, include_unreviewed=include_unreviewed))
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            raise ExportError(
                f"{store_path}: a stored annotation of {ds.name} cannot be read ({exc})"
            ) from exc
    where = f"{store_path} ({ds.name})"
    checked = [_check_annotation(a, ds, where, warn or (lambda _m: None)) for a in anns]
    return {a.episode: a for a in checked}


def export(
    dataset_path: str | Path,
    store_path: str | Path,
    fmt: str,
    out: str | Path,
    include_unreviewed: bool = False,
    force: bool = False,
    progress: Progress | None = None,
    min_pixels: int | None = None,
    max_pixels: int | None = None,
) -> ExportReport:
    """Write `fmt` for the dataset's accepted (or also unreviewed) annotations into `out`.

    `progress(done, total)` is called as work advances (the GUI shows it).
    `min_pixels` / `max_pixels`: the qwen export's pixel budget (see
    `core.export.conversations`). Raises `ExportError` (or another
    `RoboAnnotateError`) with a message naming the file or field at fault; `out`
    is then left as it was. Items that cannot be exported (a camera the dataset
    lacks, a box thinner than a pixel, an image the budget cannot hold) are left
    out with a warning in the report naming the episode and the item.
    """
    from core.dataset import Dataset
    from core.export.atomic import atomic_dir, check_out
    from core.export.base import ExportJob, ExportOptions

    started = time.perf_counter()
    write = _writer(fmt)
    options = ExportOptions(min_pixels=min_pixels, max_pixels=max_pixels)
    options.check(fmt)
    ds = Dataset(dataset_path)
    store_path = Path(store_path).expanduser().absolute()
    out_path = check_out(Path(out), force)
    if _inside(out_path, ds.root) or _inside(ds.root, out_path):
        raise ExportError(f"{out_path}: the output must be outside the dataset {ds.root} and not contain it")
    if _inside(store_path, out_path):
        raise ExportError(f"{out_path}: the output must not contain the store {store_path}")
    report = ExportReport(format=fmt, out=out_path)
    try:
        annotations = load_annotations(ds, store_path, include_unreviewed, report.warnings.append)
    except ExportError:
        raise
    except RoboAnnotateError as exc:
        raise ExportError(str(exc)) from exc
    report.episodes = len(annotations)
    if not annotations:
        which = "annotations" if include_unreviewed else "accepted annotations"
        hint = "" if include_unreviewed else " (--include-unreviewed also takes unreviewed ones)"
        report.warnings.append(
            f"{store_path} has no {which} of dataset '{ds.name}'; nothing annotated to export{hint}"
        )
    job = ExportJob(ds, annotations, report, progress, options=options)
    with atomic_dir(out_path, force=force) as tmp:
        write(job, tmp)
    report.seconds = time.perf_counter() - started
    return report
