"""``qa_choice``: multiple-choice questions about one frame,
``[{"question": str, "choices": [str, ...], "answer": str}, ...]``.

Choices may come as a list or as a letter map ({"A": ..., "B": ...}); an answer
given as a letter or in other case is matched to its choice (a repair).
"""

from __future__ import annotations

from typing import Any

from core.annotations import QA
from core.vlm.readers import pick, text
from core.vlm.tasks._base import register
from core.vlm.tasks._qa import QATask, match_choice


class QAChoice(QATask):
    name = "qa_choice"
    qa_kind = "choice"
    order = 50
    max_tokens = 256

    def answer_row(self, q: QA) -> dict[str, Any]:
        return {"question": q.question, "choices": list(q.choices), "answer": q.answer}

    def choices(self, row: dict, answer: str, repairs: list[str]) -> tuple[list[str], str] | None:
        raw = pick(row, ("choices", "options", "answers"))
        letters: dict[str, str] = {}
        choices: list[str] = []
        if isinstance(raw, dict):
            letters = {str(k).strip().upper(): text(v) for k, v in raw.items()}
            choices = [c for c in letters.values() if c]
        elif isinstance(raw, list):
            choices = [c for c in (text(v) for v in raw) if c]
            letters = {chr(65 + i): c for i, c in enumerate(choices)}
        if answer in choices:
            return choices, answer
        fixed = match_choice(answer, choices, letters)
        if fixed is None:
            return None
        repairs.append(f"matched answer {answer!r} to choice {fixed!r}")
        return choices, fixed


register(QAChoice())
