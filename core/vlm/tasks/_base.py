"""The `Task` interface and the registry that replaces per-task if/elif chains.

A task owns four things: its prompt file (resources/prompts/<name>.txt unless
it says otherwise), the inference requests it makes for an episode, the
training samples it makes from a reviewed annotation, and the reader of its
answers. The sample builder, the parser and the engines look tasks up here, so
a new task is one module that calls `register`.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from core.annotations import ITEM_FIELDS, QA, Box, Contact, DialogueTurn, Segment, Trajectory
from core.vlm import prompts
from core.vlm.jsontext import extract_json

if TYPE_CHECKING:
    from core.annotations import EpisodeAnnotation
    from core.vlm.builder import Sample, SampleBuilder

Item = Segment | Box | Trajectory | Contact | DialogueTurn | QA


class Task:
    """One VLM task. Subclasses set the class attributes and override what they make."""

    # The task's name: sample ids, the trainer's --tasks, and the prompt file's stem.
    name: ClassVar[str] = ""
    # The EpisodeAnnotation field its items fill (one of ITEM_FIELDS); None: feeds another task.
    kind: ClassVar[str | None] = None
    # Where it stands among the tasks: the order of TASKS and of an engine's requests.
    order: ClassVar[int] = 1000
    # Tokens an engine lets the model write for one answer.
    max_tokens: ClassVar[int] = 256
    # False: inference only (no training data carries it).
    trained: ClassVar[bool] = True
    # False: engines do not run it when its kind is asked (only when named).
    on_request: ClassVar[bool] = True
    # True: its requests look at a kinematic pre-pass (contact time, skills).
    needs_context: ClassVar[bool] = False
    # The folder of its prompt file; None: resources/prompts (or $ROBO_PROMPTS_DIR).
    prompt_dir: ClassVar[Path | None] = None

    def render(self, **fields: object) -> str:
        """The task's prompt with `fields` filled."""
        return prompts.render(self.name, self.prompt_dir, **fields)

    def requests(self, b: SampleBuilder, camera: str, context: EpisodeAnnotation | None) -> list[Sample]:
        """Prompts (answer "") for one camera of the builder's episode."""
        return []

    def samples(self, b: SampleBuilder, ann: EpisodeAnnotation) -> list[Sample]:
        """Training samples (prompt + answer) from a reviewed annotation; [] when it has no data."""
        return []

    def read(
        self, raw: str, meta: dict[str, Any], repairs: list[str], source: str, confidence: float | None
    ) -> list[Item] | str:
        """Items from an answer (or text, for a task that answers in prose); raises ValueError
        (core.vlm.jsontext.Unparseable) when nothing usable is in it. Appends what it repaired."""
        value, found = extract_json(raw)
        repairs.extend(found)
        return self.items(value, meta, repairs, source, confidence)

    def items(
        self, value: Any, meta: dict[str, Any], repairs: list[str], source: str, confidence: float | None
    ) -> list[Item]:
        """Items from the answer's JSON value (what `read` calls after extracting it)."""
        raise NotImplementedError(f"task {self.name}: no answer reader")


REGISTRY: dict[str, Task] = {}


def register(task: Task) -> Task:
    """Add a task (returns it, so a module can keep it); a name taken twice is an error."""
    if not task.name:
        raise ValueError(f"{type(task).__name__}: a task needs a name")
    if task.kind is not None and task.kind not in ITEM_FIELDS:
        raise ValueError(f"task {task.name}: kind {task.kind!r} is not one of {', '.join(ITEM_FIELDS)}")
    old = REGISTRY.get(task.name)
    if old is not None:
        raise ValueError(
            f"task {task.name}: registered twice ({type(old).__module__} and {type(task).__module__})"
        )
    REGISTRY[task.name] = task
    return task


def unregister(name: str) -> None:
    """Remove a task (tests that register their own)."""
    REGISTRY.pop(name, None)


def ordered() -> list[Task]:
    """The registered tasks in their `order` (registration order among equals)."""
    return sorted(REGISTRY.values(), key=lambda t: t.order)


def get(name: str) -> Task:
    """The task called `name`; an unknown name is a ValueError listing the known ones."""
    try:
        return REGISTRY[name]
    except KeyError:
        raise ValueError(f"unknown task {name!r} (known: {', '.join(t.name for t in ordered())})") from None


def trained_names() -> tuple[str, ...]:
    """The names of the tasks samples can be made for, in order."""
    return tuple(t.name for t in ordered() if t.trained)


def kind_tasks() -> dict[str, tuple[str, ...]]:
    """For each item kind some task fills, the tasks an engine runs when that kind is asked."""
    out = {k: tuple(t.name for t in ordered() if t.kind == k and t.on_request) for k in ITEM_FIELDS}
    return {k: names for k, names in out.items() if names}
