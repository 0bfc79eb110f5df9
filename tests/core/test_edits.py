"""core.edits: the arithmetic of a person's edits, as properties over any cover of any episode.

Segments are drawn as ordered, gap-free covers on the frame grid of a random fps and
length; every edit must give such a cover again (each segment at least one frame),
change only what it names, and a split followed by a merge of its halves must give the
original back. No Qt here: the document in app/ only pushes these results as commands.
"""

from __future__ import annotations

import itertools
from typing import NamedTuple

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core import edits
from core.annotations import Box, EpisodeAnnotation, Segment, Trajectory, segment_index_at, snap_time
from core.errors import EditRefused

HUMAN = "human:tester"
NAMES = ("reach", "grasp", "lift", "move", "place", "release")


class Cover(NamedTuple):
    fps: float
    n_frames: int
    segments: list[Segment]

    @property
    def duration(self) -> float:
        return self.n_frames / self.fps

    def names(self) -> list[str]:
        return [s.name for s in self.segments]


@st.composite
def covers(draw, human: bool = False, min_segments: int = 1) -> Cover:
    fps = draw(st.sampled_from([5.0, 10.0, 15.0, 29.97, 30.0, 50.0]))
    n = draw(st.integers(max(2, min_segments), 400))
    cuts = draw(st.sets(st.integers(1, n - 1), min_size=min_segments - 1, max_size=min(7, n - 1)).map(sorted))
    frames = [0, *cuts, n]
    names = draw(st.lists(st.sampled_from(NAMES), min_size=len(frames) - 1, max_size=len(frames) - 1))
    source, confidence = (
        (HUMAN, None) if human else draw(st.sampled_from([(HUMAN, None), ("kinematic@2", 0.7)]))
    )
    segs = [
        Segment(name=name, start=a / fps, end=b / fps, source=source, confidence=confidence)
        for name, a, b in zip(names, frames[:-1], frames[1:], strict=True)
    ]
    return Cover(fps, n, segs)


def assert_cover(segs: list[Segment], cover: Cover) -> None:
    """An ordered, gap-free cover of the episode on its frame grid, no segment under one frame."""
    EpisodeAnnotation(dataset="d", episode=0, duration=cover.duration, fps=cover.fps, segments=segs)
    assert segs[0].start == 0.0
    assert segs[-1].end == pytest.approx(cover.duration, abs=1e-9)
    for a, b in itertools.pairwise(segs):
        assert a.end == b.start  # exactly: one boundary, not two close ones
    for s in segs:
        assert s.end - s.start >= 1 / cover.fps - 1e-9
        assert s.start * cover.fps == pytest.approx(round(s.start * cover.fps), abs=1e-6)


def frame_times(cover: Cover) -> st.SearchStrategy[float]:
    return st.integers(0, cover.n_frames).map(lambda i: i / cover.fps)


# ---------------------------------------------------------------- segments


@given(st.data())
def test_a_moved_boundary_stays_between_its_neighbours_and_moves_nothing_else(data):
    cover = data.draw(covers(min_segments=2))
    segs = cover.segments
    b = data.draw(st.integers(1, len(segs) - 1))
    t = data.draw(st.floats(-1.0, cover.duration + 1.0, allow_nan=False))
    out = edits.move_boundary(segs, b, t, cover.fps, HUMAN)
    f = 1 / cover.fps
    want = min(max(snap_time(t, cover.fps), snap_time(segs[b - 1].start + f, cover.fps)), segs[b].end - f)
    if out is None:  # no room to move, or it is already there
        assert abs(want - segs[b].start) < 1e-9 or segs[b].end - segs[b - 1].start < 2 * f + 1e-9
        return
    assert_cover(out, cover)
    assert [s.name for s in out] == cover.names()
    assert out[b].start == pytest.approx(want, abs=1e-9)
    assert [s.start for i, s in enumerate(out) if i != b] == [s.start for i, s in enumerate(segs) if i != b]
    assert {out[b - 1].source, out[b].source} == {HUMAN}
    assert out[b - 1].confidence is None and out[b].confidence is None
    assert out[: b - 1] == segs[: b - 1] and out[b + 1 :] == segs[b + 1 :]


