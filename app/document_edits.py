"""The person's edits of the open episode: one `EpisodeDocument` method per gesture.

Each method reads the document's annotation, asks core.edits for the changed items
(the arithmetic lives there, tested as properties without Qt) and hands them to the
document's `_edit`, which validates the whole annotation and pushes one undoable
command; a refusal becomes a `message` instead. Apart from the document's state,
lifecycle and sync (app/document.py) so each reads on its own.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from app.commands import EditCommand, Selection, Snapshot
from core import edits
from core.annotations import QA, Box, EpisodeAnnotation, Segment, box_tracks, interpolate_box
from core.edits import NEW_SEGMENT_NAME
from core.errors import AnnotationError, EditRefused
from core.tracks import splice_boxes

if TYPE_CHECKING:
    from PySide6.QtCore import SignalInstance
    from PySide6.QtGui import QUndoStack


class DocumentEdits:
    """The edit methods of `EpisodeDocument` (a mixin: the state they change is the document's)."""

    annotation: EpisodeAnnotation | None
    suggestion: EpisodeAnnotation | None
    selection: Selection | None
    playhead: float
    fps: float
    ready: bool
    undo_stack: QUndoStack
    message: SignalInstance
    keyframe_corrected: SignalInstance

    if TYPE_CHECKING:  # the document's own (app/document.py)

        @property
        def duration(self) -> float: ...

        def _edit(
            self,
            text: str,
            merge_key: tuple | None = None,
            selection: Selection | None = None,
            suggestion: Any = ...,
            **changes: Any,
        ) -> bool: ...

        def _snap(self, t: float) -> float: ...

        def _human(self) -> str: ...

        def segment_index(self, t: float | None = None) -> int | None: ...

    # ------------------------------------------------------------ segments

    def _segments(self) -> list[Segment]:
        return list(self.annotation.segments) if self.annotation else []

    def _refused(self, exc: AnnotationError, prefix: str = "") -> bool:
        self.message.emit(f"{prefix}{exc}")
        return False

    def move_boundary(self, b: int, t: float) -> bool:
        """Move the boundary between segments b-1 and b to t, snapped to a frame, keeping both >= 1 frame."""
        segs = edits.move_boundary(self._segments(), b, t, self.fps, self._human())
        if segs is None:
            return False
        return self._edit(
            f"move boundary {b}", merge_key=("boundary", b), selection=Selection("segments", b), segments=segs
        )

    def split_segment(self, t: float | None = None) -> bool:
        """Split the segment under t (the playhead) at t; both halves keep its name."""
        t = self._snap(self.playhead if t is None else t)
        try:
            segs, i = edits.split(self._segments(), t, self.fps, self._human())
        except EditRefused as exc:
            return self._refused(exc)
        return self._edit(f"split '{segs[i].name}'", selection=Selection("segments", i), segments=segs)

    def merge_with_next(self, i: int | None = None) -> bool:
        i = self._segment_arg(i)
        old = self._segments()
        try:
            segs, i = edits.merge_with_next(old, i, self._human())
        except EditRefused as exc:
            return self._refused(exc)
        return self._edit(
            f"merge '{old[i].name}' with '{old[i + 1].name}'",
            selection=Selection("segments", i),
            segments=segs,
        )

    def rename_segment(self, i: int, name: str) -> bool:
        try:
            done = edits.rename(self._segments(), i, name, self._human())
        except EditRefused as exc:
            return self._refused(exc)
        if done is None:
            return False
        segs, i = done
        return self._edit(f"rename to '{segs[i].name}'", selection=Selection("segments", i), segments=segs)

    def insert_segment(
        self, t: float | None = None, name: str = NEW_SEGMENT_NAME, length: float = 1.0
    ) -> bool:
        """A new segment from t (the playhead) for `length` seconds, cut out of the one under it."""
        if self.annotation is None:
            return False
        t = self._snap(self.playhead if t is None else t)
        done = edits.insert(self._segments(), t, self.fps, self.duration, self._human(), name, length)
        if done is None:
            return False
        segs, at = done
        return self._edit(f"insert '{name}'", selection=Selection("segments", at), segments=segs)

    def delete_segment(self, i: int | None = None) -> bool:
        """Remove a segment; the previous one (or the next, for the first) takes its time."""
        i = self._segment_arg(i)
        if i is None:
            return False
        old = self._segments()
        segs, at = edits.delete(old, i, self._human())
        sel = None if at is None else Selection("segments", at)
        return self._edit(f"delete '{old[i].name}'", selection=sel, segments=segs)

    def _segment_arg(self, i: int | None) -> int | None:
        if i is not None:
            return i if self.annotation and 0 <= i < len(self.annotation.segments) else None
        if self.selection and self.selection.kind == "segments":
            return self.selection.index
        return self.segment_index()

    # ------------------------------------------------------------ boxes

    def box_at(self, track: tuple[str, str, str], t: float | None = None) -> tuple[tuple, bool] | None:
        """A track's box at t (the playhead) and whether t is on one of its keyframes."""
        if self.annotation is None:
            return None
        frames = box_tracks(self.annotation.boxes).get(track)
        return interpolate_box(frames or [], self.playhead if t is None else t)

    def set_box(self, track: tuple[str, str, str], xyxy: tuple[float, ...], t: float | None = None) -> bool:
        """Move/resize a box at t (the playhead): changes the keyframe there, or adds one."""
        if self.annotation is None:
            return False
        t = self._snap(self.playhead if t is None else t)
        tracked = edits.track_is_tracked(self.annotation.boxes, track)
        boxes, i, added = edits.set_keyframe(self.annotation.boxes, track, t, xyxy, self.fps, self._human())
        label = track[1]
        done = self._edit(
            f"add keyframe of '{label}'" if added else f"move box '{label}'",
            merge_key=("box", track, round(t * self.fps)),
            selection=Selection("boxes", i),
            boxes=boxes,
        )
        if done and tracked:
            self.keyframe_corrected.emit(("boxes", track, t))
        return done

    def add_box_keyframe(self, track: tuple[str, str, str], t: float | None = None) -> bool:
        """Freeze the interpolated box at t (the playhead) into a keyframe."""
        at = self.box_at(track, t)
        if at is None:
            return False
        if at[1]:
            self.message.emit("there is already a keyframe here")
            return False
        return self.set_box(track, at[0], t)

    def add_box(
        self, camera: str, label: str, kind: str, xyxy: tuple[float, ...], t: float | None = None
    ) -> bool:
        if self.annotation is None:
            return False
        t = self._snap(self.playhead if t is None else t)
        try:
            box = Box(
                t=t, camera=camera, label=label, kind=kind, xyxy=edits.clamp_box(xyxy), source=self._human()
            )
        except AnnotationError as exc:
            return self._refused(exc, "new box refused: ")
        boxes = [*self.annotation.boxes, box]
        return self._edit(f"add box '{label}'", selection=Selection("boxes", len(boxes) - 1), boxes=boxes)

    def _edit_item(self, kind: str, i: int, what: str, text: str, fields: dict[str, Any]) -> bool:
        """A person's change of item i's fields (`what` names it in a refusal)."""
        items = list(getattr(self.annotation, kind)) if self.annotation else []
        if not 0 <= i < len(items):
            return False
        try:
            items[i] = edits.edit_item(items[i], self._human(), **fields)
        except (AnnotationError, TypeError) as exc:
            return self._refused(exc, f"{what} edit refused: ")
        return self._edit(text.format(item=items[i]), selection=Selection(kind, i), **{kind: items})

    def _delete_item(self, kind: str, i: int, text: str) -> bool:
        items = list(getattr(self.annotation, kind)) if self.annotation else []
        if not 0 <= i < len(items):
            return False
        gone = items.pop(i)
        return self._edit(text.format(item=gone), selection=None, **{kind: items})

    def edit_box(self, i: int, **fields: Any) -> bool:
        """Change a keyframe's label or kind (its whole track follows only if every keyframe is edited)."""
        return self._edit_item("boxes", i, "box", "edit box '{item.label}'", fields)

    def delete_box(self, i: int) -> bool:
        return self._delete_item("boxes", i, "delete keyframe of '{item.label}'")

    # ------------------------------------------------------------ trajectories and contacts

    def move_trajectory_point(self, ti: int, pi: int, x: float, y: float) -> bool:
        trajs = list(self.annotation.trajectories) if self.annotation else []
        if not 0 <= ti < len(trajs) or not 0 <= pi < len(trajs[ti].points):
            return False
        tracked = edits.trajectory_is_tracked(trajs[ti])
        t = trajs[ti].points[pi][0]
        trajs[ti] = edits.move_point(trajs[ti], pi, x, y, self._human())
        done = self._edit(
            "move trajectory point",
            merge_key=("traj", ti, pi),
            selection=Selection("trajectories", ti, pi),
            trajectories=trajs,
        )
        if done and tracked:
            self.keyframe_corrected.emit(("trajectories", ti, t))
        return done

    def add_trajectory_point(
        self, camera: str, x: float, y: float, t: float | None = None, index: int | None = None
    ) -> bool:
        """A gripper point a person placed at t (the playhead): on trajectory `index`, else the
        selected or first one of the camera, else a new trajectory. A point already at t moves."""
        if self.annotation is None:
            return False
        t = self._snap(self.playhead if t is None else t)
        trajs = list(self.annotation.trajectories)
        if index is None:
            sel = self.selection
            selected = sel.index if sel and sel.kind == "trajectories" else None
            index = edits.pick_trajectory(trajs, camera, selected)
        tracked = False
        if index is None:
            trajs.append(edits.new_trajectory(camera, t, x, y, self._human()))
            index, pi = len(trajs) - 1, 0
        else:
            tracked = edits.trajectory_is_tracked(trajs[index])
            trajs[index], pi = edits.place_point(trajs[index], t, x, y, self.fps)
        done = self._edit(
            "add trajectory point", selection=Selection("trajectories", index, pi), trajectories=trajs
        )
        if done and tracked:
            self.keyframe_corrected.emit(("trajectories", index, t))
        return done

    # ------------------------------------------------------------ tracks

    def apply_track_boxes(
        self,
        track: tuple[str, str, str],
        spans: list[tuple[float, float]],
        boxes: list[Box],
        promote: float | None = None,
    ) -> bool:
        """A tracker's keyframes replace the track's tracked keyframes in `spans` (one undoable edit);
        `promote`: the time of the keyframe the track started from, made a person's if it was not."""
        if self.annotation is None:
            return False
        current = list(self.annotation.boxes)
        if promote is not None:
            current = edits.promote_keyframe(current, track, promote, self.fps, self._human())
        merged = splice_boxes(current, track, spans, boxes)
        return self._edit(f"track '{track[1]}'", selection=self.selection, boxes=merged)

    def apply_track_points(
        self,
        index: int,
        spans: list[tuple[float, float]],
        points: list[tuple[float, float, float]],
        lost: list[float],
        promote: float | None = None,
        source: str = "",
    ) -> bool:
        """A tracker's points replace trajectory `index`'s tracked points in `spans` (one undoable edit);
        the trajectory's `source` becomes the tracker's (its `anchors` keep the person's points)."""
        trajs = list(self.annotation.trajectories) if self.annotation else []
        if not 0 <= index < len(trajs):
            return False
        try:
            trajs[index] = edits.retrack(trajs[index], spans, points, lost, promote, source)
        except AnnotationError as exc:
            return self._refused(exc, "the track could not be applied: ")
        return self._edit("track the gripper", selection=self.selection, trajectories=trajs)

    def add_contact(self, camera: str, x: float, y: float, t: float | None = None) -> bool:
        if self.annotation is None:
            return False
        t = self._snap(self.playhead if t is None else t)
        contacts = [*self.annotation.contacts, edits.new_contact(camera, t, x, y, self._human())]
        return self._edit(
            "add contact", selection=Selection("contacts", len(contacts) - 1), contacts=contacts
        )

    def move_contact(self, i: int, x: float, y: float) -> bool:
        contacts = list(self.annotation.contacts) if self.annotation else []
        if not 0 <= i < len(contacts):
            return False
        contacts[i] = edits.move_contact(contacts[i], x, y, self._human())
        return self._edit(
            "move contact", merge_key=("contact", i), selection=Selection("contacts", i), contacts=contacts
        )

    def delete_contact(self, i: int) -> bool:
        return self._delete_item("contacts", i, "delete contact")

    # ------------------------------------------------------------ dialogue and QA

    def add_dialogue(self, t: float | None = None) -> bool:
        if self.annotation is None:
            return False
        t = self._snap(self.playhead if t is None else t)
        turn = edits.new_dialogue_turn(self.annotation.segments, t, self._human())
        items, at = edits.insert_by_time(self.annotation.dialogue, turn)
        return self._edit("add dialogue turn", selection=Selection("dialogue", at), dialogue=items)

    def edit_dialogue(self, i: int, **fields: Any) -> bool:
        return self._edit_item("dialogue", i, "dialogue", "edit dialogue turn", fields)

    def delete_dialogue(self, i: int) -> bool:
        return self._delete_item("dialogue", i, "delete dialogue turn")

    def add_qa(self, camera: str, t: float | None = None) -> bool:
        if self.annotation is None:
            return False
        t = self._snap(self.playhead if t is None else t)
        item = QA(t=t, camera=camera, question="What is the robot doing?", answer="?", source=self._human())
        items, at = edits.insert_by_time(self.annotation.qa, item)
        return self._edit("add question", selection=Selection("qa", at), qa=items)

    def edit_qa(self, i: int, **fields: Any) -> bool:
        return self._edit_item("qa", i, "question", "edit question", fields)

    def delete_qa(self, i: int) -> bool:
        return self._delete_item("qa", i, "delete question")

    # ------------------------------------------------------------ review

    def accept_suggestion(self) -> bool:
        """Take the model's suggestion: each kind it predicted replaces ours."""
        sugg = self.suggestion
        if sugg is None or self.annotation is None:
            return False
        changes = edits.accepted_changes(self.annotation, sugg)
        return self._edit("accept suggestion", selection=None, suggestion=None, **changes)

    def reject_suggestion(self) -> bool:
        if self.suggestion is None or self.annotation is None:
            return False
        if not self.ready:
            return False
        before = Snapshot(self.annotation, self.suggestion)
        after = Snapshot(self.annotation, None)
        self.undo_stack.push(EditCommand(self, "reject suggestion", before, after, self.selection))
        return True

    def accept_episode(self) -> bool:
        if self.annotation is None or self.annotation.review == "accepted":
            return False
        return self._edit("accept episode", review="accepted")

    def set_review(self, state: str) -> bool:
        return self._edit(f"mark {state}", review=state)
