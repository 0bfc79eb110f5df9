"""``describe``: the first pass of describe-then-segment (inference only, free text).

Its samples are made by the segmentation task (they share images and window);
its answer is put into that window's segmentation prompt (`with_description`).
"""

from __future__ import annotations

import re
from typing import Any

from core.vlm.jsontext import Unparseable
from core.vlm.tasks._base import Task, register

_SPECIAL_TOKEN = re.compile(r"<\|[a-z_]+\|>")


class Describe(Task):
    name = "describe"
    order = 5
    max_tokens = 256
    trained = False
    on_request = False

    def read(
        self, raw: str, meta: dict[str, Any], repairs: list[str], source: str, confidence: float | None
    ) -> str:
        body = _SPECIAL_TOKEN.sub("", raw).strip()
        if not body:
            raise Unparseable("empty description")
        return body


DESCRIBE = register(Describe())
