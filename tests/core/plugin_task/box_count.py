"""A task that lives outside core: how many of the task's objects one frame shows.

Used by tests/core/test_vlm_tasks.py to show that adding a task is adding one
module (and its prompt file): registered, it is asked by engines, trained on,
and read back with no other file changed. Its answers become open QA items.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from core.annotations import QA, Box, EpisodeAnnotation
from core.vlm.builder import Sample, SampleBuilder, dump
from core.vlm.jsontext import Unparseable
from core.vlm.readers import pick
from core.vlm.tasks import Item, Task, register

QUESTION = "How many of the task's objects are in view?"


class BoxCount(Task):
    name = "box_count"
    kind = "qa"
    order = 70
    max_tokens = 16
    prompt_dir = Path(__file__).parent

    def make(self, b: SampleBuilder, camera: str, t: float, boxes: list[Box] | None = None) -> Sample:
        spec = b.frame_spec(camera, t)
        prompt = self.render(task=b.task_text, time=f"{t:.2f}", camera=camera)
        answer = dump({"count": len(boxes)}) if boxes is not None else ""
        return b.sample(self.name, [spec], prompt, answer, t=t, camera=camera, image_size=spec.size)

    def requests(self, b: SampleBuilder, camera: str, context: EpisodeAnnotation | None) -> list[Sample]:
        return [self.make(b, camera, b.t(b.duration / 2))]

    def samples(self, b: SampleBuilder, ann: EpisodeAnnotation) -> list[Sample]:
        current = [x for x in ann.boxes if x.kind == "current"]
        return [self.make(b, cam, t, boxes) for cam, t, boxes in b.by_frame(current)]

    def items(
        self, value: Any, meta: dict[str, Any], repairs: list[str], source: str, confidence: float | None
    ) -> list[Item]:
        count = pick(value, ("count", "n", "objects")) if isinstance(value, dict) else None
        if isinstance(count, bool) or not isinstance(count, int | float) or count < 0:
            raise Unparseable(f"no object count in {value!r}")
        return [
            QA(
                t=float(meta["t"]),
                camera=meta["camera"],
                question=QUESTION,
                answer=str(int(count)),
                source=source,
                confidence=confidence,
            )
        ]


TASK = register(BoxCount())
