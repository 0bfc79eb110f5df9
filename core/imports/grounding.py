"""The image-grounded rows of lerobot's language columns, back into boxes, contacts, QAs and traces.

The inverse of `core.export.language_grounding`: a `vqa` (question, answer) pair on
a camera becomes, by its answer's shape (lerobot's `VQA_ANSWER_SHAPES`),

- `{"detections": [{"label", "bbox_format", "bbox"}]}`: boxes, whose kind the question
  says (`BOX_QUESTIONS`; any other question: a `current` box);
- `{"label": "contact", "point_format": "xy", "point"}`: a contact point;
- `{"label": "scene", "attribute": "answer", "value"[, "choices"]}`: a QA (a choice
  QA with its choices);
- anything else (lerobot's count, spatial and other attribute or keypoint answers,
  or plain text): an open QA whose answer is the text as stored, so nothing is lost.

A `trace` pair's answer `{"points": [[x, y], ...], "timestamps": [...]}` is a
trajectory. Coordinates are pixels of the camera frame (its size in info.json)
and come back normalized to [0, 1]; a row whose camera the dataset lacks is left
out with a note.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

from core.annotations import QA, Box, Contact, Trajectory
from core.export.language_grounding import BOX_FORMAT, BOX_QUESTIONS, QA_LABEL
from core.imports.base import Found, SourceResult


def _template(text: str) -> re.Pattern[str]:
    pattern = re.escape(text).replace(re.escape("{labels}"), ".+")
    return re.compile(f"^{pattern}(?:{re.escape(BOX_FORMAT)})?$", re.DOTALL)


# Kind by question, most specific first (the gripper's question would match the current one's).
_KIND_OF_QUESTION = sorted(
    ((kind, _template(text)) for kind, text in BOX_QUESTIONS.items()),
    key=lambda kv: "{labels}" in BOX_QUESTIONS[kv[0]],
)


def box_kind(question: str) -> str | None:
    """The box kind our exporter's question names, or None for a question in other words."""
    for kind, pattern in _KIND_OF_QUESTION:
        if pattern.match(question.strip()):
            return kind
    return None


def _number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)


def _unit(v: float) -> float:
    return min(max(v, 0.0), 1.0)


def _xy(point: Any, size: tuple[int, int]) -> tuple[float, float] | None:
    if not isinstance(point, list | tuple) or len(point) != 2 or not all(_number(v) for v in point):
        return None
    h, w = size
    return _unit(point[0] / w), _unit(point[1] / h)


def _xyxy(det: dict[str, Any], size: tuple[int, int]) -> tuple[float, float, float, float] | None:
    bbox, fmt = det.get("bbox"), det.get("bbox_format") or "xyxy"
    if not isinstance(bbox, list | tuple) or len(bbox) != 4 or not all(_number(v) for v in bbox):
        return None
    x1, y1, a, b = bbox
    if fmt == "xywh":
        a, b = x1 + a, y1 + b
    elif fmt != "xyxy":
        return None
    h, w = size
    xs = sorted((_unit(x1 / w), _unit(a / w)))
    ys = sorted((_unit(y1 / h), _unit(b / h)))
    return xs[0], ys[0], xs[1], ys[1]


