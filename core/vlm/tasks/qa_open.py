"""``qa_open``: open questions about one frame, ``[{"question": str, "answer": str}, ...]``."""

from __future__ import annotations

from core.vlm.tasks._base import register
from core.vlm.tasks._qa import QATask


class QAOpen(QATask):
    name = "qa_open"
    qa_kind = "open"
    order = 51
    max_tokens = 192


register(QAOpen())
