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

import json
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from core.annotations import QA, Box, EpisodeAnnotation, box_tracks, interpolate_box
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


def _json(payload: dict[str, Any]) -> str:
    return json.dumps(payload, sort_keys=True, ensure_ascii=False)


def qa_answer_json(answer: str, choices: list[str]) -> str:
    payload: dict[str, Any] = {"label": QA_LABEL, "attribute": "answer", "value": answer}
    if choices:
        payload["choices"] = list(choices)
    return _json(payload)


def pixels(values: tuple[float, ...] | list[float], size: tuple[int, int]) -> list[int]:
    """Normalized x, y values as whole pixels of a (height, width) camera frame."""
    h, w = size
    return [round(v * (w if i % 2 == 0 else h)) for i, v in enumerate(values)]


def box_answer(boxes: list[tuple[str, tuple[float, float, float, float]]], size: tuple[int, int]) -> str:
    dets = [{"label": label, "bbox_format": "xyxy", "bbox": pixels(xyxy, size)} for label, xyxy in boxes]
    return _json({"detections": dets})


def box_question(kind: str, labels: list[str]) -> str:
    names = ", ".join(dict.fromkeys(labels))
    return BOX_QUESTIONS[kind].format(labels=f"the {names}") + BOX_FORMAT


def point_answer(x: float, y: float, size: tuple[int, int]) -> str:
    return _json({"label": "contact", "point_format": "xy", "point": pixels((x, y), size)})


def trace_answer(points: list[tuple[float, float, float]], size: tuple[int, int]) -> str:
    return _json(
        {
            "label": "gripper",
            "point_format": "xy",
            "points": [pixels((x, y), size) for _, x, y in points],
            "timestamps": [round(t, 4) for t, _, _ in points],
        }
    )


@dataclass
class _Item:
    """One question to place: where it wants to be and what it says there."""

    style: str
    camera: str
    frame: int
    # Frames it may move to: |k - frame| <= reach and lo < k < hi (besides its own frame).
    reach: int
    lo: int
    hi: int
    # The (question, answer) at frame k.
    text: Callable[[int], tuple[str, str]]
    what: str


def _order(frame: int, reach: int, n: int) -> Iterator[int]:
    """frame, frame+1, frame-1, frame+2, ... within reach and the episode."""
    yield frame
    for d in range(1, reach + 1):
        for k in (frame + d, frame - d):
            if 0 <= k < n:
                yield k


def _box_items(ann: EpisodeAnnotation, n: int, fps: float, sizes: dict[str, tuple[int, int]]) -> list[_Item]:
    """One item per (camera, kind, keyframe): every label with a keyframe on that frame."""
    tracks = box_tracks(ann.boxes)
    groups: dict[tuple[str, str], dict[int, list[Box]]] = {}
    for b in ann.boxes:
        groups.setdefault((b.camera, b.kind), {}).setdefault(nearest_frame(b.t, fps, n), []).append(b)
    reach = max(1, math.floor(TRACK_WINDOW_S * fps))
    items = []
    for (cam, kind), by_frame in groups.items():
        frames = sorted(by_frame)
        for j, k in enumerate(frames):
            labels = sorted({b.label for b in by_frame[k]})
            lo = frames[j - 1] if j > 0 else -1
            hi = frames[j + 1] if j + 1 < len(frames) else n

            def text(
                kk: int, cam: str = cam, kind: str = kind, labels: list[str] = labels
            ) -> tuple[str, str]:
                t = kk / fps
                boxes = [(label, interpolate_box(tracks[(cam, label, kind)], t)[0]) for label in labels]  # type: ignore[index]
                return box_question(kind, labels), box_answer(boxes, sizes[cam])

            what = f"{kind} box{'es' if len(labels) > 1 else ''} of {', '.join(labels)} at t={k / fps:.3f} s"
            items.append(_Item("vqa", cam, k, reach, lo, hi, text, what))
    items.sort(key=lambda it: (it.frame, it.camera))
    return items


def _instant(style: str, camera: str, frame: int, fps: float, n: int, text: Callable, what: str) -> _Item:
    return _Item(style, camera, frame, max(1, math.floor(INSTANT_WINDOW_S * fps)), -1, n, text, what)


def grounding_events(
    ann: EpisodeAnnotation, n: int, fps: float, sizes: dict[str, tuple[int, int]], warn: Warn
) -> list[tuple[int, Row]]:
    """The vqa and trace event rows of one episode, (frame, row), in placing order."""
    items: list[_Item] = []
    for i, qa in enumerate(ann.qa):
        k = nearest_frame(qa.t, fps, n)

        def qa_text(_k: int, qa: QA = qa) -> tuple[str, str]:
            return qa.question, qa_answer_json(qa.answer, qa.choices)

        items.append(
            _instant("vqa", qa.camera, k, fps, n, qa_text, f"qa[{i}] '{qa.question}' at t={qa.t:.3f} s")
        )
    for i, c in enumerate(ann.contacts):
        k = nearest_frame(c.t, fps, n)
        size = sizes[c.camera]
        items.append(
            _instant(
                "vqa",
                c.camera,
                k,
                fps,
                n,
                lambda _k, c=c, size=size: (CONTACT_QUESTION, point_answer(c.x, c.y, size)),
                f"contacts[{i}] at t={c.t:.3f} s",
            )
        )
    for i, tr in enumerate(ann.trajectories):
        if not tr.points:
            continue
        k = nearest_frame(tr.points[0][0], fps, n)
        size = sizes[tr.camera]
        items.append(
            _instant(
                "trace",
                tr.camera,
                k,
                fps,
                n,
                lambda _k, tr=tr, size=size: (TRACE_QUESTION, trace_answer(list(tr.points), size)),
                f"trajectories[{i}] from t={tr.points[0][0]:.3f} s",
            )
        )
    items += _box_items(ann, n, fps, sizes)

    taken: set[tuple[int, str]] = set()
    out: list[tuple[int, Row]] = []
    for it in items:
        k = next(
            (
                kk
                for kk in _order(it.frame, it.reach, n)
                if (kk, it.style) not in taken and (kk == it.frame or it.lo < kk < it.hi)
            ),
            None,
        )
        if k is None:
            warn(
                f"episode {ann.episode}: {it.what} on {it.camera}: every frame within "
                f"{it.reach / fps:.2f} s already has a {it.style} question (lerobot resolves one per frame); "
                "it is left out"
            )
            continue
        taken.add((k, it.style))
        question, answer = it.text(k)
        out.append((k, ("user", question, it.style, it.camera, None)))
        out.append((k, ("assistant", answer, it.style, it.camera, None)))
    return out
