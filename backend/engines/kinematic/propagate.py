"""Proposals copied from accepted episodes of the same task by dynamic time warping.

Most datasets repeat one task many times. Once a person has accepted an episode,
the others are the same motions at other speeds, with other pauses: aligning
their signals (every numeric state and action dimension, normalized per episode,
and their velocities) to the accepted one with DTW (dtaidistance, C, with a
Sakoe-Chiba band) maps every accepted time to a time in the new episode. What is
anchored in time comes across through that map: segment boundaries and names,
dialogue turns, questions, and the times of box, contact and trajectory
keyframes (their image positions are copied and marked low-confidence: only a
tracker can move them).

Where the objects sit elsewhere, some joints mirror (the base turns left to the bowl in one
episode and right in the next); the joints that run against the exemplar's along a first
alignment are mirrored and the pair aligned again (`mirror`), the cheaper alignment kept.

Several exemplars vote frame by frame (with equal weight the vote is the median
boundary); the alignment's cost, relative to what aligning the exemplars with one
another costs, is the episode's uncertainty, so the review queue shows first the
episode the exemplars explain worst.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import msgspec
import numpy as np

from core.annotations import EpisodeAnnotation, Segment, repair_cover
from core.dataset import EpisodeSignals

from .alignment import Alignment, align, boundaries, map_time, path_maps, still_frames
from .anchors import episode_kinematics, missed_grasps
from .features import Exemplar, FeatureSpace, event_channels, event_signatures, layout
from .fusion import (
    boundary_confidence,
    drop_short,
    fuse,
    insert_missed,
    symbolic_labels,
    uncertainty_of,
    unexplained,
    variance_terms,
    vote,
)
from .naming import adapt_name, word_map

__all__ = ["Exemplar", "ExemplarModel", "Propagated", "PropagationError", "fingerprint", "layout"]

# Fewer frames than this cannot be aligned meaningfully.
MIN_ALIGN_FRAMES = 4
# Keyframes copied from an exemplar keep their image position, so they are flagged with this confidence.
COPIED_CONFIDENCE = 0.2
MAX_EXEMPLARS = 6
# A joint whose velocity correlates below minus this with the exemplar's, along the path, is mirrored.
MIRROR_CORRELATION = 0.2


class PropagationError(ValueError):
    """No exemplar can be aligned to the episode; the message says why."""


@dataclass
class Propagated:
    segments: list[Segment]
    items: dict[str, list[Any]]
    uncertainty: float
    notes: dict[str, Any] = field(default_factory=dict)


def fingerprint(annotations: Sequence[EpisodeAnnotation]) -> str:
    """A short hash of an exemplar set: which episodes, at which revisions."""
    keys = sorted((a.dataset, a.episode, a.revision) for a in annotations)
    return hashlib.sha1(repr(keys).encode()).hexdigest()[:10]


def carry_items(al: Alignment, fps: float, n: int, duration: float, tag: str) -> dict[str, list[Any]]:
    """Everything anchored in time in the exemplar, at the mapped times of the target."""
    ann = al.exemplar.annotation

    def t_of(t: float) -> float:
        return min(map_time(al, t, fps, n), duration)

    def moved(item: Any, **changes: Any) -> Any:
        return msgspec.structs.replace(item, source=tag, **changes)

    items: dict[str, list[Any]] = {
        "dialogue": [moved(d, t=t_of(d.t), confidence=0.5) for d in ann.dialogue],
        "qa": [moved(q, t=t_of(q.t), confidence=0.5) for q in ann.qa],
        "boxes": [moved(b, t=t_of(b.t), confidence=COPIED_CONFIDENCE) for b in ann.boxes],
        "contacts": [moved(c, t=t_of(c.t), confidence=COPIED_CONFIDENCE) for c in ann.contacts],
        "trajectories": [
            moved(
                tr,
                points=[(t_of(t), x, y) for t, x, y in tr.points],
                confidence=COPIED_CONFIDENCE,
            )
            for tr in ann.trajectories
        ],
    }
    return items


def mirror(ex: np.ndarray, tgt: np.ndarray, path: np.ndarray, weights: np.ndarray) -> np.ndarray | None:
    """The target's features with the joints that move the other way from the exemplar's
    mirrored, or None if none does.

    With the objects elsewhere the same task mirrors some joints (the base turns left to the
    bowl in one episode and right in the next): paired along a first alignment, such a joint's
    velocity runs against the exemplar's. Mirrored, the second alignment compares like with like.
    """
    half = ex.shape[1] // 2
    a, b = ex[path[:, 0], half:], tgt[path[:, 1], half:]
    num = np.sum(a * b, axis=0)
    den = np.sqrt(np.sum(a * a, axis=0) * np.sum(b * b, axis=0)) + 1e-12
    flip = num / den < -MIRROR_CORRELATION
    if not flip.any():
        return None
    out = tgt.copy()
    out[:, :half][:, flip] = weights[flip] - out[:, :half][:, flip]
    out[:, half:][:, flip] *= -1.0
    return out


class ExemplarModel:
    """An exemplar set ready to align episodes to: its feature space, features and self-cost."""

    def __init__(self, exemplars: Sequence[Exemplar], fps: float) -> None:
        usable = [e for e in exemplars if e.annotation.segments and len(e.signals) >= MIN_ALIGN_FRAMES]
        if not usable:
            raise PropagationError("no exemplar has segments and enough frames")
        self.fps = fps
        self.exemplars = usable
        self.space = FeatureSpace(usable, fps)
        if not self.space.keys:
            raise PropagationError("no dimension moves in the exemplars: nothing to align on")
        self.features = [self.space(e.signals) for e in usable]
        self.still = [still_frames(f, fps) for f in self.features]
        kin = [episode_kinematics(e.signals, fps, e.annotation.task) for e in usable]
        self.events = [k.events for k in kin]
        self.zero_shot = [k.spans for k in kin]
        self.signatures = event_signatures([e for k in kin for e in k.events])
        self.aligned = [
            np.hstack([f, event_channels(ev, len(f), self.signatures, fps)])
            for f, ev in zip(self.features, self.events, strict=True)
        ]
        self.variance = [variance_terms(a) for a in self.aligned]
        # What aligning the exemplars with one another costs: the yardstick of a good alignment.
        self.reference: float | None = None
        if len(usable) >= 2:
            pair = [
                align(self.features[i], self.features[j], self.still[i], self.still[j])[1]
                for i in range(len(usable))
                for j in range(i + 1, len(usable))
            ]
            self.reference = float(np.median(pair))

    @staticmethod
    def _in_words_of(ex: Exemplar, task: str) -> Exemplar:
        """The exemplar as the person would have written it for this episode: where each
        episode's instruction names its own objects, so do the person's names and texts."""
        mapping = word_map(ex.annotation.task, task) if task else {}
        if not mapping:
            return ex
        ann = ex.annotation

        def words(text: str) -> str:
            return adapt_name(text, mapping)

        def each(items: list[Any], **fields: Callable[[Any], Any]) -> list[Any]:
            return [msgspec.structs.replace(x, **{k: f(x) for k, f in fields.items()}) for x in items]

        adapted = msgspec.structs.replace(
            ann,
            task=task,
            segments=each(ann.segments, name=lambda x: words(x.name)),
            dialogue=each(
                ann.dialogue,
                skill=lambda x: words(x.skill),
                user_prompt=lambda x: words(x.user_prompt),
                robot_utterance=lambda x: words(x.robot_utterance),
            ),
            qa=each(
                ann.qa,
                question=lambda x: words(x.question),
                answer=lambda x: words(x.answer),
                choices=lambda x: [words(c) for c in x.choices],
            ),
            boxes=each(ann.boxes, label=lambda x: words(x.label)),
        )
        return Exemplar(adapted, ex.signals)

    def _nearest(self, n: int) -> list[int]:
        """The exemplars to align to: all of them, or the MAX_EXEMPLARS closest in length."""
        order = sorted(range(len(self.exemplars)), key=lambda i: abs(len(self.exemplars[i].signals) - n))
        return sorted(order[:MAX_EXEMPLARS])

    def propose(
        self, target: EpisodeSignals, duration: float, tag: str, min_segment: float = 0.2, task: str = ""
    ) -> Propagated:
        """Segments and time-anchored items for `target` (which must share the exemplars' layout)."""
        fps = self.fps
        n = len(target)
        if n < MIN_ALIGN_FRAMES:
            raise PropagationError(f"the episode has {n} frame(s): too short to align")
        tgt = self.space(target)
        tgt_kin = episode_kinematics(target, fps, task)
        tgt_events = tgt_kin.events
        tgt_aligned = np.hstack([tgt, event_channels(tgt_events, len(tgt), self.signatures, fps)])
        tgt_still = still_frames(tgt, fps)
        aligns = []
        for i in self._nearest(n):
            path, cost = align(self.aligned[i], tgt_aligned, self.still[i], tgt_still)
            mirrored = mirror(self.features[i], tgt, path, self.space.weights)
            if mirrored is not None:
                again = np.hstack([mirrored, tgt_aligned[:, tgt.shape[1] :]])
                path2, cost2 = align(self.aligned[i], again, self.still[i], tgt_still)
                if cost2 < cost:
                    path, cost = path2, cost2
            first, count = path_maps(path, len(self.features[i]))
            al = Alignment(self._in_words_of(self.exemplars[i], task), first, cost, count, path=path, index=i)
            al.bounds = boundaries(al, n, fps, self.events[i], tgt_events, tgt_kin.cuts)
            aligns.append(al)
        costs = np.array([a.cost for a in aligns])
        # Equal votes (so the vote is the median boundary); a far worse exemplar counts less.
        weights = np.where(costs <= 2.0 * costs.min() + 1e-12, 1.0, 0.25)
        runs = drop_short(vote(aligns, weights, fps, n), max(1, round(min_segment * fps)))
        best_i = int(np.argmin(costs))
        ex_index = aligns[best_i].index
        runs = insert_missed(runs, aligns[best_i], self.events[ex_index], tgt_events, fps)
        words = word_map(self.exemplars[aligns[best_i].index].annotation.task, task) if task else {}
        ex_spans = [(a, b, adapt_name(z, words)) for a, b, z in self.zero_shot[aligns[best_i].index]]
        symbolic = symbolic_labels(ex_spans, aligns[best_i].exemplar.annotation.segments, tgt_kin.spans, fps)
        misses = [e.frame for e in tgt_events if e.kind == "close" and e.detail == "miss"]
        runs = fuse(runs, tgt_kin.cuts, aligns[best_i], n, fps, symbolic, tgt_kin.spans, misses)
        segments = []
        for k, (name, a, b) in enumerate(runs):
            c_start = 1.0 if k == 0 else boundary_confidence(aligns, a, fps)
            c_end = 1.0 if k == len(runs) - 1 else boundary_confidence(aligns, b, fps)
            segments.append(
                Segment(
                    name=name,
                    start=a / fps,
                    end=duration if b >= n else b / fps,
                    source=tag,
                    confidence=round(min(c_start, c_end), 4),
                )
            )
        best = aligns[int(np.argmin(costs))]
        share = unexplained(best.cost, self.variance[best.index], variance_terms(tgt_aligned))
        ex_extra, tgt_extra = missed_grasps(self.events[best.index], tgt_events)
        unpinned = 1.0 - len(best.pinned) / max(1, len(best.bounds))
        structure = 0.15 * (len(ex_extra) + len(tgt_extra)) + 0.2 * unpinned
        notes = {
            "proposal": "aligned",
            "aligned_to": [a.exemplar.annotation.episode for a in aligns],
            "alignment_cost": {str(a.exemplar.annotation.episode): round(a.cost, 5) for a in aligns},
            "exemplar_cost": None if self.reference is None else round(self.reference, 5),
            "items_from": best.exemplar.annotation.episode,
            "dimensions": len(self.space.keys),
            "unexplained": round(share, 4),
            "missed_grasps": {"exemplar_only": len(ex_extra), "episode_only": len(tgt_extra)},
            "pinned_boundaries": f"{len(best.pinned)} of {len(best.bounds)}",
        }
        return Propagated(
            repair_cover(segments, duration, fps),
            carry_items(best, fps, n, duration, tag),
            round(uncertainty_of(share, structure), 4),
            notes,
        )
