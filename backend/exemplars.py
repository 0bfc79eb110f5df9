"""Which accepted episodes a proposal may learn from: the same task, in the same dataset.

"Same task" is the same task string. A dataset where every episode has a string of
its own (generated instructions, free-text descriptions) is one task: grouping by
string would leave every group alone. The server, `robo-backend annotate` and
`robo-backend evaluate --exemplars` all pick exemplars through this module, so the
evaluation measures exactly what a running backend proposes.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from core.annotations import EpisodeAnnotation
from core.dataset import Dataset
from core.store import Store

ALL_TASKS = "*"


def task_keys(ds: Dataset) -> dict[int, str]:
    """Episode -> the key of its task group."""
    tasks = {e.index: e.task for e in ds}
    counts = Counter(tasks.values())
    if len(tasks) > 1 and counts and max(counts.values()) == 1:
        return dict.fromkeys(tasks, ALL_TASKS)
    return tasks


@dataclass
class ExemplarIndex:
    """The accepted annotations of one dataset, grouped by task."""

    dataset_id: str
    keys: dict[int, str]
    groups: dict[str, list[EpisodeAnnotation]] = field(default_factory=dict)
    # Accepted episodes that cannot serve (no segments, not in the dataset), with why.
    unusable: dict[int, str] = field(default_factory=dict)

    @classmethod
    def load(cls, store: Store, dataset_id: str, ds: Dataset) -> ExemplarIndex:
        index = cls(dataset_id, task_keys(ds))
        for ann in store.accepted(dataset_id):
            if ann.episode not in index.keys:
                index.unusable[ann.episode] = "not in the dataset"
            elif not ann.segments:
                index.unusable[ann.episode] = "accepted with no segments"
            else:
                index.groups.setdefault(index.keys[ann.episode], []).append(ann)
        return index

    def task_of(self, episode: int) -> str:
        return self.keys.get(episode, "")

    def for_episode(self, episode: int) -> tuple[EpisodeAnnotation, ...]:
        """Accepted episodes of `episode`'s task, other than itself, by index."""
        group = self.groups.get(self.task_of(episode), [])
        return tuple(sorted((a for a in group if a.episode != episode), key=lambda a: a.episode))

    def episodes_of_task(self, task_key: str) -> list[int]:
        return sorted(e for e, k in self.keys.items() if k == task_key)
