"""EpisodeDocument: every edit is exact, frame-snapped, validated and undoable."""

from __future__ import annotations

import pytest

from app.document import EpisodeDocument
from core.annotations import annotation_to_json, box_tracks
from tests.fixtures.gui import truth_annotation


@pytest.fixture
def doc(qapp, demo_root):
    ann = truth_annotation(demo_root, 0)
    d = EpisodeDocument("demo", ann.fps, link=None, user="tester")
    d.open_episode(0, ann.duration, ann.task)
    d.load(ann)
    return d


def names(doc):
    return [s.name for s in doc.annotation.segments]


def test_boundary_move_snaps_to_frames_and_clamps(doc):
    segs = doc.annotation.segments
    assert doc.move_boundary(1, segs[1].start + 0.0412)  # off-grid: snaps to the nearest frame
    moved = doc.annotation.segments[1].start
    assert moved * doc.fps == pytest.approx(round(moved * doc.fps), abs=1e-9)
    assert doc.annotation.segments[0].end == moved
    assert doc.annotation.segments[0].source == "human:tester"
    # Dragged past the next boundary: stops one frame before it, nothing overlaps.
    doc.move_boundary(1, segs[1].end + 5.0)
    s = doc.annotation.segments
    assert s[1].end - s[1].start == pytest.approx(1 / doc.fps)
    assert s[1].end == segs[1].end


def test_split_merge_rename_insert_delete_and_undo_to_the_byte(doc):
    original = annotation_to_json(doc.annotation)
    n = len(doc.annotation.segments)
    first, second = names(doc)[:2]
    seg0 = doc.annotation.segments[0]
    on_grid = lambda t: round(t * doc.fps) / doc.fps  # noqa: E731
    cut, at, length = on_grid(seg0.end * 0.8), on_grid(seg0.end * 0.4), on_grid(seg0.end * 0.3)
    doc.set_playhead(seg0.start + cut)
    assert doc.split_segment()
    assert names(doc)[:2] == [first, first] and len(doc.annotation.segments) == n + 1
    assert doc.annotation.segments[0].end == pytest.approx(cut)
    assert doc.rename_segment(1, "approach")
    assert names(doc)[1] == "approach"
    assert doc.merge_with_next(0)
    assert names(doc)[0] == first and len(doc.annotation.segments) == n
    assert doc.insert_segment(at, name="hesitate", length=length)
    i = names(doc).index("hesitate")
    new = doc.annotation.segments[i]
    assert (new.start, new.end) == (pytest.approx(at), pytest.approx(at + length))
    assert doc.delete_segment(i)  # the segment before takes its time
    assert names(doc)[:3] == [first, first, second]
    assert doc.annotation.segments[0].end == pytest.approx(at + length)
    assert doc.annotation.review == "in_review"  # the first human edit starts the review
    while doc.undo_stack.canUndo():
        doc.undo_stack.undo()
    assert annotation_to_json(doc.annotation) == original
    while doc.undo_stack.canRedo():
        doc.undo_stack.redo()
    assert names(doc)[:3] == [first, first, second] and len(doc.annotation.segments) == n + 1


def test_refused_edits_change_nothing_and_say_why(doc, qtbot):
    before = annotation_to_json(doc.annotation)
    with qtbot.waitSignal(doc.message) as msg:
        assert not doc.rename_segment(0, "   ")
    assert "empty" in msg.args[0]
    doc.set_playhead(doc.annotation.segments[1].start)  # on a boundary
    with qtbot.waitSignal(doc.message) as msg:
        assert not doc.split_segment()
    assert "boundary" in msg.args[0]
    with qtbot.waitSignal(doc.message) as msg:
        assert not doc.edit_box(0, kind="banana")
    assert "kind" in msg.args[0]
    with qtbot.waitSignal(doc.message):
        assert not doc.edit_qa(0, kind="choice", choices=["a", "b"])  # the answer is not a choice
    assert annotation_to_json(doc.annotation) == before
    assert doc.undo_stack.count() == 0


def test_box_keyframe_move_and_add_from_interpolation(doc):
    track = next(iter(box_tracks(doc.annotation.boxes)))
    kf = box_tracks(doc.annotation.boxes)[track]
    doc.set_playhead(kf[1].t)
    xyxy, on_key = doc.box_at(track)
    assert on_key
    n = len(doc.annotation.boxes)
    assert doc.set_box(track, (0.1, 0.2, 0.3, 0.4))
    assert len(doc.annotation.boxes) == n  # changed in place
    assert doc.box_at(track)[0] == pytest.approx((0.1, 0.2, 0.3, 0.4))
    # Between keyframes: moving the interpolated box adds a keyframe there.
    doc.set_playhead((kf[2].t + kf[3].t) / 2)
    assert not doc.box_at(track)[1]
    assert doc.add_box_keyframe(track)
    assert len(doc.annotation.boxes) == n + 1 and doc.box_at(track)[1]
    doc.undo_stack.undo()
    doc.undo_stack.undo()
    assert doc.box_at(track, kf[1].t)[0] == pytest.approx(xyxy)


