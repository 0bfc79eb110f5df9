"""Score a tracker against a dataset's ground truth: `robo-backend evaluate DATASET --track boxes|points`.

`ground_truth.json` (the demo generator writes one; any dataset with the same
layout works) holds per episode the object's box per camera and frame (`boxes`)
and the gripper's image position (`gripper`), normalized, `null` where not
visible. The truth at K evenly spaced frames (K = 1: the first visible frame)
is handed to the tracker as a person's keyframes; the track is stored as the
app stores it (sparse keyframes) and scored on every frame with a truth, beside
two peers measured in the same run: holding the nearest keyframe, and linear
interpolation between the keyframes. Boxes score by IoU, points by the error in
pixels at the camera's resolution.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Literal

import numpy as np

from backend.tracking import TrackEngine, TrackingError
from backend.tracking.job import TrackJob, run_track
from backend.tracking.propagate import EpisodeFrames
from core.annotations import Box, interpolate_box, interpolate_point
from core.dataset import Dataset
from core.errors import DatasetError, RoboAnnotateError

TrackWhat = Literal["boxes", "points"]
BOX_METRICS = ("iou", "iou_hold", "iou_interp")
POINT_METRICS = ("px_median", "px_mean", "px_median_hold", "px_median_interp")


def _series(value: Any, where: str) -> list[tuple[str, list]]:
    """A camera's truth as named per-frame series: a list (one target) or {name: list} (several)."""
    if isinstance(value, dict):
        return [(str(k), _check_list(v, f"{where}.{k}")) for k, v in value.items()]
    return [("", _check_list(value, where))]


def _check_list(value: Any, where: str) -> list:
    if not isinstance(value, list):
        raise DatasetError(f"ground_truth.json: {where} must be a list with one entry per frame")
    return value


def _entry(v: Any, width: int, where: str) -> tuple[float, ...] | None:
    if v is None:
        return None
    if not isinstance(v, list | tuple) or len(v) != width or not all(isinstance(x, int | float) for x in v):
        raise DatasetError(f"ground_truth.json: {where} = {v!r}: must be null or {width} numbers")
    return tuple(float(x) for x in v)


def keyframe_indices(visible: list[int], k: int) -> list[int]:
    """K evenly spaced frames among the visible ones (K = 1: the first), without repeats."""
    if not visible or k < 1:
        return []
    if k == 1:
        return [visible[0]]
    lo, hi = visible[0], visible[-1]
    wanted = np.linspace(lo, hi, k)
    vis = np.asarray(visible)
    return sorted({int(vis[np.argmin(np.abs(vis - w))]) for w in wanted})


