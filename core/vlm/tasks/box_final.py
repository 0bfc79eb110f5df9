"""``box_final``: where the object should end up (the target), drawn on the frame at the box's
time (the episode start)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from core.vlm.builder import SampleBuilder
from core.vlm.tasks._base import register
from core.vlm.tasks._boxes import BoxTask

if TYPE_CHECKING:
    from core.annotations import EpisodeAnnotation


class BoxFinal(BoxTask):
    name = "box_final"
    box_kind = "final"
    order = 21

    def times(
        self, b: SampleBuilder, camera: str, context: EpisodeAnnotation | None
    ) -> list[tuple[float, dict[str, Any]]]:
        return [(0.0, {})]


register(BoxFinal())
