"""``box_contact``: the object at the moment the gripper touches it.

An engine looks at a known contact of the kinematic pre-pass, else the middle of
a grasp segment, else the middle of the episode; ``meta["t_source"]`` says which.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from core.vlm.builder import SampleBuilder, contact_time
from core.vlm.tasks._base import register
from core.vlm.tasks._boxes import BoxTask

if TYPE_CHECKING:
    from core.annotations import EpisodeAnnotation


class BoxContact(BoxTask):
    name = "box_contact"
    box_kind = "contact"
    order = 22
    needs_context = True

    def times(
        self, b: SampleBuilder, camera: str, context: EpisodeAnnotation | None
    ) -> list[tuple[float, dict[str, Any]]]:
        t, how = contact_time(b, context, camera)
        return [(t, {"t_source": how})]


register(BoxContact())
