"""The data model rejects bad values with messages naming the field, and its helpers are exact."""

from __future__ import annotations

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.annotations import (
    QA,
    Box,
    Contact,
    DialogueTurn,
    EpisodeAnnotation,
    Segment,
    Trajectory,
    annotation_from_json,
    annotation_to_json,
    box_tracks,
    frame_at,
    interpolate_box,
    interpolate_point,
    repair_cover,
    replace,
    segment_at,
    segment_index_at,
)
from core.errors import AnnotationError


def ann(**kw) -> EpisodeAnnotation:
    base = dict(dataset="demo", episode=0, duration=3.0, fps=30.0)
    return EpisodeAnnotation(**{**base, **kw})


def cover(*bounds_and_names) -> list[Segment]:
    names, bounds = bounds_and_names[1::2], bounds_and_names[0::2]
    return [Segment(name=n, start=a, end=b) for n, a, b in zip(names, bounds, bounds[1:], strict=False)]


@pytest.mark.parametrize(
    ("make", "field"),
    [
        (lambda: Segment(name="reach", start=2.0, end=1.0), "Segment.end"),
        (lambda: Segment(name="", start=0.0, end=1.0), "Segment.name"),
        (lambda: Segment(name="x", start=-1.0, end=1.0), "Segment.start"),
        (lambda: Segment(name="x", start=0.0, end=1.0, confidence=1.5), "Segment.confidence"),
        (
            lambda: Box(t=0, camera="c", label="cube", kind="current", xyxy=(0.1, 0.1, 1.2, 0.5)),
            "Box.xyxy[2]",
        ),
        (lambda: Box(t=0, camera="c", label="cube", kind="current", xyxy=(0.5, 0.1, 0.2, 0.5)), "Box.xyxy"),
        (lambda: Box(t=0, camera="c", label="cube", kind="middle", xyxy=(0, 0, 1, 1)), "Box.kind"),
        (lambda: Contact(t=0, camera="c", x=-0.1, y=0.5), "Contact.x"),
        (lambda: Trajectory(camera="c", points=[(1.0, 0.1, 0.1), (0.5, 0.2, 0.2)]), "Trajectory.points[1].t"),
        (
            lambda: DialogueTurn(t=0, skill="grasp", user_prompt="a", robot_utterance="b", scenario_type="x"),
            "DialogueTurn.scenario_type",
        ),
        (
            lambda: DialogueTurn(t=0, skill="grasp", user_prompt="a", robot_utterance="b", response_type="y"),
            "DialogueTurn.response_type",
        ),
        (
            lambda: QA(t=0, camera="c", question="q?", answer="z", kind="choice", choices=["a", "b"]),
            "QA.answer",
        ),
        (lambda: ann(duration=-1.0), "EpisodeAnnotation.duration"),
        (lambda: ann(review="done"), "EpisodeAnnotation.review"),
        (lambda: ann(segments=cover(0.0, "a", 1.0, "b", 2.0)), "segments[1].end"),
        (
            lambda: ann(
                segments=[Segment(name="a", start=0, end=1.0), Segment(name="b", start=1.5, end=3.0)]
            ),
            "segments[1].start",
        ),
        (lambda: ann(segments=[Segment(name="a", start=0.5, end=3.0)]), "segments[0].start"),
        (
            lambda: ann(boxes=[Box(t=9.0, camera="c", label="x", kind="final", xyxy=(0, 0, 1, 1))]),
            "boxes[0].t",
        ),
    ],
)
def test_invalid_values_name_the_field(make, field):
    with pytest.raises(AnnotationError, match=field.replace("[", r"\[").replace("]", r"\]")):
        make()


def test_decoding_validates_and_names_the_path():
    good = ann(segments=cover(0.0, "reach", 1.0, "grasp", 3.0))
    data = annotation_to_json(good)
    assert annotation_from_json(data) == good
    bad = data.replace(b'"name":"grasp"', b'"name":""')
    with pytest.raises(AnnotationError, match=r"Segment.name.*\$\.segments\[1\]"):
        annotation_from_json(bad, where="answer.json")
    with pytest.raises(AnnotationError, match=r"answer\.json"):
        annotation_from_json(b"{not json", where="answer.json")
    wrong_kind = msgspec.json.encode(
        {
            "dataset": "d",
            "episode": 0,
            "duration": 1,
            "fps": 30,
            "boxes": [{"t": 0, "camera": "c", "label": "l", "kind": "gripperz", "xyxy": [0, 0, 1, 1]}],
        }
    )
    with pytest.raises(AnnotationError, match=r"boxes\[0\]"):
        annotation_from_json(wrong_kind)


