"""What the two QA tasks share: questions about one frame at ``meta["t"]``.

``qa_choice``: ``[{"question": str, "choices": [str, ...], "answer": str}, ...]``;
``qa_open``: ``[{"question": str, "answer": str}, ...]``. An engine asks
`SampleConfig.qa_count` questions about the middle of the episode.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from core.annotations import QA
from core.errors import AnnotationError
from core.vlm.builder import Sample, SampleBuilder, dump
from core.vlm.jsontext import Unparseable
from core.vlm.readers import listify, pick, text
from core.vlm.tasks._base import Item, Task

if TYPE_CHECKING:
    from core.annotations import EpisodeAnnotation


class QATask(Task):
    """A QA task: subclasses set the QA kind ("choice" or "open")."""

    kind = "qa"
    qa_kind: ClassVar[str] = ""

    def answer_row(self, q: QA) -> dict[str, Any]:
        """How one question is written in a training answer."""
        return {"question": q.question, "answer": q.answer}

    def make(self, b: SampleBuilder, camera: str, t: float, items: Sequence[QA] = ()) -> Sample:
        spec = b.frame_spec(camera, t)
        count = len(items) if items else b.cfg.qa_count
        prompt = self.render(task=b.task_text, time=f"{t:.2f}", camera=camera, count=count)
        answer = dump([self.answer_row(q) for q in items]) if items else ""
        return b.sample(self.name, [spec], prompt, answer, t=t, camera=camera, image_size=spec.size)

    def requests(self, b: SampleBuilder, camera: str, context: EpisodeAnnotation | None) -> list[Sample]:
        return [self.make(b, camera, b.t(b.duration / 2))]

    def samples(self, b: SampleBuilder, ann: EpisodeAnnotation) -> list[Sample]:
        mine = [q for q in ann.qa if q.kind == self.qa_kind]
        return [self.make(b, cam, t, qs) for cam, t, qs in b.by_frame(mine)]

    def choices(self, row: dict, answer: str, repairs: list[str]) -> tuple[list[str], str] | None:
        """(choices, answer) of one question; None drops it. Open questions have no choices."""
        return [], answer

    def items(
        self, value: Any, meta: dict[str, Any], repairs: list[str], source: str, confidence: float | None
    ) -> list[Item]:
        rows = listify(value, ("questions", "qa", "pairs", "items", "answer"))
        out: list[Item] = []
        dropped = 0
        for row in rows:
            if not isinstance(row, dict):
                dropped += 1
                continue
            q = text(pick(row, ("question", "q")))
            got = self.choices(row, text(pick(row, ("answer", "a", "correct", "correct_answer"))), repairs)
            if got is None:
                dropped += 1
                continue
            choices, a = got
            try:
                out.append(
                    QA(
                        t=float(meta["t"]),
                        camera=meta["camera"],
                        question=q,
                        answer=a,
                        kind=self.qa_kind,  # type: ignore[arg-type]
                        choices=choices,
                        source=source,
                        confidence=confidence,
                    )
                )
            except AnnotationError:
                dropped += 1
        if dropped:
            repairs.append(f"dropped {dropped} question(s) missing a question, an answer or valid choices")
        if not out:
            raise Unparseable("no usable question")
        return out


def match_choice(a: str, choices: list[str], letters: dict[str, str]) -> str | None:
    """The choice an answer means: a letter ("B", "(b)", "B: blue") or the choice's text."""
    key = a.strip().rstrip(").:").strip().upper()
    if letters.get(key):
        return letters[key]
    m = re.match(r"^\(?([A-Z])[).:]\s*(.*)$", a.strip(), re.I)
    if m and m.group(1).upper() in letters:
        return letters[m.group(1).upper()]
    low = [c.lower() for c in choices]
    if a.lower() in low:
        return choices[low.index(a.lower())]
    return None
