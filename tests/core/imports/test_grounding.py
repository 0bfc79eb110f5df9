"""vqa and trace answers in the shapes lerobot's own pipeline writes, not only ours.

lerobot's VQA module asks its own questions (bbox, keypoint, count, attribute,
spatial; `VQA_ANSWER_SHAPES`): boxes come back as boxes, everything else as an
open QA whose answer is the stored text, so nothing is lost; pixels of a 320x240
camera come back normalized.
"""

from __future__ import annotations

import json

import pytest

from core.export.language_grounding import BOX_QUESTIONS, box_question
from core.imports.base import Found, SourceResult
from core.imports.grounding import Grounding, box_kind

SIZE = (240, 320)  # (height, width)
CAM = "observation.images.front"


def _grounding() -> tuple[Grounding, Found, SourceResult]:
    found, result = Found(), SourceResult("language_events")
    return Grounding(found, result, 3, "human:import"), found, result


@pytest.mark.parametrize("kind", list(BOX_QUESTIONS))
def test_the_box_kind_is_read_back_from_our_question(kind: str):
    assert box_kind(box_question(kind, ["red cup", "bowl"])) == kind
    assert box_kind(BOX_QUESTIONS[kind].format(labels="the cup")) == kind  # without the format hint
    assert box_kind("Where is the red cup?") is None


def test_lerobots_bbox_answer_is_current_boxes_in_normalized_coordinates():
    g, found, result = _grounding()
    answer = {
        "detections": [
            {"label": "red cup", "bbox_format": "xyxy", "bbox": [32, 24, 160, 120]},
            {"label": "bowl", "bbox_format": "xywh", "bbox": [0, 0, 320, 240]},
            {"label": "bad", "bbox_format": "xyxy", "bbox": [1, 2, 3]},
        ]
    }
    g.vqa(1.5, CAM, "Where is the red cup?", json.dumps(answer, sort_keys=True), SIZE)
    assert [(b.label, b.kind, b.xyxy, b.t, b.camera) for b in found.boxes] == [
        ("red cup", "current", (0.1, 0.1, 0.5, 0.5), 1.5, CAM),
        ("bowl", "current", (0.0, 0.0, 1.0, 1.0), 1.5, CAM),
    ]
    assert result.counts["boxes asked in other words (taken as current)"] == 1
    assert any("detections[2]" in n and "left out" in n for n in result.notes)


@pytest.mark.parametrize(
    "answer",
    [
        {"label": "cup", "count": 3, "note": "three cups"},
        {"subject": "cup", "relation": "left_of", "object": "bowl"},
        {"label": "cup", "attribute": "color", "value": "red"},
        {"label": "handle", "point_format": "xy", "point": [10, 20]},
    ],
)
def test_other_answer_shapes_are_open_qas_with_the_stored_text(answer: dict):
    g, found, result = _grounding()
    text = json.dumps(answer, sort_keys=True)
    g.vqa(2.0, CAM, "A question?", text, SIZE)
    assert [(q.question, q.answer, q.kind, q.t) for q in found.qa] == [("A question?", text, "open", 2.0)]
    assert result.counts["other answers (kept as open QAs)"] == 1 and not found.boxes


def test_our_qa_and_contact_shapes_and_plain_text():
    g, found, _ = _grounding()
    g.vqa(
        0.0,
        CAM,
        "Touching?",
        json.dumps({"label": "scene", "attribute": "answer", "value": "yes", "choices": ["yes", "no"]}),
        SIZE,
    )
    g.vqa(
        0.1,
        CAM,
        "Odd?",
        json.dumps({"label": "scene", "attribute": "answer", "value": "maybe", "choices": ["yes", "no"]}),
        SIZE,
    )
    g.vqa(0.2, CAM, "What now?", "the robot lifts the cup", SIZE)
    g.vqa(
        0.3,
        CAM,
        "Point at the contact.",
        json.dumps({"label": "contact", "point_format": "xy", "point": [160, 60]}),
        SIZE,
    )
    assert [(q.answer, q.kind, q.choices) for q in found.qa] == [
        ("yes", "choice", ["yes", "no"]),
        ("maybe", "open", []),  # an answer outside its choices is not a choice QA
        ("the robot lifts the cup", "open", []),
    ]
    assert [(c.t, c.x, c.y) for c in found.contacts] == [(0.3, 0.5, 0.25)]


def test_traces_with_and_without_timestamps():
    g, found, result = _grounding()
    answer = {
        "label": "gripper",
        "point_format": "xy",
        "points": [[0, 0], [320, 240]],
        "timestamps": [0.5, 0.25],
    }
    g.trace(0.5, CAM, json.dumps(answer), SIZE, duration=10.0)
    g.trace(1.0, CAM, json.dumps({"points": [[160, 120], [32, 24]]}), SIZE, duration=10.0)
    g.trace(1.0, CAM, json.dumps({"label": "gripper"}), SIZE, duration=10.0)
    assert [t.points for t in found.trajectories] == [
        [(0.25, 1.0, 1.0), (0.5, 0.0, 0.0)],  # sorted by time
        [(1.0, 0.5, 0.5), (1.0, 0.1, 0.1)],
    ]
    assert any("without one timestamp per point" in n for n in result.notes)
    assert any("without 'points'" in n for n in result.notes)
