"""fusion.symbolic_labels: the person's names for the episode's own zero-shot spans, read off the
exemplar by matching the two zero-shot name sequences."""

from __future__ import annotations

from backend.engines.kinematic.fusion import symbolic_labels
from core.annotations import Segment

FPS = 10.0


def person(*cuts: tuple[str, int], end: int) -> list[Segment]:
    out = []
    for k, (name, a) in enumerate(cuts):
        b = cuts[k + 1][1] if k + 1 < len(cuts) else end
        out.append(Segment(name=name, start=a / FPS, end=b / FPS))
    return out


def spans(*cuts: tuple[str, int], end: int) -> list[tuple[int, int, str]]:
    return [(a, cuts[k + 1][1] if k + 1 < len(cuts) else end, z) for k, (z, a) in enumerate(cuts)]


def test_matching_spans_take_the_persons_names():
    ex = spans(("idle", 0), ("reach_cube", 10), ("grasp_cube", 40), ("lift_cube", 60), end=100)
    who = person(("wait", 0), ("approach", 10), ("pinch", 40), ("raise", 60), end=100)
    tgt = spans(("idle", 0), ("reach_cube", 15), ("grasp_cube", 50), ("lift_cube", 70), end=120)
    assert symbolic_labels(ex, who, tgt, FPS) == {0: "wait", 15: "approach", 50: "pinch", 70: "raise"}


def test_a_span_the_person_cut_in_two_names_the_finer_cuts_of_the_episode_in_order():
    # The exemplar's own analysis missed the start of the move (a hesitation that carried on);
    # the person cut there. This episode's analysis cuts it (a change of course).
    ex = spans(("grasp_cube", 0), ("lift_cube", 30), ("place_cube", 100), ("release_cube", 130), end=150)
    who = person(("grasp", 0), ("lift", 30), ("move_to_bowl", 70), ("place", 100), ("release", 130), end=150)
    tgt = spans(
        ("grasp_cube", 0),
        ("lift_cube", 25),
        ("move_cube", 50),
        ("place_cube", 80),
        ("release_cube", 110),
        end=130,
    )
    got = symbolic_labels(ex, who, tgt, FPS)
    assert got == {0: "grasp", 25: "lift", 50: "move_to_bowl", 80: "place", 110: "release"}
    # Without a finer cut here the split span stays unnamed (the aligned vote names its pieces).
    tgt2 = spans(("grasp_cube", 0), ("lift_cube", 25), ("place_cube", 80), ("release_cube", 110), end=130)
    assert 25 not in symbolic_labels(ex, who, tgt2, FPS)