def test_replace_revalidates():
    a = ann(segments=cover(0.0, "reach", 3.0))
    with pytest.raises(AnnotationError, match="uncertainty"):
        replace(a, uncertainty=2.0)
    assert replace(a, review="accepted").review == "accepted"


def test_segment_at_is_half_open_and_closes_at_the_end():
    segs = cover(0.0, "reach", 1.0, "grasp", 2.0, "lift", 3.0)
    assert segment_at(segs, 0.0).name == "reach"
    assert segment_at(segs, 0.999).name == "reach"
    assert segment_at(segs, 1.0).name == "grasp"
    assert segment_at(segs, 2.0).name == "lift"
    assert segment_at(segs, 3.0).name == "lift"  # the episode's end belongs to the last segment
    assert segment_at(segs, 3.5) is None
    assert segment_index_at([], 0.0) is None
    # Every frame of a 90-frame episode gets exactly the segment with start <= t < end.
    for i in range(90):
        t = i / 30
        s = segment_at(segs, t)
        assert s.start <= t + 1e-9 and (t < s.end or s is segs[-1])


def test_frame_at_is_the_frame_shown():
    assert frame_at(0.0, 30) == 0
    assert frame_at(1 / 30, 30) == 1
    assert frame_at(1 / 30 - 1e-4, 30) == 0
    assert frame_at(10.0, 30, n_frames=90) == 89


def test_repair_cover_fixes_overlaps_gaps_and_order():
    messy = [
        Segment(name="lift", start=1.9, end=2.6),
        Segment(name="reach", start=0.2, end=1.1),
        Segment(name="grasp", start=1.0, end=1.7),
        Segment(name="ghost", start=5.0, end=6.0),  # outside the episode: dropped
    ]
    fixed = repair_cover(messy, 3.0, fps=30)
    assert [s.name for s in fixed] == ["reach", "grasp", "lift"]
    assert fixed[0].start == 0.0 and fixed[-1].end == 3.0
    assert fixed[1].start == pytest.approx(1.05, abs=1 / 60)
    assert fixed[2].start == pytest.approx(1.8, abs=1 / 60)
    ann(segments=fixed)  # a valid cover


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(st.floats(-1, 12, allow_nan=False), st.floats(0.01, 6, allow_nan=False)),
        min_size=0,
        max_size=12,
    ),
    st.floats(0.5, 10),
    st.sampled_from([None, 10.0, 30.0]),
)
def test_repair_cover_always_yields_a_valid_cover(spans, duration, fps):
    segs = [Segment(name=f"s{i}", start=max(0.0, a), end=max(0.0, a) + d) for i, (a, d) in enumerate(spans)]
    fixed = repair_cover(segs, duration, fps=fps)
    ann(duration=duration, segments=fixed)  # validates ordering and cover
    for s in fixed:
        assert s.end > s.start


def test_box_interpolation_between_keyframes():
    boxes = [
        Box(t=2.0, camera="front", label="cube", kind="current", xyxy=(0.2, 0.2, 0.4, 0.4)),
        Box(t=0.0, camera="front", label="cube", kind="current", xyxy=(0.0, 0.0, 0.2, 0.2)),
        Box(t=1.0, camera="top", label="cube", kind="current", xyxy=(0.5, 0.5, 0.6, 0.6)),
    ]
    tracks = box_tracks(boxes)
    front = tracks[("front", "cube", "current")]
    assert [b.t for b in front] == [0.0, 2.0]
    xyxy, key = interpolate_box(front, 1.0)
    assert not key and xyxy == pytest.approx((0.1, 0.1, 0.3, 0.3))
    assert interpolate_box(front, 2.0) == ((0.2, 0.2, 0.4, 0.4), True)
    assert interpolate_box(front, 5.0) == ((0.2, 0.2, 0.4, 0.4), False)  # held after the last keyframe
    assert interpolate_box([], 1.0) is None
    assert interpolate_point([(0.0, 0.0, 0.0), (1.0, 1.0, 0.5)], 0.5) == pytest.approx((0.5, 0.25))