def _iou(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def _hold(keys: list[int], frame: int) -> int:
    return min(keys, key=lambda k: (abs(k - frame), k))


def evaluate_track(
    dataset_root: str | Path,
    engine: TrackEngine,
    what: TrackWhat,
    keyframes: int = 1,
    episodes: Iterable[int] | None = None,
) -> dict[str, Any]:
    """Track every episode's truth from K keyframes per camera and score it (see the module docstring).

    Returns {"dataset", "track", "keyframes", "engine", "episodes": [row...], "mean": {...},
    "errors": [...]}; a row is one (episode, camera, target). A track that failed to
    start is listed in "errors" and counts as IoU 0 (boxes) / is left out (points).
    """
    from core.demo.writer import load_ground_truth

    if what not in ("boxes", "points"):
        raise ValueError(f"--track {what!r}: must be 'boxes' or 'points'")
    if keyframes < 1:
        raise ValueError(f"--keyframes {keyframes}: must be >= 1")
    root = Path(dataset_root)
    ds = Dataset(root)
    truth = load_ground_truth(root)
    field = "boxes" if what == "boxes" else "gripper"
    width = 4 if what == "boxes" else 2
    by_index = {int(r["episode_index"]): r for r in truth.get("episodes", [])}
    wanted = sorted(by_index) if episodes is None else [int(e) for e in episodes]
    missing = [e for e in wanted if e not in by_index]
    if missing:
        raise ValueError(f"{root}: no ground truth for episode(s) {', '.join(map(str, missing))}")
    rows: list[dict[str, Any]] = []
    errors: list[dict[str, Any]] = []
    pooled: dict[str, list[float]] = {"track": [], "hold": [], "interp": []}
    frames_total, track_s, decode_s, t_start = 0, 0.0, 0.0, time.perf_counter()
    for ep in wanted:
        record = by_index[ep]
        per_camera = record.get(field) or {}
        if not isinstance(per_camera, dict):
            raise DatasetError(f"ground_truth.json: episodes[{ep}].{field} must map cameras to lists")
        for camera, value in per_camera.items():
            for name, series in _series(value, f"episodes[{ep}].{field}.{camera}"):
                row = {"episode": ep, "camera": camera, "target": name}
                try:
                    scored = _score_one(ds, ep, camera, series, what, width, keyframes, engine, record)
                except (RoboAnnotateError, TrackingError) as exc:
                    errors.append({**row, "error": str(exc)})
                    if what == "boxes":
                        pooled["track"].append(0.0)
                    continue
                if scored is None:
                    continue
                values, stats = scored
                for key in pooled:
                    pooled[key] += values[key]
                frames_total += stats.pop("frames")
                track_s += stats.pop("track_s")
                decode_s += stats.pop("decode_s")
                rows.append({**row, **stats})
    mean: dict[str, float] = {}
    if what == "boxes":
        for key, metric in zip(("track", "hold", "interp"), BOX_METRICS, strict=True):
            mean[metric] = float(np.mean(pooled[key])) if pooled[key] else math.nan
    else:
        for key, metric in (
            ("track", "px_median"),
            ("hold", "px_median_hold"),
            ("interp", "px_median_interp"),
        ):
            mean[metric] = float(np.median(pooled[key])) if pooled[key] else math.nan
        mean["px_mean"] = float(np.mean(pooled["track"])) if pooled["track"] else math.nan
    mean["frames_per_s"] = frames_total / track_s if track_s > 0 else math.nan
    mean["decode_frames_per_s"] = frames_total / decode_s if decode_s > 0 else math.nan
    return {
        "dataset": str(root),
        "track": what,
        "keyframes": keyframes,
        "engine": engine.tag,
        "episodes": rows,
        "mean": mean,
        "errors": errors,
        "frames": frames_total,
        "seconds": time.perf_counter() - t_start,
    }


def _score_one(
    ds: Dataset,
    ep: int,
    camera: str,
    series: list,
    what: TrackWhat,
    width: int,
    k: int,
    engine: TrackEngine,
    record: dict,
) -> tuple[dict[str, list[float]], dict[str, Any]] | None:
    where = f"episodes[{ep}].{'boxes' if what == 'boxes' else 'gripper'}.{camera}"
    source = EpisodeFrames(ds, ep, camera)
    w, h = source.width, source.height
    n = min(len(series), source.length)
    truth = [_entry(series[i], width, f"{where}[{i}]") for i in range(n)]
    visible = [i for i, v in enumerate(truth) if v is not None]
    keys = keyframe_indices(visible, k)
    if not keys:
        return None
    fps = ds.fps
    anchors = [(f / fps, truth[f]) for f in keys]
    job = TrackJob(
        kind="box" if what == "boxes" else "point",
        camera=camera,
        fps=fps,
        anchors=anchors,  # type: ignore[arg-type]
        label=str((record.get("object") or {}).get("label") or "object"),
        task=str(record.get("task", "")),
    )
    outcome = run_track(job, engine, source)
    scale = np.array([w, h, w, h] if width == 4 else [w, h], float)
    values: dict[str, list[float]] = {"track": [], "hold": [], "interp": []}
    if what == "boxes":
        person = [
            Box(t=t, camera=camera, label=job.label, kind="current", xyxy=v, source="human:truth")  # type: ignore[arg-type]
            for t, v in anchors
        ]
        stored = sorted([*person, *outcome.boxes], key=lambda b: b.t)
        for f in visible:
            t, gt = f / fps, truth[f]
            values["track"].append(_iou(interpolate_box(stored, t)[0], gt))  # type: ignore[index]
            values["hold"].append(_iou(truth[_hold(keys, f)], gt))  # type: ignore[arg-type]
            values["interp"].append(_iou(interpolate_box(person, t)[0], gt))  # type: ignore[index]
        stats = {m: float(np.mean(values[key])) for key, m in zip(values, BOX_METRICS, strict=True)}
    else:
        person_pts = [(t, v[0], v[1]) for t, v in anchors]
        stored_pts = sorted([*person_pts, *outcome.points], key=lambda p: p[0])
        for f in visible:
            t, gt = f / fps, np.asarray(truth[f]) * scale
            values["track"].append(
                float(np.linalg.norm(np.asarray(interpolate_point(stored_pts, t)) * scale - gt))
            )
            values["hold"].append(float(np.linalg.norm(np.asarray(truth[_hold(keys, f)]) * scale - gt)))
            values["interp"].append(
                float(np.linalg.norm(np.asarray(interpolate_point(person_pts, t)) * scale - gt))
            )
        stats = {
            "px_median": float(np.median(values["track"])),
            "px_mean": float(np.mean(values["track"])),
            "px_median_hold": float(np.median(values["hold"])),
            "px_median_interp": float(np.median(values["interp"])),
        }
    stats.update(
        {
            "frames": outcome.frames,
            "track_s": outcome.track_s,
            "decode_s": outcome.decode_s,
            "keyframes_stored": len(outcome.boxes) if what == "boxes" else len(outcome.points),
            "lost": [round(t * fps) for t in outcome.lost],
            "status": outcome.status,
            "notes": outcome.notes + outcome.errors,
        }
    )
    return values, stats


def format_tracking_report(result: dict[str, Any]) -> str:
    """A plain-text table: one row per (episode, camera, target), then the means."""
    metrics = BOX_METRICS if result["track"] == "boxes" else POINT_METRICS
    head = f"{'episode':>7}  {'camera':<28}" + "".join(f"{m:>18}" for m in metrics) + f"  {'kept':>5}  lost"
    lines = [
        f"tracker {result['engine']}, {result['track']} from {result['keyframes']} keyframe(s), on {result['dataset']}",
        head,
        "-" * len(head),
    ]

    def fmt(v: float) -> str:
        return f"{'-':>18}" if v is None or math.isnan(v) else f"{v:>18.3f}"

    for r in result["episodes"]:
        cam = r["camera"] + (f" [{r['target']}]" if r["target"] else "")
        lost = ",".join(map(str, r["lost"])) or "-"
        lines.append(
            f"{r['episode']:>7}  {cam:<28}"
            + "".join(fmt(r[m]) for m in metrics)
            + f"  {r['keyframes_stored']:>5}  {lost}"
        )
    for e in result["errors"]:
        lines.append(f"{e['episode']:>7}  {e['camera']:<28}  error: {e['error']}")
    lines.append("-" * len(head))
    mean = result["mean"]
    lines.append(f"{'mean':>7}  {'':<28}" + "".join(fmt(mean.get(m, math.nan)) for m in metrics))
    lines.append(
        f"tracking {mean['frames_per_s']:.1f} frames/s per track (decode {mean['decode_frames_per_s']:.1f} frames/s), "
        f"{result['frames']} frames in {result['seconds']:.1f} s"
    )
    return "\n".join(lines)


def cli_evaluate_track(args: Any) -> int:
    """`robo-backend evaluate DATASET --track ...`: the table, and the JSON with --json."""
    import json

    from backend.tracking import TRACK_ENGINES, make_track_engine

    name = "cpu" if args.engine == "kinematic" else args.engine  # kinematic: the subcommand's default
    if name not in TRACK_ENGINES:
        raise ValueError(f"--engine {args.engine}: a tracker is one of {', '.join(TRACK_ENGINES)}")
    options = json.loads(args.engine_options) if args.engine_options else {}
    if args.model:
        options["model"] = args.model
    engine = make_track_engine(name, **options)
    try:
        result = evaluate_track(args.dataset, engine, args.track, args.keyframes, args.episodes)
    finally:
        engine.close()
    print(format_tracking_report(result))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    return 0
