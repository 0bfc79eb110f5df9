"""`robo-backend track DATASET --store S`: track every person-placed keyframe that has no track yet.

For each episode's head annotation, every box track and every trajectory is cut
at its person-placed keyframes (`core.tracks`); each gap with no tracked item in
it yet is tracked, the results are spliced in, and the episode is stored as one
new revision (a correction by the user running the command, based on the head
it read, so a concurrent edit is a conflict, reported, never overwritten).
Episodes are stored one by one: an interrupted run keeps what it finished, and
the next run skips every gap that has a track. A camera the dataset lacks or a
frame that cannot be decoded is reported for that track; the rest goes on.
"""

from __future__ import annotations

import getpass
import uuid as uuidlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from backend.tracking import TrackEngine, TrackingError
from backend.tracking.job import TrackJob, run_track, total_frames
from backend.tracking.propagate import EpisodeFrames
from core.annotations import EpisodeAnnotation, box_tracks, replace
from core.dataset import Dataset
from core.errors import RoboAnnotateError
from core.protocol import Correction
from core.store import Applied, Conflicted, Store
from core.tracks import (
    anchor_points,
    box_anchors,
    box_tracked_times,
    splice_boxes,
    splice_trajectory,
    trajectory_anchor_times,
    trajectory_tracked_times,
    untracked_gaps,
)


@dataclass
class TrackReport:
    episodes: int = 0  # episodes that got a new revision
    tracks: int = 0  # tracks (box tracks, trajectories) that got new keyframes
    frames: int = 0
    lost: int = 0  # tracks that stopped because the target was lost
    skipped: int = 0  # episodes with nothing left to track
    conflicts: list[int] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)  # "episode N camera C ..." -> why


@dataclass
class _Todo:
    episode: int
    job: TrackJob
    what: str  # "box 'red cube' (current)" or "trajectory 0"
    key: tuple  # box track key or ("trajectory", index)


def _plan(ann: EpisodeAnnotation, ds: Dataset, tolerance_px: float) -> list[_Todo]:
    todo: list[_Todo] = []
    for track, frames in box_tracks(ann.boxes).items():
        anchors = box_anchors(frames, track)
        gaps = untracked_gaps([b.t for b in anchors], box_tracked_times(frames, track), ann.duration, ann.fps)
        if anchors and gaps:
            camera, label, kind = track
            job = TrackJob(
                kind="box",
                camera=camera,
                fps=ds.fps,
                anchors=[(b.t, b.xyxy) for b in anchors],
                gaps=gaps,
                label=label,
                box_kind=kind,
                task=ann.task,
                tolerance_px=tolerance_px,
            )
            todo.append(_Todo(ann.episode, job, f"box '{label}' ({kind})", track))
    for i, traj in enumerate(ann.trajectories):
        times = trajectory_anchor_times(traj)
        gaps = untracked_gaps(times, trajectory_tracked_times(traj), ann.duration, ann.fps)
        if times and gaps:
            job = TrackJob(
                kind="point",
                camera=traj.camera,
                fps=ds.fps,
                anchors=[(t, (x, y)) for t, x, y in anchor_points(traj)],
                gaps=gaps,
                task=ann.task,
                tolerance_px=tolerance_px,
            )
            todo.append(_Todo(ann.episode, job, f"trajectory {i}", ("trajectory", i)))
    return todo


def track_dataset(
    root: Path,
    store_path: Path,
    engine: TrackEngine,
    episodes: list[int] | None = None,
    user: str | None = None,
    tolerance_px: float = 2.0,
    progress: Callable[[int, int, str], None] | None = None,
    dataset_id: str | None = None,
) -> TrackReport:
    """Track what needs tracking in the store's head annotations of `root`; see the module docstring."""
    ds = Dataset(root)
    ds_id = dataset_id or ds.name
    wanted = ds.select(episodes)
    user = user or getpass.getuser() or "tracker"
    report = TrackReport()
    with Store(store_path) as store:
        plans: list[tuple[EpisodeAnnotation, list[_Todo]]] = []
        for ep in wanted:
            head = store.head(ds_id, ep)
            todo = _plan(head, ds, tolerance_px) if head is not None else []
            if todo:
                plans.append((head, todo))  # type: ignore[arg-type]
            else:
                report.skipped += 1
        total = sum(total_frames(t.job, ds.episode(t.episode).length) for _, todo in plans for t in todo)
        done = 0
        if progress:
            progress(0, total, "")
        for head, todo in plans:
            ann = head
            changed = False
            for item in todo:
                where = f"episode {item.episode} camera '{item.job.camera}' {item.what}"
                steps = total_frames(item.job, ds.episode(item.episode).length)
                base = done

                def tick(d: int, _t: int, base: int = base, where: str = where) -> None:
                    if progress:
                        progress(base + d, total, where)

                try:
                    source = EpisodeFrames(ds, item.episode, item.job.camera)
                    out = run_track(item.job, engine, source, on_progress=tick)
                except (TrackingError, RoboAnnotateError) as exc:
                    report.failed[where] = str(exc)
                    done = base + steps
                    continue
                done = base + steps
                if out.errors:
                    report.failed[where] = "; ".join(out.errors)
                if out.lost:
                    report.lost += 1
                if not (out.boxes or out.points or out.lost):
                    continue
                report.frames += out.frames
                report.tracks += 1
                changed = True
                if item.key[0] == "trajectory":
                    trajs = list(ann.trajectories)
                    trajs[item.key[1]] = splice_trajectory(
                        trajs[item.key[1]], out.spans, out.points, out.lost
                    )
                    ann = replace(ann, trajectories=trajs)
                else:
                    ann = replace(ann, boxes=splice_boxes(ann.boxes, item.key, out.spans, out.boxes))
            if progress:
                progress(done, total, "")
            if not changed:
                continue
            correction = Correction(
                uuid=uuidlib.uuid4().hex,
                dataset=ds_id,
                episode=head.episode,
                base_revision=head.revision,
                user=user,
                annotation=ann,
            )
            with store.transaction():
                outcome = store.apply_correction(correction)
            if isinstance(outcome, Applied):
                report.episodes += 1
            elif isinstance(outcome, Conflicted):
                report.conflicts.append(head.episode)
            else:
                report.failed[f"episode {head.episode}"] = outcome.message
    return report


def cli_track(args) -> int:
    """The `robo-backend track` command: a progress bar over frames, then a summary."""
    import json

    from tqdm import tqdm

    from backend.tracking import make_track_engine

    options = json.loads(args.engine_options) if args.engine_options else {}
    if args.model:
        options["model"] = args.model
    engine = make_track_engine(args.engine, **options)
    try:
        with tqdm(desc=f"tracking {args.dataset.name}", unit="frame") as bar:

            def progress(done: int, total: int, where: str) -> None:
                bar.total = total
                bar.update(done - bar.n)
                if where:
                    bar.set_postfix_str(where, refresh=False)

            report = track_dataset(
                args.dataset,
                args.store,
                engine,
                args.episodes,
                user=args.user,
                tolerance_px=args.tolerance,
                progress=progress,
            )
    finally:
        engine.close()
    print(
        f"tracked {report.tracks} track(s), {report.frames} frames, in {report.episodes} episode(s) "
        f"with {engine.tag}; {report.skipped} episode(s) had nothing left to track; "
        f"{report.lost} track(s) stopped where the target was lost"
    )
    for ep in report.conflicts:
        print(f"  episode {ep}: changed by someone else meanwhile; run again to track it")
    for where, why in report.failed.items():
        print(f"  {where}: {why}")
    return 1 if report.failed or report.conflicts else 0
