"""Model text -> data-model items, with validation and repair.

Real VLM answers are rarely clean JSON: Qwen wraps it in ```json fences and
prose, LLaVA writes Python lists with single quotes, both leave trailing commas,
stop mid-list when the token budget runs out, swap box corners, give
overlapping or unsorted spans, and point outside the image. Each of those is
repaired (core.vlm.jsontext for the JSON, each task's reader in core.vlm.tasks
for its items) and recorded in `ParseResult.repairs`; what cannot be read gives
an `unparseable` result that keeps the raw text, never an exception.

Coordinates are read in the sample's family convention (``meta["family"]``,
``meta["image_size"]``) through core.vlm.coords, the one place that knows them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from core.errors import AnnotationError
from core.vlm import tasks as registry
from core.vlm.jsontext import Unparseable, extract_json
from core.vlm.readers import parse_time
from core.vlm.tasks import Item

__all__ = ["Item", "ParseResult", "extract_json", "parse_answer", "parse_time"]


@dataclass
class ParseResult:
    """What came out of one answer: items (or `text` for describe), what was repaired, or why not."""

    status: Literal["ok", "unparseable"]
    task: str
    raw: str
    items: list[Item] = field(default_factory=list)
    text: str = ""
    repairs: list[str] = field(default_factory=list)
    error: str = ""

    @property
    def ok(self) -> bool:
        return self.status == "ok"


def parse_answer(
    task: str, text: str, meta: dict[str, Any], source: str = "", confidence: float | None = None
) -> ParseResult:
    """Read one answer to a sample of `task` (see core.vlm.tasks for the formats).

    `meta` is the sample's meta. Items get `source` and `confidence`. Never raises
    for bad model output: that is an `unparseable` result keeping `raw`.
    """
    raw = text if isinstance(text, str) else str(text)
    repairs: list[str] = []
    conf = None if confidence is None else min(1.0, max(0.0, float(confidence)))
    try:
        reader = registry.REGISTRY.get(task)
        if reader is None:
            raise Unparseable(f"unknown task {task!r}")
        got = reader.read(raw, meta, repairs, source, conf)
        if isinstance(got, str):
            return ParseResult("ok", task, raw, text=got)
        return ParseResult("ok", task, raw, items=got, repairs=repairs)
    except (Unparseable, AnnotationError, ValueError, TypeError, KeyError, RecursionError) as exc:
        why = str(exc) if isinstance(exc, Unparseable | AnnotationError) else f"{type(exc).__name__}: {exc}"
        return ParseResult("unparseable", task, raw, repairs=repairs, error=f"{task}: {why}")
