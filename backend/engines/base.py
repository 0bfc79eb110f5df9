"""The one interface every engine implements: predict a batch of episodes.

Engines get whole batches so the ones that can (vLLM, batched transformers
generation) schedule the work themselves; the kinematic engine just loops. An
engine never raises for one bad episode: it returns a `Prediction` whose status
says what happened, so the rest of the batch goes on.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from core.annotations import EpisodeAnnotation
from core.dataset import Dataset
from core.protocol import ModelInfo


@dataclass(frozen=True)
class EpisodeJob:
    """One episode to annotate: which dataset (by id and opened), which kinds, options."""

    dataset_id: str
    dataset: Dataset
    episode: int
    kinds: tuple[str, ...] = ("segments",)
    options: dict[str, Any] = field(default_factory=dict)
    # Accepted episodes of the same task (see backend/exemplars.py) an engine may learn from.
    exemplars: tuple[EpisodeAnnotation, ...] = ()


@dataclass
class Prediction:
    """What an engine made of one episode.

    `annotation` holds only the requested kinds, with provenance on every item and
    `uncertainty` in [0, 1] for the review queue. `unparseable` keeps the model's
    `raw` text; `notes` carries facts worth showing (e.g. how the gripper channel
    was found).
    """

    status: Literal["ok", "unparseable", "error"]
    annotation: EpisodeAnnotation | None = None
    raw: str = ""
    error: str = ""
    notes: dict[str, Any] = field(default_factory=dict)
    # The kinds the annotation really carries, when fewer than the job asked for: only these
    # replace the stored head's, so a segments-only answer never wipes another model's boxes.
    kinds: tuple[str, ...] | None = None


class Engine(ABC):
    name: str = "engine"
    version: str = "0"
    kinds: tuple[str, ...] = ()
    device: str = "cpu"

    def info(self) -> ModelInfo:
        return ModelInfo(
            engine=self.name, name=self.name, version=self.version, device=self.device, kinds=list(self.kinds)
        )

    @property
    def tag(self) -> str:
        return self.info().tag

    def job_tag(self, job: EpisodeJob) -> str:
        """The model version that would answer `job`: what the store records and skips on."""
        return self.tag

    @abstractmethod
    def predict(self, jobs: Sequence[EpisodeJob]) -> list[Prediction]:
        """One Prediction per job, in order."""

    def reload(self, path: str, version: str = "") -> ModelInfo:
        """Load new weights (e.g. a fine-tuned checkpoint); engines without weights refuse."""
        raise NotImplementedError(f"the {self.name} engine has no weights to reload")

    def warm(self) -> None:  # noqa: B027 - optional hook, most engines have nothing to start
        """Start, in the background, what a first large batch would otherwise wait for (worker
        processes, their imports); returns at once. The backend calls it when it starts."""

    def close(self) -> None:  # noqa: B027 - optional hook, most engines hold nothing
        """Release devices and processes."""