def test_drags_of_the_same_thing_merge_into_one_undo_step(doc):
    before = doc.annotation.segments[2].start
    for dt in (0.1, 0.2, 0.3):
        doc.move_boundary(2, before + dt)
    assert doc.undo_stack.count() == 1
    doc.undo_stack.undo()
    assert doc.annotation.segments[2].start == before


def test_points_contacts_dialogue_qa(doc):
    assert doc.move_trajectory_point(0, 5, 0.5, 1.7)  # clamped into the image
    assert doc.annotation.trajectories[0].points[5][1:] == (0.5, 1.0)
    assert doc.move_contact(0, 0.25, 0.75)
    assert (doc.annotation.contacts[0].x, doc.annotation.contacts[0].y) == (0.25, 0.75)
    assert doc.add_contact("observation.images.top", 0.1, 0.1, t=1.0)
    assert doc.delete_contact(len(doc.annotation.contacts) - 1)
    assert doc.edit_dialogue(0, robot_utterance="Reaching now.", scenario_type="negative_task")
    turn = doc.annotation.dialogue[0]
    assert (turn.robot_utterance, turn.scenario_type, turn.source) == (
        "Reaching now.",
        "negative_task",
        "human:tester",
    )
    assert doc.edit_qa(0, kind="choice", choices=["blue cylinder", "red cube"])
    assert doc.annotation.qa[0].kind == "choice"
    doc.set_playhead(3.0)
    assert doc.add_dialogue() and doc.add_qa("observation.images.front")
    assert [d.t for d in doc.annotation.dialogue] == sorted(d.t for d in doc.annotation.dialogue)


def test_suggestion_accept_reject_and_accept_episode(doc, demo_root):
    sugg = truth_annotation(demo_root, 0)
    sugg = type(sugg)(**{**{f: getattr(sugg, f) for f in sugg.__struct_fields__}, "model": "kinematic@2"})
    assert doc.move_boundary(1, 1.0)
    edited = doc.annotation.segments
    doc.load(doc.annotation, suggestion=sugg)  # local mode: no unacked edits, so this reloads
    assert doc.suggestion is sugg
    assert doc.reject_suggestion() and doc.suggestion is None
    doc.undo_stack.undo()
    assert doc.suggestion is sugg
    assert doc.accept_suggestion()
    assert doc.suggestion is None and doc.annotation.model == "kinematic@2"
    assert doc.annotation.segments == sugg.segments != edited
    assert doc.accept_episode() and doc.annotation.review == "accepted"
    doc.undo_stack.undo()
    assert doc.annotation.review != "accepted"


def test_navigation(doc):
    t = doc.annotation.segments[0].end * 0.5 + 0.0123  # off the frame grid, inside the first segment
    doc.set_playhead(t)
    assert doc.playhead * doc.fps == pytest.approx(round(doc.playhead * doc.fps))
    doc.step(1)
    assert doc.frame == round(t * doc.fps) + 1
    doc.jump_segment(1)
    assert doc.playhead == pytest.approx(doc.annotation.segments[1].start)
    assert doc.selection == ("segments", 1, -1)
    doc.jump_segment(-1)
    assert doc.playhead == 0.0
    doc.set_frame(10_000)
    assert doc.frame == doc.n_frames - 1


def test_the_inspector_says_where_a_proposal_came_from(qapp, demo_root):
    """A proposal copied from accepted episodes names them ("aligned to episodes 3 and 7")."""
    import msgspec

    from app.ui.inspector import Inspector

    ann = msgspec.structs.replace(
        truth_annotation(demo_root, 0),
        model="kinematic@2.0+ex-0123456789",
        origin="aligned to episodes 3 and 7",
    )
    d = EpisodeDocument("demo", ann.fps, link=None, user="tester")
    d.open_episode(0, ann.duration, ann.task)
    d.load(ann)
    insp = Inspector(d, ["observation.images.front"])
    insp.refresh()
    assert "kinematic@2.0+ex-0123456789" in insp.ep_model.text()
    assert "aligned to episodes 3 and 7" in insp.ep_model.text()
