"""What the four box tasks share: one frame, ``[{"bbox_2d": [x1, y1, x2, y2], "label": str}, ...]``.

Coordinates are in the family's convention (Qwen2.5-VL: pixels of the image as
sent; Qwen2-VL / Qwen3-VL: integers 0..1000; LLaVA-OneVision: 0..1 floats).
The tasks differ in the box kind they fill and in when their frame is.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from core.annotations import Box
from core.vlm.builder import Sample, SampleBuilder, dump
from core.vlm.coords import FAMILIES, to_model
from core.vlm.jsontext import Unparseable
from core.vlm.readers import listify, numbers, pick, to_unit
from core.vlm.tasks._base import Item, Task

if TYPE_CHECKING:
    from core.annotations import EpisodeAnnotation

_QWEN2_BOX = re.compile(
    r"(?:<\|object_ref_start\|>(?P<label>.*?)<\|object_ref_end\|>\s*)?"
    r"<\|box_start\|>\s*\(\s*(?P<x1>-?[\d.]+)\s*,\s*(?P<y1>-?[\d.]+)\s*\)\s*,\s*"
    r"\(\s*(?P<x2>-?[\d.]+)\s*,\s*(?P<y2>-?[\d.]+)\s*\)\s*<\|box_end\|>",
    re.S,
)


class BoxTask(Task):
    """A box task: subclasses set `box_kind` and say when to look (`times`)."""

    kind = "boxes"
    max_tokens = 96
    # The Box.kind its boxes have.
    box_kind: ClassVar[str] = ""

    def times(
        self, b: SampleBuilder, camera: str, context: EpisodeAnnotation | None
    ) -> list[tuple[float, dict[str, Any]]]:
        """When an engine asks (times on the frame grid) and any meta to add to each request."""
        raise NotImplementedError

    def make(self, b: SampleBuilder, camera: str, t: float, boxes: Sequence[Box] = ()) -> Sample:
        spec = b.frame_spec(camera, t)
        prompt = self.render(**b.grounding_fields(camera, t, spec.size))
        answer = (
            dump([{"bbox_2d": to_model(x.xyxy, b.fam, spec.size), "label": x.label} for x in boxes])
            if boxes
            else ""
        )
        return b.sample(
            self.name, [spec], prompt, answer, t=t, camera=camera, kind=self.box_kind, image_size=spec.size
        )

    def requests(self, b: SampleBuilder, camera: str, context: EpisodeAnnotation | None) -> list[Sample]:
        out = []
        for t, extra in self.times(b, camera, context):
            s = self.make(b, camera, t)
            s.meta.update(extra)
            out.append(s)
        return out

    def samples(self, b: SampleBuilder, ann: EpisodeAnnotation) -> list[Sample]:
        mine = [x for x in ann.boxes if x.kind == self.box_kind]
        return [self.make(b, cam, t, boxes) for cam, t, boxes in b.by_frame(mine)]

    def read(
        self, raw: str, meta: dict[str, Any], repairs: list[str], source: str, confidence: float | None
    ) -> list[Item] | str:
        native = _qwen2_boxes(raw, meta, repairs, source, confidence)
        if native:
            return native
        return super().read(raw, meta, repairs, source, confidence)

    def items(
        self, value: Any, meta: dict[str, Any], repairs: list[str], source: str, confidence: float | None
    ) -> list[Item]:
        default = _default_label(meta)
        if isinstance(value, list) and numbers(value, 4) is not None:
            value = [{"bbox_2d": value}]
        rows = listify(value, ("boxes", "objects", "detections", "bboxes", "answer"))
        out: list[Item] = []
        dropped = 0
        for row in rows:
            nums = numbers(row, 4) if not isinstance(row, dict) else None
            label = default
            if isinstance(row, dict):
                nums = numbers(
                    pick(row, ("bbox_2d", "bbox", "box", "bounding_box", "xyxy", "box_2d", "coordinates")), 4
                )
                lab = pick(row, ("label", "name", "object", "category"))
                if isinstance(lab, str) and lab.strip():
                    label = " ".join(lab.split())
            if nums is None:
                dropped += 1
                continue
            out.append(_box(nums, label, meta, repairs, source, confidence))
        if dropped:
            repairs.append(f"dropped {dropped} entries without four box coordinates")
        if not out:
            raise Unparseable("no box with four coordinates")
        return out


def _default_label(meta: dict[str, Any]) -> str:
    return "gripper" if meta["kind"] == "gripper" else "object"


def _box(
    nums: list[float], label: str, meta: dict, repairs: list[str], source: str, confidence: float | None
) -> Box:
    x1, y1, x2, y2 = to_unit(nums, meta, repairs)
    if x2 < x1 or y2 < y1:
        repairs.append("reordered box corners")
        x1, x2 = sorted((x1, x2))
        y1, y2 = sorted((y1, y2))
    return Box(
        t=float(meta["t"]),
        camera=meta["camera"],
        label=label,
        kind=meta["kind"],
        xyxy=(x1, y1, x2, y2),
        source=source,
        confidence=confidence,
    )


def _qwen2_boxes(
    text: str, meta: dict, repairs: list[str], source: str, confidence: float | None
) -> list[Item] | None:
    """Qwen2-VL's native grounding tokens: <|object_ref_start|>cup<|object_ref_end|><|box_start|>(x1,y1),(x2,y2)<|box_end|>."""
    found = list(_QWEN2_BOX.finditer(text))
    if not found:
        return None
    repairs.append("read Qwen2-VL box tokens")
    local = dict(meta)
    if FAMILIES[meta.get("family", "qwen2_5_vl")].coords != "grid1000":
        local["family"] = "qwen2_vl"  # the tokens are always on the 0..1000 grid
    default = _default_label(meta)
    return [
        _box(
            [float(m.group(k)) for k in ("x1", "y1", "x2", "y2")],
            (m.group("label") or default).strip() or default,
            local,
            repairs,
            source,
            confidence,
        )
        for m in found
    ]