@given(st.data())
def test_split_then_merge_is_the_identity(data):
    cover = data.draw(covers(human=True))
    t = data.draw(frame_times(cover))
    try:
        segs, i = edits.split(cover.segments, t, cover.fps, HUMAN)
    except EditRefused as exc:  # only on a boundary (the episode's ends included)
        assert "boundary" in str(exc) or "no segment" in str(exc)
        assert any(abs(t - s.start) < 1e-9 or abs(t - s.end) < 1e-9 for s in cover.segments)
        return
    assert_cover(segs, cover)
    names = cover.names()
    assert [s.name for s in segs] == names[:i] + [names[i - 1]] + names[i:]
    assert segs[i].start == t
    merged, at = edits.merge_with_next(segs, i - 1, HUMAN)
    assert at == i - 1
    assert merged == cover.segments


@given(st.data())
def test_split_and_merge_of_a_model_cover_keep_its_spans_and_make_them_the_persons(data):
    cover = data.draw(covers())
    t = data.draw(frame_times(cover))
    try:
        segs, i = edits.split(cover.segments, t, cover.fps, HUMAN)
    except EditRefused:
        return
    merged, _ = edits.merge_with_next(segs, i - 1, HUMAN)
    assert [(s.name, s.start, s.end) for s in merged] == [(s.name, s.start, s.end) for s in cover.segments]
    assert merged[i - 1].source == HUMAN and merged[i - 1].confidence is None
    assert [s for j, s in enumerate(merged) if j != i - 1] == [
        s for j, s in enumerate(cover.segments) if j != i - 1
    ]


@given(st.data())
def test_merge_keeps_the_first_name_and_every_other_segment(data):
    cover = data.draw(covers())
    segs = cover.segments
    i = data.draw(st.integers(-1, len(segs)))
    if not 0 <= i < len(segs) - 1:
        with pytest.raises(EditRefused, match="next one"):
            edits.merge_with_next(segs, i, HUMAN)
        return
    out, at = edits.merge_with_next(segs, i, HUMAN)
    assert_cover(out, cover)
    assert at == i and [s.name for s in out] == cover.names()[: i + 1] + cover.names()[i + 2 :]
    assert out[:i] == segs[:i] and out[i + 1 :] == segs[i + 2 :]


@given(st.data())
def test_rename_changes_one_name_and_refuses_an_empty_one(data):
    cover = data.draw(covers())
    i = data.draw(st.integers(0, len(cover.segments) - 1))
    name = data.draw(st.text(alphabet=" \tabc", max_size=6))
    if not name.strip():
        with pytest.raises(EditRefused, match="empty"):
            edits.rename(cover.segments, i, name, HUMAN)
        return
    done = edits.rename(cover.segments, i, name, HUMAN)
    if name.strip() == cover.segments[i].name:
        assert done is None
        return
    out, at = done
    assert at == i and out[i].name == name.strip() and out[i].source == HUMAN
    assert [(s.start, s.end) for s in out] == [(s.start, s.end) for s in cover.segments]
    assert [s for j, s in enumerate(out) if j != i] == [s for j, s in enumerate(cover.segments) if j != i]


@given(st.data())
def test_an_inserted_segment_is_cut_out_of_the_one_under_it(data):
    cover = data.draw(covers())
    t = data.draw(frame_times(cover))
    length = data.draw(st.floats(0.0, cover.duration + 1.0, allow_nan=False))
    done = edits.insert(cover.segments, t, cover.fps, cover.duration, HUMAN, "hesitate", length)
    if done is None:
        return
    out, at = done
    assert_cover(out, cover)
    new = out[at]
    assert new.name == "hesitate" and new.source == HUMAN
    assert new.end - new.start <= max(length, 1 / cover.fps) + 0.5 / cover.fps + 1e-9
    host = segment_index_at(cover.segments, new.start)
    others = [s for j, s in enumerate(cover.segments) if j != host]
    # Every other segment is still there, unchanged and in order; the host's pieces keep its name.
    assert [s for s in out if s in others] == others
    pieces = [s for j, s in enumerate(out) if j != at and s not in others]
    assert len(pieces) == len(out) - len(others) - 1 <= 2
    assert {s.name for s in pieces} <= {cover.segments[host].name}


def test_insert_into_nothing_covers_the_episode_and_at_the_end_takes_the_last_frames():
    (seg,), at = edits.insert([], 0.0, 10.0, 4.0, HUMAN, "all")
    assert (seg.start, seg.end, at) == (0.0, 4.0, 0)
    segs = [Segment(name="a", start=0.0, end=2.0), Segment(name="b", start=2.0, end=4.0)]
    out, at = edits.insert(segs, 4.0, 10.0, 4.0, HUMAN, "tail", 0.5)
    assert [(s.name, s.start, s.end) for s in out] == [("a", 0.0, 2.0), ("b", 2.0, 3.5), ("tail", 3.5, 4.0)]
    assert at == 2


