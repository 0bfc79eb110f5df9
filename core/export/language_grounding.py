"""The image-grounded rows of `lerobot-language`: QAs, boxes, contact points and traces.

lerobot 0.6 keeps grounded language as event rows tagged with their camera:

- `vqa`: a (user question, assistant answer) pair whose answer is JSON of one
  of the shapes its steerable pipeline validates
  (`lerobot.annotations.steerable_pipeline.validator.VQA_ANSWER_SHAPES`). Boxes
  of every kind are `{"detections": [{"label", "bbox_format": "xyxy", "bbox"}]}`,
  contact points `{"label": "contact", "point_format": "xy", "point"}`, QAs the
  `attribute` shape `{"label": "scene", "attribute": "answer", "value"}` (plus
  `choices`). Coordinates are pixels of the camera frame (the size in
  info.json), as lerobot's VQA prompt asks; the box kind is in the question
  (`BOX_QUESTIONS`), so the payload keeps lerobot's shape exactly.
- `trace`: the gripper's pixel trajectory, a (user, assistant) pair on the frame
  the trajectory starts, the answer `{"label": "gripper", "point_format": "xy",
  "points": [[x, y], ...], "timestamps": [s, ...]}` (seconds from the episode
  start; lerobot defines the style, not its payload).

lerobot's resolvers want one row per selector on a frame (`emitted_at` raises
on two, and the default `${vqa}` binding has no camera), so each frame holds
at most one vqa pair and one trace pair over all cameras. Items are placed in
order, QAs first, then contact points, traces and boxes; one whose frame is
taken moves to the nearest free frame within `INSTANT_WINDOW_S` (QAs,
contacts, traces: things of a moment) or `TRACK_WINDOW_S` (boxes, whose value
at the new frame is read from their track and never crosses a neighbouring
keyframe). An item with no free frame there is left out with a warning.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import msgspec

from core.annotations import TIME_EPS, Box, EpisodeAnnotation, box_tracks
from core.export.base import nearest_frame

QA_LABEL = "scene"
# How far (seconds) an item may move off its frame when another question has it.
INSTANT_WINDOW_S = 0.1
TRACK_WINDOW_S = 0.5
# The question of each box kind (the kind travels here, not in lerobot's answer shape).
BOX_QUESTIONS = {
    "current": "Detect {labels} in this image.",
    "final": "Where should the object end up? Detect its target: {labels}.",
    "contact": "The gripper is touching an object. Detect it: {labels}.",
    "gripper": "Detect the robot's gripper in this image.",
}
BOX_FORMAT = " Give each bounding box as [x1, y1, x2, y2] in pixels."
CONTACT_QUESTION = "Point at where the gripper touches the object, as [x, y] in pixels."
TRACE_QUESTION = "Trace the path the robot's gripper takes in this image from now on, as [x, y] pixels."

# (role, content, style, camera, tool_calls), as lerobot_language writes them.
Row = tuple[str, str | None, str | None, str | None, list[str] | None]
Warn = Callable[[str], None]


_encoder = msgspec.json.Encoder(order="sorted")


def _json(payload: dict[str, Any]) -> str:
    """Compact JSON with sorted keys (lerobot's VQA module sorts them too)."""
    return _encoder.encode(payload).decode()


def qa_answer_json(answer: str, choices: list[str]) -> str:
    payload: dict[str, Any] = {"label": QA_LABEL, "attribute": "answer", "value": answer}
    if choices:
        payload["choices"] = list(choices)
    return _json(payload)


def pixels(values: tuple[float, ...] | list[float], size: tuple[int, int]) -> list[int]:
    """Normalized x, y values as whole pixels of a (height, width) camera frame."""
    h, w = size
    if len(values) == 4:
        x1, y1, x2, y2 = values
        return [round(x1 * w), round(y1 * h), round(x2 * w), round(y2 * h)]
    return [round(values[0] * w), round(values[1] * h)]


def box_answer(boxes: list[tuple[str, tuple[float, float, float, float]]], size: tuple[int, int]) -> str:
    dets = [{"label": label, "bbox_format": "xyxy", "bbox": pixels(xyxy, size)} for label, xyxy in boxes]
    return _json({"detections": dets})


def box_question(kind: str, labels: list[str]) -> str:
    names = ", ".join(dict.fromkeys(labels))
    return BOX_QUESTIONS[kind].format(labels=f"the {names}") + BOX_FORMAT


def point_answer(x: float, y: float, size: tuple[int, int]) -> str:
    return _json({"label": "contact", "point_format": "xy", "point": pixels((x, y), size)})


def trace_answer(points: Sequence[tuple[float, float, float]], size: tuple[int, int]) -> str:
    return _json(
        {
            "label": "gripper",
            "point_format": "xy",
            "points": [pixels((x, y), size) for _, x, y in points],
            "timestamps": [round(t, 4) for t, _, _ in points],
        }
    )


class _Slots:
    """Which frames already hold a question of a style; finds the nearest free one."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.taken: set[tuple[int, str]] = set()

    def place(self, style: str, frame: int, reach: int, lo: int = -1, hi: int | None = None) -> int | None:
        """`frame` if free, else the nearest free k with |k - frame| <= reach and lo < k < hi."""
        taken = self.taken
        if (frame, style) not in taken:
            taken.add((frame, style))
            return frame
        hi = self.n if hi is None else min(hi, self.n)
        lo = max(lo, -1)
        for d in range(1, reach + 1):
            for k in (frame + d, frame - d):
                if lo < k < hi and (k, style) not in taken:
                    taken.add((k, style))
                    return k
        return None


def _left_out(ann: EpisodeAnnotation, what: str, camera: str, style: str, reach: int, fps: float) -> str:
    return (
        f"episode {ann.episode}: {what} on {camera}: every frame within {reach / fps:.2f} s already has a "
        f"{style} question (lerobot resolves one per frame); it is left out"
    )


class _Tracks:
    """The episode's box tracks (keyframes by camera, label and kind, in time order), grouped once
    and only when a box must be read off its keyframe."""

    def __init__(self, boxes: list[Box]) -> None:
        self.boxes = boxes
        self.where: dict[int, tuple[list[Box], int]] | None = None

    def at(self, box: Box, t: float) -> tuple[float, float, float, float]:
        """The box's track at time t, t between this keyframe and its neighbour (as interpolate_box)."""
        if self.where is None:
            self.where = {
                id(b): (track, i) for track in box_tracks(self.boxes).values() for i, b in enumerate(track)
            }
        track, i = self.where[id(box)]
        j = i + 1 if t > box.t else i - 1
        if not 0 <= j < len(track) or track[j].t == box.t:
            return box.xyxy
        a, b = (box, track[j]) if j > i else (track[j], box)
        w = (t - a.t) / (b.t - a.t)
        return tuple(pa + w * (pb - pa) for pa, pb in zip(a.xyxy, b.xyxy, strict=True))  # type: ignore[return-value]


def grounding_events(
    ann: EpisodeAnnotation, n: int, fps: float, sizes: dict[str, tuple[int, int]], warn: Warn
) -> list[tuple[int, Row]]:
    """The vqa and trace event rows of one episode, (frame, row), in placing order."""
    slots = _Slots(n)
    instant = max(1, math.floor(INSTANT_WINDOW_S * fps))
    track = max(1, math.floor(TRACK_WINDOW_S * fps))
    out: list[tuple[int, Row]] = []

    def emit(k: int, style: str, camera: str, question: str, answer: str) -> None:
        out.append((k, ("user", question, style, camera, None)))
        out.append((k, ("assistant", answer, style, camera, None)))

    for i, qa in enumerate(ann.qa):
        k = slots.place("vqa", nearest_frame(qa.t, fps, n), instant)
        if k is None:
            warn(_left_out(ann, f"qa[{i}] '{qa.question}' at t={qa.t:.3f} s", qa.camera, "vqa", instant, fps))
            continue
        emit(k, "vqa", qa.camera, qa.question, qa_answer_json(qa.answer, qa.choices))
    for i, c in enumerate(ann.contacts):
        k = slots.place("vqa", nearest_frame(c.t, fps, n), instant)
        if k is None:
            warn(_left_out(ann, f"contacts[{i}] at t={c.t:.3f} s", c.camera, "vqa", instant, fps))
            continue
        emit(k, "vqa", c.camera, CONTACT_QUESTION, point_answer(c.x, c.y, sizes[c.camera]))
    for i, tr in enumerate(ann.trajectories):
        if not tr.points:
            continue
        k = slots.place("trace", nearest_frame(tr.points[0][0], fps, n), instant)
        if k is None:
            what = f"trajectories[{i}] from t={tr.points[0][0]:.3f} s"
            warn(_left_out(ann, what, tr.camera, "trace", instant, fps))
            continue
        emit(k, "trace", tr.camera, TRACE_QUESTION, trace_answer(tr.points, sizes[tr.camera]))

    # Boxes: one question per (camera, kind) keyframe, placed in time order, never past a neighbour.
    groups: dict[tuple[str, str], dict[int, list[Box]]] = {}
    for b in ann.boxes:
        groups.setdefault((b.camera, b.kind), {}).setdefault(nearest_frame(b.t, fps, n), []).append(b)
    queue = []
    for (cam, kind), by_frame in groups.items():
        frames = sorted(by_frame)
        for j, k in enumerate(frames):
            lo = frames[j - 1] if j else -1
            hi = frames[j + 1] if j + 1 < len(frames) else n
            queue.append((k, cam, kind, lo, hi, by_frame[k]))
    queue.sort(key=lambda q: (q[0], q[1]))
    tracks = _Tracks(ann.boxes)
    questions: dict[tuple[str, tuple[str, ...]], str] = {}
    for k, cam, kind, lo, hi, boxes in queue:
        kk = slots.place("vqa", k, track, lo, hi)
        boxes = sorted(boxes, key=lambda b: b.label) if len(boxes) > 1 else boxes
        labels = tuple(dict.fromkeys(b.label for b in boxes))
        if kk is None:
            what = f"{kind} box{'es' if len(labels) > 1 else ''} of {', '.join(labels)} at t={k / fps:.3f} s"
            warn(_left_out(ann, what, cam, "vqa", track, fps))
            continue
        t = kk / fps
        values = [(b.label, b.xyxy if abs(b.t - t) <= TIME_EPS else tracks.at(b, t)) for b in boxes]
        question = questions.get((kind, labels))
        if question is None:
            question = questions[(kind, labels)] = box_question(kind, list(labels))
        emit(kk, "vqa", cam, question, box_answer(values, sizes[cam]))
    return out
