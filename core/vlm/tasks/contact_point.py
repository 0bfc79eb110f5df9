"""``contact_point``: ``[{"point_2d": [x, y], "label": "contact"}]``, where the gripper touches the
object on the frame at ``meta["t"]`` (found as for `box_contact`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from core.annotations import Contact
from core.vlm.builder import Sample, SampleBuilder, contact_time, dump
from core.vlm.coords import to_model
from core.vlm.jsontext import Unparseable
from core.vlm.readers import points
from core.vlm.tasks._base import Item, Task, register

if TYPE_CHECKING:
    from core.annotations import EpisodeAnnotation


class ContactPoint(Task):
    name = "contact_point"
    kind = "contacts"
    order = 40
    max_tokens = 64
    needs_context = True

    def make(self, b: SampleBuilder, camera: str, t: float, contacts: Sequence[Contact] = ()) -> Sample:
        spec = b.frame_spec(camera, t)
        prompt = self.render(**b.grounding_fields(camera, t, spec.size))
        rows = [{"point_2d": to_model((c.x, c.y), b.fam, spec.size), "label": "contact"} for c in contacts]
        answer = dump(rows) if rows else ""
        return b.sample(self.name, [spec], prompt, answer, t=t, camera=camera, image_size=spec.size)

    def requests(self, b: SampleBuilder, camera: str, context: EpisodeAnnotation | None) -> list[Sample]:
        t, how = contact_time(b, context, camera)
        s = self.make(b, camera, t)
        s.meta["t_source"] = how
        return [s]

    def samples(self, b: SampleBuilder, ann: EpisodeAnnotation) -> list[Sample]:
        return [self.make(b, cam, t, cs) for cam, t, cs in b.by_frame(ann.contacts)]

    def items(
        self, value: Any, meta: dict[str, Any], repairs: list[str], source: str, confidence: float | None
    ) -> list[Item]:
        pts = points(value, meta, repairs)
        if not pts:
            raise Unparseable("no contact point")
        return [
            Contact(t=float(meta["t"]), camera=meta["camera"], x=x, y=y, source=source, confidence=confidence)
            for _, (x, y) in pts
        ]


register(ContactPoint())