@given(st.data())
def test_delete_gives_the_time_to_a_neighbour_and_keeps_every_other_name(data):
    cover = data.draw(covers())
    segs = cover.segments
    i = data.draw(st.integers(0, len(segs) - 1))
    out, at = edits.delete(segs, i, HUMAN)
    if len(segs) == 1:
        assert (out, at) == ([], None)
        return
    assert_cover(out, cover)
    assert [s.name for s in out] == cover.names()[:i] + cover.names()[i + 1 :]
    assert at == max(i - 1, 0)
    taker = segs[i - 1] if i > 0 else segs[1]
    assert [s for s in out if s != out[at]] == [s for s in segs if s is not segs[i] and s is not taker]


OPS = st.one_of(
    st.tuples(st.just("move"), st.integers(0, 8), st.floats(-1, 100, allow_nan=False)),
    st.tuples(st.just("split"), st.integers(0, 4000)),
    st.tuples(st.just("merge"), st.integers(-1, 8)),
    st.tuples(st.just("insert"), st.integers(0, 4000), st.floats(0, 10, allow_nan=False)),
    st.tuples(st.just("delete"), st.integers(0, 8)),
)


@given(covers(), st.lists(OPS, max_size=25))
def test_any_sequence_of_edits_keeps_a_cover(cover, ops):
    segs = cover.segments
    for op, *args in ops:
        try:
            if op == "move":
                out = edits.move_boundary(segs, args[0], args[1], cover.fps, HUMAN)
            elif op == "split":
                out = edits.split(segs, min(args[0], cover.n_frames) / cover.fps, cover.fps, HUMAN).items
            elif op == "merge":
                out = edits.merge_with_next(segs, args[0], HUMAN).items
            elif op == "insert":
                t = min(args[0], cover.n_frames) / cover.fps
                done = edits.insert(segs, t, cover.fps, cover.duration, HUMAN, "new", args[1])
                out = None if done is None else done.items
            elif args[0] < len(segs):
                out = edits.delete(segs, args[0], HUMAN).items
            else:
                out = None
        except EditRefused:
            out = None
        if out is not None:
            segs = out
            if segs:
                assert_cover(segs, cover)


def test_split_refusals_say_why():
    segs = [Segment(name="reach", start=0.0, end=1.0), Segment(name="grasp", start=1.0, end=2.0)]
    with pytest.raises(EditRefused, match="boundary of 'grasp'"):
        edits.split(segs, 1.0, 10.0, HUMAN)
    with pytest.raises(EditRefused, match="no segment under the playhead"):
        edits.split(segs, 2.5, 10.0, HUMAN)
    with pytest.raises(EditRefused, match="no segment under the playhead"):
        edits.split([], 0.5, 10.0, HUMAN)


def test_jump_targets():
    segs = [Segment(name="a", start=0.0, end=1.0), Segment(name="b", start=1.0, end=3.0)]
    assert edits.jump_target(segs, 0.5, 10.0, 1) == 1.0
    assert edits.jump_target(segs, 1.0, 10.0, 1) == 3.0  # after the last start: its end
    assert edits.jump_target(segs, 1.0, 10.0, -1) == 0.0
    assert edits.jump_target(segs, 2.0, 10.0, -1) == 1.0
    assert edits.jump_target([], 2.0, 10.0, -1) is None


# ---------------------------------------------------------------- boxes

coords = st.floats(-2.0, 3.0, allow_nan=False)
TRACK = ("top", "cup", "current")


@given(st.tuples(coords, coords, coords, coords))
def test_a_clamped_box_is_a_valid_box_and_clamping_it_again_changes_nothing(xyxy):
    box = edits.clamp_box(xyxy)
    Box(t=0.0, camera="top", label="cup", kind="current", xyxy=box)
    assert edits.clamp_box(box) == box
    assert all(0.0 <= v <= 1.0 for v in box)


@st.composite
def box_sets(draw) -> tuple[float, list[Box]]:
    fps = draw(st.sampled_from([10.0, 30.0]))
    tracks = [TRACK, ("top", "cup", "final"), ("side", "cup", "current")]
    boxes = []
    for track in tracks:
        for frame in sorted(draw(st.sets(st.integers(0, 60), max_size=5))):
            camera, label, kind = track
            source = draw(st.sampled_from([HUMAN, "tracker:cotracker", "kinematic@2"]))
            boxes.append(
                Box(
                    t=frame / fps,
                    camera=camera,
                    label=label,
                    kind=kind,
                    xyxy=(0.1, 0.1, 0.5, 0.5),
                    source=source,
                )
            )
    return fps, boxes


