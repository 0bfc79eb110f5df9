"""``dialogue``: one exchange for the skill ``meta["skill"]`` starting at ``meta["t"]``,
``{"user_prompt": str, "robot_utterance": str, "scenario_type": str, "response_type": str}``.

An engine asks once per segment of the kinematic pre-pass (the whole task as one
skill without it); training uses every dialogue turn of the annotation.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from core.annotations import RESPONSE_TYPES, SCENARIO_TYPES, DialogueTurn, Segment, segment_at
from core.vlm.builder import Sample, SampleBuilder, dump
from core.vlm.jsontext import Unparseable
from core.vlm.readers import listify, pick, text
from core.vlm.tasks._base import Item, Task, register

if TYPE_CHECKING:
    from core.annotations import EpisodeAnnotation

_ALIASES = {"acknowledgement": "acknowledgment", "constraint_acknowledgement": "constraint_acknowledgment"}


def _choice(value: Any, allowed: tuple[str, ...], field_name: str, repairs: list[str]) -> str:
    v = re.sub(r"[\s\-]+", "_", str(value or "").strip().lower())
    v = _ALIASES.get(v, v)
    if v in allowed:
        return v
    repairs.append(f"{field_name} {value!r} is not one of {', '.join(allowed)}: used {allowed[0]}")
    return allowed[0]


class Dialogue(Task):
    name = "dialogue"
    kind = "dialogue"
    order = 60
    max_tokens = 160
    needs_context = True

    def make(
        self,
        b: SampleBuilder,
        camera: str,
        t: float,
        skill: str,
        span: tuple[float, float],
        turn: DialogueTurn | None = None,
    ) -> Sample:
        spec = b.frame_spec(camera, t)
        prompt = self.render(
            task=b.task_text,
            time=f"{t:.2f}",
            camera=camera,
            skill=skill,
            start=f"{span[0]:.2f}",
            end=f"{span[1]:.2f}",
            scenario_types=", ".join(SCENARIO_TYPES),
            response_types=", ".join(RESPONSE_TYPES),
        )
        answer = ""
        if turn is not None:
            answer = dump(
                {
                    "user_prompt": turn.user_prompt,
                    "robot_utterance": turn.robot_utterance,
                    "scenario_type": turn.scenario_type,
                    "response_type": turn.response_type,
                }
            )
        return b.sample(self.name, [spec], prompt, answer, t=t, camera=camera, skill=skill, span=span)

    def requests(self, b: SampleBuilder, camera: str, context: EpisodeAnnotation | None) -> list[Sample]:
        segs = context.segments if context is not None and context.segments else []
        if not segs:
            segs = [Segment(name=b.task_text, start=0.0, end=b.duration)]
        return [self.make(b, camera, b.t(s.start), s.name, (s.start, s.end)) for s in segs]

    def samples(self, b: SampleBuilder, ann: EpisodeAnnotation) -> list[Sample]:
        out = []
        for turn in ann.dialogue:
            seg = segment_at(ann.segments, turn.t)
            span = (
                (seg.start, seg.end) if seg is not None and seg.name == turn.skill else (turn.t, ann.duration)
            )
            out.append(self.make(b, b.first_camera, b.t(turn.t), turn.skill, span, turn))
        return out

    def items(
        self, value: Any, meta: dict[str, Any], repairs: list[str], source: str, confidence: float | None
    ) -> list[Item]:
        rows = listify(value, ("dialogue", "turns", "exchanges"))
        out: list[Item] = []
        for row in rows:
            if not isinstance(row, dict):
                continue
            user = text(pick(row, ("user_prompt", "user", "prompt", "instruction")))
            robot = text(pick(row, ("robot_utterance", "robot", "response", "reply")))
            if not user or not robot:
                continue
            scenario = _choice(
                pick(row, ("scenario_type", "scenario")), SCENARIO_TYPES, "scenario_type", repairs
            )
            response = _choice(
                pick(row, ("response_type", "response_kind")), RESPONSE_TYPES, "response_type", repairs
            )
            out.append(
                DialogueTurn(
                    t=float(meta["t"]),
                    skill=meta["skill"],
                    user_prompt=user,
                    robot_utterance=robot,
                    scenario_type=scenario,  # type: ignore[arg-type]
                    response_type=response,  # type: ignore[arg-type]
                    source=source,
                    confidence=confidence,
                )
            )
        if not out:
            raise Unparseable("no exchange with both a user prompt and a robot utterance")
        if len(out) > 1:
            repairs.append(f"kept the first of {len(out)} exchanges")
        return out[:1]


register(Dialogue())
