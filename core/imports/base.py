"""What every import source shares: its findings per episode, its summary, the cover rule.

A source (one module per format) reads its files once and says, per episode, what
it found: segments, motion descriptions, task phrasings, dialogue turns, QAs,
boxes, contact points, trajectories. It never touches the store: the assembler
(`core.imports.assemble`) picks, per kind, the source that knows it best and
makes one revision per episode.
"""

from __future__ import annotations

import itertools
from collections import Counter
from dataclasses import dataclass, field

from core.annotations import (
    COVER_TOLERANCE,
    QA,
    RESPONSE_TYPES,
    SCENARIO_TYPES,
    TIME_EPS,
    Box,
    Contact,
    Segment,
    Trajectory,
    repair_cover,
)
from core.dataset import Dataset
from core.errors import DatasetError


class ImportFileError(DatasetError):
    """A source file cannot be read as its format; the message names the file and the field."""


@dataclass(frozen=True)
class Context:
    """What every source needs: the dataset, and the provenance to stamp on each item."""

    dataset: Dataset
    # Every imported item's `source`: "human:<author>".
    source: str

    def duration(self, episode: int) -> float:
        return self.dataset.episodes[episode].duration

    def n_frames(self, episode: int) -> int:
        return self.dataset.episodes[episode].length

    @property
    def fps(self) -> float:
        return self.dataset.fps

    def frame_time(self, frame: int) -> float:
        return frame / self.dataset.fps

    def snap(self, t: float, episode: int) -> float:
        """A stored (float32) timestamp as the time of its frame, within the episode."""
        k = min(max(round(t * self.fps), 0), self.n_frames(episode) - 1)
        return k / self.fps


@dataclass
class Turn:
    """A dialogue turn before the assembler knows the episode's segments (`skill` may be empty:
    then it is the subtask active at `t`)."""

    t: float
    user_prompt: str
    robot_utterance: str
    skill: str = ""
    scenario_type: str = SCENARIO_TYPES[0]
    response_type: str = RESPONSE_TYPES[0]


@dataclass
class Found:
    """What one source says about one episode (None: the source says nothing of that kind)."""

    segments: list[Segment] | None = None
    task: str | None = None
    task_aug: list[str] | None = None
    # (time, text): a segment's motion description, attached to the segment active then.
    motion: list[tuple[float, str]] = field(default_factory=list)
    dialogue: list[Turn] | None = None
    qa: list[QA] = field(default_factory=list)
    boxes: list[Box] = field(default_factory=list)
    contacts: list[Contact] = field(default_factory=list)
    trajectories: list[Trajectory] = field(default_factory=list)


@dataclass
class SourceResult:
    """One source's findings and what a person should know about them."""

    # How the output names the source: a file under the dataset ("meta/skills.json") or a column.
    name: str
    episodes: dict[int, Found] = field(default_factory=dict)
    # Items read, by kind ("segments", "dialogue turns", ...), for the summary line.
    counts: Counter[str] = field(default_factory=Counter)
    # Repairs and things left out, each naming the episode and the item.
    notes: list[str] = field(default_factory=list)

    def found(self, episode: int) -> Found:
        return self.episodes.setdefault(episode, Found())

    def note(self, message: str) -> None:
        self.notes.append(f"{self.name}: {message}")

    @property
    def empty(self) -> bool:
        return not any(self.counts.values())

    def summary(self) -> str:
        if self.empty:
            return f"{self.name}: present but empty (no annotations in it)"
        kinds = ", ".join(f"{n} {kind}" for kind, n in self.counts.items() if n)
        if not self.episodes:
            return f"{self.name}: {kinds}; no episode's annotations taken from it"
        return f"{self.name}: {len(self.episodes)} episode(s): {kinds}"


def episode_list(episodes: list[int] | set[int]) -> str:
    """'3, 7, 9' (or the first ten and a count), for messages that name episodes."""
    eps = sorted(episodes)
    head = ", ".join(str(e) for e in eps[:10])
    return head if len(eps) <= 10 else f"{head} and {len(eps) - 10} more"


def cover_problem(spans: list[tuple[float, float]], duration: float) -> str | None:
    """Why ordered spans are not a gap-free cover of [0, duration], or None if they are."""
    if not spans:
        return None
    if spans[0][0] > COVER_TOLERANCE:
        return f"the first span starts at {spans[0][0]:.3f} s, not 0"
    for (_, a1), (b0, _) in itertools.pairwise(spans):
        if b0 < a1 - COVER_TOLERANCE:
            return f"spans overlap at {b0:.3f}-{a1:.3f} s"
        if b0 > a1 + COVER_TOLERANCE:
            return f"spans leave a gap at {a1:.3f}-{b0:.3f} s"
    end = spans[-1][1]
    if end > duration + COVER_TOLERANCE:
        return f"the last span ends at {end:.3f} s, after the episode's end ({duration:.3f} s)"
    if end < duration - COVER_TOLERANCE:
        return f"the last span ends at {end:.3f} s, before the episode's end ({duration:.3f} s)"
    return None


def make_cover(
    raw: list[tuple[str, float, float, str]],
    episode: int,
    duration: float,
    fps: float,
    source: str,
    result: SourceResult,
) -> list[Segment]:
    """Segments from (name, start, end, motion) spans as a gap-free cover of the episode.

    A cover is kept as it is (boundaries to the last bit, the last end set to the
    episode's end within `COVER_TOLERANCE`); spans that overlap, leave gaps, start late,
    stop early or run past the end are repaired with `core.annotations.repair_cover`, and
    empty ones are dropped, each said in a note of `result`.
    """
    spans, dropped = [], 0
    for name, start, end, motion in raw:
        if end - start <= TIME_EPS or start >= duration or end <= 0:
            dropped += 1
            continue
        spans.append((name, start, end, motion))
    spans.sort(key=lambda s: (s[1], s[2]))
    if dropped:
        result.note(
            f"episode {episode}: {dropped} span(s) empty or outside the episode (0-{duration:.3f} s); dropped"
        )
    if not spans:
        return []
    problem = cover_problem([(s[1], s[2]) for s in spans], duration)
    if problem is None:
        segments = [
            Segment(name=n, start=max(0.0, a), end=b, motion=m, source=source) for n, a, b, m in spans
        ]
        segments[0].start = 0.0
        segments[-1].end = duration
        return segments
    clipped = [
        Segment(name=n, start=max(0.0, a), end=min(b, duration), motion=m, source=source)
        for n, a, b, m in spans
        if min(b, duration) - max(0.0, a) > TIME_EPS
    ]
    repaired = repair_cover(clipped, duration, fps)
    result.note(
        f"episode {episode}: {problem}; repaired into a gap-free cover of {len(repaired)} segment(s) "
        "(overlaps and gaps split at their midpoint, on the frame grid)"
    )
    return repaired
