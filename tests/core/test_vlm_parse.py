"""The parser on answers written the way Qwen and LLaVA models really answer."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.annotations import EpisodeAnnotation
from core.vlm.parse import extract_json, parse_answer, parse_time

SEG_META = {"family": "qwen2_5_vl", "duration": 8.4, "fps": 30.0, "window": (0.0, 8.4)}
# A 320x240 camera frame as Qwen2.5-VL sees it: 308x252 after smart_resize.
BOX_META = {"family": "qwen2_5_vl", "t": 1.0, "camera": "front", "kind": "current", "image_size": (308, 252)}


def seg(text: str, **meta):
    return parse_answer("segmentation", text, {**SEG_META, **meta}, source="m@1", confidence=0.7)


def check_cover(items, a: float, b: float) -> None:
    assert items[0].start == pytest.approx(a)
    assert items[-1].end == pytest.approx(b)
    for x, y in itertools.pairwise(items):
        assert x.end == pytest.approx(y.start)
        assert x.start < x.end


# ---------------------------------------------------------------- segmentation


def test_qwen_fenced_json_with_prose() -> None:
    text = (
        "Based on the frames, the robot performs the following subtasks:\n\n"
        "```json\n[\n"
        '    {"name": "reach", "start": 0.0, "end": 2.2},\n'
        '    {"name": "grasp", "start": 2.2, "end": 2.7},\n'
        '    {"name": "lift", "start": 2.7, "end": 3.6},\n'
        '    {"name": "move", "start": 3.6, "end": 6.1},\n'
        '    {"name": "place", "start": 6.1, "end": 7.0},\n'
        '    {"name": "release", "start": 7.0, "end": 7.5},\n'
        '    {"name": "retreat", "start": 7.5, "end": 8.4}\n'
        "]\n```\n\nThe robot successfully places the blue cylinder in the yellow bowl."
    )
    r = seg(text)
    assert r.ok, r.error
    assert [s.name for s in r.items] == ["reach", "grasp", "lift", "move", "place", "release", "retreat"]
    assert r.items[1].start == pytest.approx(2.2)
    check_cover(r.items, 0.0, 8.4)
    assert all(s.source == "m@1" and s.confidence == 0.7 for s in r.items)
    assert "ignored prose around the fenced JSON" in r.repairs
    # The cover is valid in the data model.
    EpisodeAnnotation(dataset="d", episode=0, duration=8.4, fps=30.0, segments=r.items)


def test_llava_python_list_trailing_comma_unsorted_overlapping() -> None:
    text = (
        "Here are the segments: [{'name': 'lift the cup', 'start': 3.0, 'end': 5.5}, "
        "{'name': 'reach for the cup', 'start': 0, 'end': 3.4}, "
        "{'name': 'put it down', 'start': 5.5, 'end': 9.9},]"
    )
    r = seg(text)
    assert r.ok, r.error
    assert [s.name for s in r.items] == ["reach for the cup", "lift the cup", "put it down"]
    check_cover(r.items, 0.0, 8.4)
    assert r.items[0].end == pytest.approx(3.2, abs=1 / 30)  # overlap split at its midpoint
    assert any("sorted" in x for x in r.repairs)
    assert any("Python literal" in x for x in r.repairs)


def test_truncated_segmentation_keeps_complete_spans() -> None:
    text = (
        '```json\n[\n  {"name": "reach", "start": 0.0, "end": 2.2},\n  {"name": "grasp", "start": 2.2, '
        '"end": 2.7},\n  {"name": "lift", "start": 2.7, "en'
    )
    r = seg(text)
    assert r.ok, r.error
    assert [s.name for s in r.items] == ["reach", "grasp"]
    check_cover(r.items, 0.0, 8.4)  # the last span is stretched to the end
    assert any("truncated" in x for x in r.repairs)


def test_time_strings_and_alternate_keys() -> None:
    text = (
        '{"subtasks": [{"action": "approach", "start_time": "0:00.00", "end_time": "0:01.50"}, '
        '{"action": "grasp", "time": "1.5s - 4s"}, {"action": "lift", "start_time": "4s", "end_time": "8.4s"}]}'
    )
    r = seg(text)
    assert r.ok, r.error
    assert [(s.name, round(s.start, 2), round(s.end, 2)) for s in r.items] == [
        ("approach", 0.0, 1.5),
        ("grasp", 1.5, 4.0),
        ("lift", 4.0, 8.4),
    ]


def test_window_clips_and_covers_the_window() -> None:
    text = '[{"name": "move", "start": 28.0, "end": 41.0}, {"name": "place", "start": 41.0, "end": 70.0}]'
    r = seg(text, duration=90.0, window=(30.0, 60.0))
    assert r.ok, r.error
    check_cover(r.items, 30.0, 60.0)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "I cannot determine the subtasks from these images.",
        '```json\n[{"name": "reac',
        '[{"name": "", "start": 0, "end": 1}]',
        '[{"name": "reach", "start": "soon", "end": "later"}]',
        '[{"name": "reach", "start": 20, "end": 30}]',  # entirely after the episode
        "ype�stotboxype�stotbox",
        "[[[[[[",
    ],
)
def test_garbage_is_unparseable_and_keeps_raw(text: str) -> None:
    r = seg(text)
    assert r.status == "unparseable"
    assert r.raw == text
    assert r.error.startswith("segmentation:")
    assert not r.items


# ---------------------------------------------------------------- boxes and points


def test_qwen25_absolute_pixel_box() -> None:
    text = '```json\n[\n\t{"bbox_2d": [31, 63, 77, 126], "label": "blue cylinder"}\n]\n```'
    r = parse_answer("box_current", text, BOX_META, source="m@1")
    assert r.ok, r.error
    (b,) = r.items
    assert b.label == "blue cylinder" and b.kind == "current" and b.camera == "front" and b.t == 1.0
    assert b.xyxy == pytest.approx((31 / 308, 63 / 252, 77 / 308, 126 / 252))


def test_box_corners_swapped_and_out_of_range_are_repaired() -> None:
    text = '[{"bbox_2d": [200, 300, 20, 40], "label": "cup"}]'
    r = parse_answer("box_current", text, BOX_META)
    assert r.ok, r.error
    (b,) = r.items
    x1, y1, x2, y2 = b.xyxy
    assert (x1, x2) == pytest.approx((20 / 308, 200 / 308))
    assert (y1, y2) == pytest.approx((40 / 252, 1.0))
    assert "clipped coordinates outside the image" in r.repairs
    assert "reordered box corners" in r.repairs


def test_llava_normalized_box_and_bare_list() -> None:
    meta = {**BOX_META, "family": "llava_onevision", "image_size": (320, 240)}
    r = parse_answer("box_final", "The bowl is at [0.52, 0.31, 0.78, 0.6].", {**meta, "kind": "final"})
    assert r.ok, r.error
    assert r.items[0].xyxy == pytest.approx((0.52, 0.31, 0.78, 0.6))
    assert r.items[0].kind == "final" and r.items[0].label == "object"


def test_qwen_asked_for_pixels_answers_normalized() -> None:
    r = parse_answer("box_current", '[{"bbox_2d": [0.1, 0.25, 0.3, 0.5], "label": "cube"}]', BOX_META)
    assert r.ok
    assert r.items[0].xyxy == pytest.approx((0.1, 0.25, 0.3, 0.5))
    assert any("normalized" in x for x in r.repairs)


def test_qwen2_box_tokens_on_the_1000_grid() -> None:
    text = "<|object_ref_start|>the red cube<|object_ref_end|><|box_start|>(100,250),(400,500)<|box_end|>"
    r = parse_answer("box_contact", text, {**BOX_META, "family": "qwen2_vl", "kind": "contact"})
    assert r.ok, r.error
    assert r.items[0].label == "the red cube"
    assert r.items[0].xyxy == pytest.approx((0.1, 0.25, 0.4, 0.5))


def test_qwen3_grid_box() -> None:
    r = parse_answer(
        "gripper", '[{"bbox_2d": [500, 0, 1000, 250]}]', {**BOX_META, "family": "qwen3_vl", "kind": "gripper"}
    )
    assert r.ok
    assert r.items[0].label == "gripper"
    assert r.items[0].xyxy == pytest.approx((0.5, 0.0, 1.0, 0.25))


def test_several_objects_one_per_line() -> None:
    text = '{"bbox_2d": [10, 10, 50, 50], "label": "a"}\n{"bbox_2d": [60, 60, 90, 90], "label": "b"}'
    r = parse_answer("box_current", text, BOX_META)
    assert r.ok
    assert [b.label for b in r.items] == ["a", "b"]


def test_trajectory_points_without_times_take_the_frame_times() -> None:
    meta = {**BOX_META, "times": [0.0, 2.0, 4.0], "duration": 8.4}
    r = parse_answer("trajectory", "```json\n[[154, 126], [100, 80], [30, 250],]\n```", meta)
    assert r.ok, r.error
    (tr,) = r.items
    assert [p[0] for p in tr.points] == [0.0, 2.0, 4.0]
    assert tr.points[0][1:] == pytest.approx((0.5, 0.5))


def test_trajectory_with_times_unsorted() -> None:
    meta = {**BOX_META, "times": [0.0, 4.0], "duration": 8.4}
    text = '[{"t": 4.0, "point_2d": [30, 30]}, {"t": 0.0, "point_2d": [154, 126]}]'
    r = parse_answer("trajectory_from_start", text, meta)
    assert r.ok
    assert [p[0] for p in r.items[0].points] == [0.0, 4.0]
    assert "sorted the trajectory by time" in r.repairs


def test_contact_point() -> None:
    r = parse_answer("contact_point", '[{"point_2d": [154, 63], "label": "contact"}]', BOX_META)
    assert r.ok
    (c,) = r.items
    assert (c.x, c.y, c.t, c.camera) == pytest.approx((0.5, 0.25, 1.0, "front"))


# ---------------------------------------------------------------- QA and dialogue


def test_qa_choice_letter_answer_is_mapped() -> None:
    meta = {"t": 2.0, "camera": "front"}
    text = (
        'Sure! Here are the questions:\n[{"question": "What color is the object in the gripper?", '
        '"choices": {"A": "red", "B": "blue", "C": "green"}, "answer": "B"}, '
        '{"question": "Is the gripper open?", "choices": ["yes", "no"], "answer": "maybe"}]'
    )
    r = parse_answer("qa_choice", text, meta)
    assert r.ok, r.error
    (q,) = r.items
    assert q.answer == "blue" and q.choices == ["red", "blue", "green"] and q.kind == "choice"
    assert any("dropped 1 question" in x for x in r.repairs)


def test_qa_open() -> None:
    r = parse_answer(
        "qa_open",
        '[{"question": "What is the robot doing?", "answer": "lifting the cup"}]',
        {"t": 0.5, "camera": "top"},
    )
    assert r.ok and r.items[0].answer == "lifting the cup" and r.items[0].kind == "open"


def test_dialogue_normalizes_types() -> None:
    meta = {"t": 2.2, "camera": "front", "skill": "grasp"}
    text = (
        '```json\n{"user_prompt": "Grab the blue one, not the purple one.", "robot_utterance": "Got it, '
        'grabbing the blue cylinder.", "scenario_type": "Specific Object", "response_type": "acknowledgement"}\n```'
    )
    r = parse_answer("dialogue", text, meta)
    assert r.ok, r.error
    (d,) = r.items
    assert (d.skill, d.scenario_type, d.response_type) == ("grasp", "specific_object", "acknowledgment")


def test_dialogue_unknown_type_falls_back_with_a_note() -> None:
    meta = {"t": 0.0, "camera": "front", "skill": "reach"}
    r = parse_answer(
        "dialogue", '{"user_prompt": "hi", "robot_utterance": "hello", "scenario_type": "chitchat"}', meta
    )
    assert r.ok
    assert r.items[0].scenario_type == "specific_object"
    assert any("chitchat" in x for x in r.repairs)


def test_describe_is_text() -> None:
    r = parse_answer("describe", "  The robot reaches for the cup.<|im_end|>", {})
    assert r.ok and r.text == "The robot reaches for the cup."
    assert parse_answer("describe", "<|im_end|>", {}).status == "unparseable"


# ---------------------------------------------------------------- pieces


def test_extract_json_repairs() -> None:
    assert extract_json('{"a": [1, 2,], }')[0] == {"a": [1, 2]}
    value, repairs = extract_json('{"a": 1, "b": [1, 2, 3')
    assert value == {"a": 1, "b": [1, 2]}
    assert any("truncated" in r for r in repairs)
    assert extract_json("It's here: {'ok': True, 'v': None}")[0] == {"ok": True, "v": None}


def test_extract_json_repairs_missing_commas_and_unquoted_keys() -> None:
    value, repairs = extract_json(
        '[{"bbox_2d": [10, 10, 50, 50] "label": "cup"}, {label: "bowl", "bbox_2d": [1, 2, 3, 4]}]'
    )
    assert value == [
        {"bbox_2d": [10, 10, 50, 50], "label": "cup"},
        {"label": "bowl", "bbox_2d": [1, 2, 3, 4]},
    ]
    assert any("repaired malformed JSON" in r for r in repairs)
    # A Python literal is read exactly, brackets inside its single-quoted strings included.
    value, repairs = extract_json("[{'question': 'Is it open[?', 'answer': 'yes'}]")
    assert value == [{"question": "Is it open[?", "answer": "yes"}]
    assert any("Python literal" in r for r in repairs)


@pytest.mark.parametrize(
    ("text", "secs"), [(1.5, 1.5), ("2", 2.0), ("2.25s", 2.25), ("0:03.5", 3.5), ("01:02:03", 3723.0)]
)
def test_parse_time(text, secs) -> None:
    assert parse_time(text) == pytest.approx(secs)


@settings(max_examples=150, deadline=None)
@given(st.text(max_size=200))
def test_any_text_gives_a_result_never_an_exception(text: str) -> None:
    for task in ("segmentation", "box_current", "trajectory", "qa_choice", "dialogue"):
        meta = {**SEG_META, **BOX_META, "times": [0.0, 1.0], "skill": "reach"}
        r = parse_answer(task, text, meta)
        assert r.status in ("ok", "unparseable")
        assert r.raw == text


@settings(max_examples=100, deadline=None)
@given(
    st.lists(
        st.tuples(st.sampled_from(["reach", "grasp", "lift"]), st.floats(-5, 15), st.floats(-5, 15)),
        min_size=1,
        max_size=8,
    )
)
def test_any_spans_become_a_valid_cover_or_unparseable(spans) -> None:
    import json

    text = json.dumps([{"name": n, "start": s, "end": e} for n, s, e in spans])
    r = seg(text)
    if r.ok:
        check_cover(r.items, 0.0, 8.4)
        EpisodeAnnotation(dataset="d", episode=0, duration=8.4, fps=30.0, segments=r.items)
