"""Zero-shot proposals: an episode's own kinematics, arm by arm, with no exemplar to copy.

find the arms (arms.py), follow what each does (events.py), cut and name where a
person would (segmenter.py). The segments' confidences say how clear each cut's
evidence was and the episode's uncertainty how much the kinematics leave
unexplained, so the review queue asks a person about the murky episodes first.
"""

from __future__ import annotations

from backend.engines.base import EpisodeJob, Prediction
from backend.engines.kinematic.arms import find_arms
from backend.engines.kinematic.events import track_arms
from backend.engines.kinematic.naming import task_words
from backend.engines.kinematic.options import KinematicOptions
from backend.engines.kinematic.segmenter import propose, uncertainty
from backend.engines.kinematic.signals import MIN_FRAMES, clip01
from core.annotations import EpisodeAnnotation, Segment, repair_cover


class ZeroShot:
    """Segments from the arms' motions and grippers."""

    def predict(self, job: EpisodeJob, opts: KinematicOptions, tag: str) -> Prediction:
        ds = job.dataset
        info = ds.episode(job.episode)
        fps = float(ds.fps)
        sig = ds.signals(job.episode)
        n = len(sig)
        duration = info.length / fps

        def annotation(segments: list[Segment], unc: float) -> EpisodeAnnotation:
            return EpisodeAnnotation(
                dataset=job.dataset_id,
                episode=job.episode,
                duration=duration,
                fps=fps,
                task=info.task,
                segments=segments,
                uncertainty=round(unc, 4),
                model=tag,
            )

        if n < MIN_FRAMES:
            # Too short to have motion: one segment, and certainly worth a look.
            seg = Segment(name="idle", start=0.0, end=duration, source=tag, confidence=0.0)
            notes = {"gripper_channel": None, "gripper_found_by": "none", "fallback": f"only {n} frame(s)"}
            return Prediction(status="ok", annotation=annotation([seg], 1.0), notes=notes)
        arms, notes = find_arms(sig, fps, opts.shape_threshold)
        tracks = track_arms(arms, fps, opts.min_pause)
        words = task_words(info.task)
        prop = propose(tracks, words, n, fps, opts.merge)
        min_frames = max(1, round(opts.min_segment * fps))
        segments = []
        for k, (a, b, name) in enumerate(prop.spans):
            c_start = 1.0 if a == 0 else prop.confidence.get(a, 0.5)
            end_frame = prop.spans[k + 1][0] if k + 1 < len(prop.spans) else n
            c_end = 1.0 if end_frame >= n else prop.confidence.get(end_frame, 0.5)
            segments.append(
                Segment(
                    name=name,
                    start=a / fps,
                    end=duration if b >= n else b / fps,
                    source=tag,
                    confidence=round(clip01(min(c_start, c_end) * (1.0 if b - a >= min_frames else 0.6)), 4),
                )
            )
        expected = len(words.objects) or None
        unc, why = uncertainty(prop, tracks, expected)
        grippers = [t.arm.gripper for t in tracks if t.arm.gripper is not None]
        notes.update(prop.notes)
        notes.update(
            {
                "gripper_channel": ", ".join(
                    f"{t.name}: {t.arm.gripper.label}" for t in tracks if t.arm.gripper
                )
                or None,
                "gripper_found_by": ", ".join(sorted({g.found_by for g in grippers})) or "none",
                "gripper_open_is": ", ".join(
                    (f"{t.name}: " if len(tracks) > 1 else "") + t.notes["gripper_open_is"]
                    for t in tracks
                    if "gripper_open_is" in t.notes
                )
                or None,
                "objects": list(words.objects),
                "target": words.target,
                **{f"uncertain_{k}": v for k, v in why.items()},
            }
        )
        return Prediction(
            status="ok", annotation=annotation(repair_cover(segments, duration, fps), unc), notes=notes
        )
