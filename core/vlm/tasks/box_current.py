"""``box_current``: where the task's object is, on one frame at ``meta["t"]``.

An engine asks on `SampleConfig.box_frames` frames spread evenly over the episode.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from core.vlm.builder import SampleBuilder, even_times
from core.vlm.tasks._base import register
from core.vlm.tasks._boxes import BoxTask

if TYPE_CHECKING:
    from core.annotations import EpisodeAnnotation


class BoxCurrent(BoxTask):
    name = "box_current"
    box_kind = "current"
    order = 20

    def times(
        self, b: SampleBuilder, camera: str, context: EpisodeAnnotation | None
    ) -> list[tuple[float, dict[str, Any]]]:
        return [(b.t(t), {}) for t in even_times(0.0, b.last, b.cfg.box_frames)]


register(BoxCurrent())