@given(box_sets(), st.integers(0, 60), st.tuples(coords, coords, coords, coords))
def test_setting_a_keyframe_changes_one_keyframe_of_one_track(fb, frame, xyxy):
    fps, boxes = fb
    t = frame / fps
    out, i, added = edits.set_keyframe(boxes, TRACK, t, xyxy, fps, HUMAN)
    on_t = [b for b in out if b.track_key == TRACK and abs(b.t - t) < 0.5 / fps]
    assert on_t == [out[i]] and out[i].xyxy == edits.clamp_box(xyxy)
    assert out[i].source == HUMAN and not out[i].lost and out[i].confidence is None
    assert len(out) == len(boxes) + added
    if added:
        assert out[:-1] == boxes
    else:
        assert out[:i] == boxes[:i] and out[i + 1 :] == boxes[i + 1 :]
    again, j, added_again = edits.set_keyframe(out, TRACK, t, xyxy, fps, HUMAN)
    assert (again, j, added_again) == (out, i, False)


@given(box_sets(), st.integers(0, 60))
def test_promoting_a_keyframe_touches_only_that_tracks_keyframe_at_t(fb, frame):
    fps, boxes = fb
    t = frame / fps
    out = edits.promote_keyframe(boxes, TRACK, t, fps, HUMAN)
    for before, after in zip(boxes, out, strict=True):
        if before.track_key == TRACK and abs(before.t - t) < 0.5 / fps:
            assert after.is_human and not after.lost
        else:
            assert after == before


# ---------------------------------------------------------------- trajectories


@st.composite
def trajectories(draw) -> tuple[float, Trajectory]:
    fps = draw(st.sampled_from([10.0, 30.0]))
    frames = sorted(draw(st.sets(st.integers(0, 90), min_size=1, max_size=20)))
    points = [(f / fps, draw(st.floats(0, 1)), draw(st.floats(0, 1))) for f in frames]
    anchors = [p[0] for p in points if draw(st.booleans())]
    lost = [f / fps for f in draw(st.sets(st.integers(0, 90), max_size=3))]
    source = draw(st.sampled_from([HUMAN, "tracker:cotracker", "kinematic@2"]))
    return fps, Trajectory(camera="top", points=points, anchors=anchors, lost=lost, source=source)


@given(trajectories(), st.integers(0, 90), coords, coords)
def test_a_placed_point_is_the_one_point_at_its_time_and_an_anchor(ft, frame, x, y):
    fps, traj = ft
    t = frame / fps
    out, pi = edits.place_point(traj, t, x, y, fps)
    assert out.points[pi] == (t, edits.unit(x), edits.unit(y))
    assert [p for p in out.points if abs(p[0] - t) < 0.5 / fps] == [out.points[pi]]
    assert [p[0] for p in out.points] == sorted(p[0] for p in out.points)
    assert t in out.anchors and not any(abs(lt - t) < 0.5 / fps for lt in out.lost)
    assert [p for p in out.points if p[0] != t] == [p for p in traj.points if abs(p[0] - t) >= 0.5 / fps]
    assert out.source == traj.source


@given(st.data())
def test_a_moved_point_keeps_its_time_and_the_others(data):
    _fps, traj = data.draw(trajectories())
    pi = data.draw(st.integers(0, len(traj.points) - 1))
    x, y = data.draw(coords), data.draw(coords)
    out = edits.move_point(traj, pi, x, y, HUMAN)
    t = traj.points[pi][0]
    assert out.points[pi] == (t, edits.unit(x), edits.unit(y))
    assert out.points[:pi] == traj.points[:pi] and out.points[pi + 1 :] == traj.points[pi + 1 :]
    assert t in out.anchors
    # A tracked trajectory stays the tracker's (its anchors say what is the person's).
    assert out.source == (traj.source if edits.trajectory_is_tracked(traj) else HUMAN)


def test_new_points_go_on_the_selected_trajectory_of_their_camera():
    trajs = [Trajectory(camera="side"), Trajectory(camera="top"), Trajectory(camera="top")]
    assert edits.pick_trajectory(trajs, "top", 2) == 2
    assert edits.pick_trajectory(trajs, "top", 0) == 1  # the selection is another camera's
    assert edits.pick_trajectory(trajs, "top", None) == 1
    assert edits.pick_trajectory(trajs, "front", None) is None