class Grounding:
    """Turns one episode's vqa and trace pairs into items of its `Found`."""

    def __init__(self, found: Found, result: SourceResult, episode: int, source: str) -> None:
        self.found, self.result, self.episode, self.source = found, result, episode, source

    def _where(self, t: float, camera: str) -> str:
        return f"episode {self.episode} t={t:.3f} s on {camera}"

    def vqa(self, t: float, camera: str, question: str, answer: str, size: tuple[int, int]) -> None:
        question = (question or "").strip()
        answer = answer or ""
        if not question or not answer.strip():
            self.result.note(
                f"{self._where(t, camera)}: a vqa pair with an empty question or answer; left out"
            )
            return
        try:
            payload = json.loads(answer)
        except json.JSONDecodeError:
            payload = None
        if (
            isinstance(payload, dict)
            and "detections" in payload
            and self._boxes(t, camera, question, payload, size)
        ):
            return
        if isinstance(payload, dict) and payload.get("label") == "contact" and "point" in payload:
            xy = _xy(payload["point"], size)
            if xy is not None:
                self.found.contacts.append(Contact(t=t, camera=camera, x=xy[0], y=xy[1], source=self.source))
                self.result.counts["contact points"] += 1
                return
        if (
            isinstance(payload, dict)
            and payload.get("label") == QA_LABEL
            and payload.get("attribute") == "answer"
            and isinstance(payload.get("value"), str)
            and payload["value"].strip()
        ):
            value = payload["value"]
            choices = payload.get("choices") or []
            valid = (
                isinstance(choices, list)
                and len(choices) >= 2
                and all(isinstance(c, str) and c for c in choices)
            )
            if valid and value in choices:
                self._qa(t, camera, question, value, "choice", list(choices))
                return
            self._qa(t, camera, question, value, "open", [])
            return
        self._qa(t, camera, question, answer.strip(), "open", [], "other answers (kept as open QAs)")

    def _qa(
        self,
        t: float,
        camera: str,
        question: str,
        answer: str,
        kind: str,
        choices: list[str],
        count: str = "QAs",
    ) -> None:
        self.found.qa.append(
            QA(
                t=t,
                camera=camera,
                question=question,
                answer=answer,
                kind=kind,
                choices=choices,
                source=self.source,
            )
        )
        self.result.counts[count] += 1

    def _boxes(
        self, t: float, camera: str, question: str, payload: dict[str, Any], size: tuple[int, int]
    ) -> bool:
        dets = payload["detections"]
        if not isinstance(dets, list):
            return False
        kind = box_kind(question)
        if kind is None:
            kind = "current"
            self.result.counts["boxes asked in other words (taken as current)"] += 1
        for i, det in enumerate(dets):
            xyxy = _xyxy(det, size) if isinstance(det, dict) else None
            if xyxy is None:
                self.result.note(
                    f"{self._where(t, camera)}: detections[{i}] = {det!r} has no usable bbox "
                    "(4 pixel values, bbox_format xyxy or xywh); left out"
                )
                continue
            label = str(det.get("label") or "").strip() or ("gripper" if kind == "gripper" else "object")
            self.found.boxes.append(
                Box(t=t, camera=camera, label=label, kind=kind, xyxy=xyxy, source=self.source)
            )
            self.result.counts[f"{kind} boxes"] += 1
        return True

    def trace(self, t: float, camera: str, answer: str, size: tuple[int, int], duration: float) -> None:
        try:
            payload = json.loads(answer or "")
        except json.JSONDecodeError:
            payload = None
        points = payload.get("points") if isinstance(payload, dict) else None
        if not isinstance(points, list) or not points:
            self.result.note(f"{self._where(t, camera)}: a trace answer without 'points'; left out")
            return
        stamps = payload.get("timestamps")
        if not isinstance(stamps, list) or len(stamps) != len(points) or not all(_number(s) for s in stamps):
            self.result.note(f"{self._where(t, camera)}: a trace without one timestamp per point; all at t")
            stamps = [t] * len(points)
        out = []
        for i, (s, p) in enumerate(zip(stamps, points, strict=True)):
            xy = _xy(p, size)
            if xy is None:
                self.result.note(f"{self._where(t, camera)}: trace point {i} = {p!r} is not [x, y]; left out")
                continue
            out.append((min(max(float(s), 0.0), duration), xy[0], xy[1]))
        if out:
            out.sort(key=lambda p: p[0])
            self.found.trajectories.append(Trajectory(camera=camera, points=out, source=self.source))
            self.result.counts["trajectories"] += 1
