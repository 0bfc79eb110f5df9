"""The open episode as a document: annotation, selection, playhead and the undo stack.

A pure model with Qt signals and no widgets (napari style): the player, timeline,
overlays and inspector all watch one `EpisodeDocument` and change it only through
its edit methods. Every edit is a snapshot `QUndoCommand` (the annotation and the
pending model suggestion before and after), so undo and redo are exact and an
invalid edit is refused with the model's own error message instead of half
applied. Edits are sent to the backend as whole-annotation corrections, debounced
(a drag or a burst of keystrokes becomes one correction), and flushed at once when
the person switches episodes or closes the app.
"""

from __future__ import annotations

import getpass
import math
from typing import TYPE_CHECKING, Any, NamedTuple

from PySide6.QtCore import QObject, QTimer, Signal
from PySide6.QtGui import QUndoStack

from app.commands import EditCommand, Snapshot
from core import edits
from core.annotations import (
    HUMAN_PREFIX,
    ITEM_FIELDS,
    QA,
    Box,
    EpisodeAnnotation,
    Segment,
    box_tracks,
    frame_at,
    interpolate_box,
    replace,
    segment_index_at,
)
from core.edits import NEW_SEGMENT_NAME
from core.errors import AnnotationError, EditRefused
from core.tracks import splice_boxes

if TYPE_CHECKING:
    from core.protocol import Conflict

# Quiet time after the last edit before it is submitted: a drag or typing burst is one correction.
SUBMIT_DELAY_MS = 500
# Kinds a model suggestion can bring; accepting it replaces the ones it has.
SUGGESTION_FIELDS = ITEM_FIELDS


class Selection(NamedTuple):
    """The item a person selected: a field of the annotation, an index in it, a sub-index (a trajectory point)."""

    kind: str
    index: int
    sub: int = -1


class EpisodeDocument(QObject):
    """The annotation of the open episode and every way to change it."""

    # A different episode (or a reloaded annotation): views rebuild everything.
    loaded = Signal()
    # The annotation or suggestion changed by an edit, undo or redo.
    changed = Signal()
    selection_changed = Signal(object)  # Selection | None
    playhead_changed = Signal(float)  # seconds, on the frame grid
    # Something the person should read: a refused edit, a submit problem.
    message = Signal(str)
    # Edits made but not yet handed to the link (debounce running), and corrections not acked.
    unsent_changed = Signal(int)
    base_revision_changed = Signal(int)
    # A person corrected (or added) a keyframe of a tracked track: ("boxes", track key, t) or
    # ("trajectories", index, t). The tracking controller re-tracks the gaps beside it.
    keyframe_corrected = Signal(object)

    def __init__(self, dataset_id: str, fps: float, link: Any = None, user: str | None = None, parent=None):
        super().__init__(parent)
        if not fps or fps <= 0 or not math.isfinite(fps):
            raise ValueError(f"EpisodeDocument: fps = {fps!r} must be > 0")
        self.dataset_id = dataset_id
        self.fps = float(fps)
        self.link = link
        self.user = user or getpass.getuser() or "annotator"
        self.undo_stack = QUndoStack(self)
        self.annotation: EpisodeAnnotation | None = None
        self.suggestion: EpisodeAnnotation | None = None
        self.base_revision = 0
        self.selection: Selection | None = None
        self.playhead = 0.0
        # True once the backend's annotation arrived (or at once without a backend): edits allowed.
        self.ready = False
        self._needs_submit = False
        # correction uuid -> the annotation it carried, until the backend acknowledges it
        self._inflight: dict[str, EpisodeAnnotation] = {}
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(SUBMIT_DELAY_MS)
        self._timer.timeout.connect(self.flush)

    # ------------------------------------------------------------ episode lifecycle

    @property
    def episode(self) -> int | None:
        return None if self.annotation is None else self.annotation.episode

    @property
    def duration(self) -> float:
        return 0.0 if self.annotation is None else self.annotation.duration

    @property
    def n_frames(self) -> int:
        return 0 if self.annotation is None else max(1, round(self.annotation.duration * self.fps))

    @property
    def frame(self) -> int:
        return frame_at(self.playhead, self.fps, self.n_frames) if self.annotation else 0

    def open_episode(self, episode: int, duration: float, task: str = "", ready: bool | None = None) -> None:
        """Switch to an episode: flush the old one's edits, show an empty annotation until the real one loads."""
        self.flush()
        self.undo_stack.clear()
        self.annotation = EpisodeAnnotation(
            dataset=self.dataset_id, episode=episode, duration=duration, fps=self.fps, task=task
        )
        self.suggestion = None
        self.base_revision = 0
        self.selection = None
        self.playhead = 0.0
        self.ready = self.link is None if ready is None else ready
        self._needs_submit = False
        self.loaded.emit()
        self.selection_changed.emit(None)
        self.playhead_changed.emit(0.0)
        self.base_revision_changed.emit(0)
        self._emit_unsent()

    def load(
        self,
        head: EpisodeAnnotation | None,
        suggestion: EpisodeAnnotation | None = None,
        keep_edits: bool = True,
    ) -> bool:
        """Take the backend's annotation of the open episode. Returns whether it replaced the annotation.

        Local edits not yet acknowledged win (`keep_edits`): the backend reports a conflict
        for them if someone else changed the episode meanwhile, and the person chooses there.
        """
        if self.annotation is None:
            return False
        if head is not None and (head.dataset, head.episode) != self.annotation.key:
            return False
        if keep_edits and self.ready and self.has_local_edits:
            if suggestion is not None and suggestion != self.suggestion:
                self.suggestion = suggestion
                self.changed.emit()
            return False
        ann = head if head is not None else self.annotation
        if head is not None and abs(head.duration - self.annotation.duration) * self.fps > 1.0:
            self.message.emit(
                f"episode {head.episode}: the stored annotation lasts {head.duration:.3f} s but the video "
                f"{self.annotation.duration:.3f} s; shown as stored"
            )
        self.undo_stack.clear()
        self.annotation = ann
        self.suggestion = suggestion
        self.base_revision = head.revision if head is not None else 0
        self.ready = True
        self._needs_submit = False
        if self.selection is not None and not self._valid(self.selection):
            self.selection = None
            self.selection_changed.emit(None)
        self.loaded.emit()
        self.base_revision_changed.emit(self.base_revision)
        self._emit_unsent()
        return True

    @property
    def has_local_edits(self) -> bool:
        """Edits of the open episode the backend has not acknowledged (waiting to be sent, or in flight)."""
        ep = self.episode
        return self._needs_submit or any(a.episode == ep for a in self._inflight.values())

    @property
    def needs_submit(self) -> bool:
        """Edits made and not yet handed to the link (the debounce is running, or the journal failed)."""
        return self._needs_submit

    @property
    def unsent(self) -> int:
        """Edits waiting for the debounce plus corrections (of any episode) not acknowledged yet."""
        return int(self._needs_submit) + len(self._inflight)

    def _emit_unsent(self) -> None:
        self.unsent_changed.emit(self.unsent)

    # ------------------------------------------------------------ submitting

    def flush(self) -> str | None:
        """Submit the current annotation now if it has unsubmitted edits; returns the correction uuid."""
        self._timer.stop()
        if not self._needs_submit or self.annotation is None:
            return None
        if self.link is None:  # local mode: the undo stack is the only record
            return None
        try:
            uuid = self.link.submit(self.annotation, self.base_revision)
        except Exception as exc:  # the journal could not be written: keep the edit, say so, retry later
            self.message.emit(f"could not save the correction: {exc}; it will be retried")
            self._timer.start()
            return None
        self._needs_submit = False
        if uuid:
            self._inflight[uuid] = self.annotation
        self._emit_unsent()
        return uuid

    def on_acked(self, uuid: str, revision: int) -> None:
        """BackendLink.correction_acked: our correction became `revision`."""
        sent = self._inflight.pop(uuid, None)
        if sent is None:
            return
        if self.annotation is not None and sent.key == self.annotation.key and revision > self.base_revision:
            self.base_revision = revision
            self.base_revision_changed.emit(revision)
            if (
                not self.has_local_edits
                and edits.content(sent) != edits.content(self.annotation)
                and self.link is not None
            ):
                # The episode was reopened before this edit was stored: what is shown predates it.
                self.link.request_annotation(self.dataset_id, sent.episode)
        self._emit_unsent()

    def on_rejected(self, uuid: str, reason: str) -> None:
        if self._inflight.pop(uuid, None) is not None:
            self.message.emit(f"the backend refused an edit: {reason}")
            self._emit_unsent()

    def owns(self, uuid: str) -> bool:
        return uuid in self._inflight

    def resolve_conflict(self, conflict: Conflict, keep: str, new_uuid: str | None) -> None:
        """After the person chose in the conflict dialog: 'theirs' loads their version, 'mine' keeps ours."""
        ours = self._inflight.pop(conflict.uuid, None)
        current = conflict.current
        if keep == "mine" and new_uuid:
            self._inflight[new_uuid] = ours or conflict.yours or current
        if self.annotation is None or current.key != self.annotation.key:
            self._emit_unsent()
            return
        if keep == "theirs":
            # The link drops our correction and the later ones chained on it: so does the window.
            for uuid in [u for u, a in self._inflight.items() if a.key == current.key]:
                del self._inflight[uuid]
            self._needs_submit = False
            self.load(current, self.suggestion, keep_edits=False)
        else:
            self.base_revision = max(self.base_revision, current.revision)
            self.base_revision_changed.emit(self.base_revision)
        self._emit_unsent()

    # ------------------------------------------------------------ selection and playhead

    def _valid(self, sel: Selection) -> bool:
        if self.annotation is None or sel.kind not in SUGGESTION_FIELDS:
            return False
        items = getattr(self.annotation, sel.kind)
        if not 0 <= sel.index < len(items):
            return False
        return sel.kind != "trajectories" or sel.sub < len(items[sel.index].points)

    def select(self, kind: str | None, index: int = -1, sub: int = -1) -> None:
        sel = None if kind is None else Selection(kind, index, sub)
        if sel is not None and not self._valid(sel):
            sel = None
        if sel != self.selection:
            self.selection = sel
            self.selection_changed.emit(sel)

    def selected_item(self) -> Any:
        if self.selection is None or not self._valid(self.selection):
            return None
        return getattr(self.annotation, self.selection.kind)[self.selection.index]

    def set_playhead(self, t: float) -> None:
        """Move the playhead to the frame shown at t (clamped to the episode)."""
        if self.annotation is None:
            return
        t = frame_at(t, self.fps, self.n_frames) / self.fps
        if t != self.playhead:
            self.playhead = t
            self.playhead_changed.emit(t)

    def set_frame(self, index: int) -> None:
        self.set_playhead(min(max(index, 0), self.n_frames - 1) / self.fps)

    def step(self, frames: int) -> None:
        self.set_frame(self.frame + frames)

    def segment_index(self, t: float | None = None) -> int | None:
        if self.annotation is None:
            return None
        return segment_index_at(self.annotation.segments, self.playhead if t is None else t)

    def jump_segment(self, direction: int) -> None:
        """Up/down: to the start of the previous or next segment."""
        if self.annotation is None:
            return
        target = edits.jump_target(self.annotation.segments, self.playhead, self.fps, direction)
        if target is None:
            return
        self.set_playhead(target)
        i = self.segment_index()
        if i is not None:
            self.select("segments", i)

    # ------------------------------------------------------------ edit plumbing

    def _apply(self, state: Snapshot, selection: Selection | None) -> None:
        self.annotation, self.suggestion = state
        self._needs_submit = True
        self.changed.emit()
        sel = selection if selection is not None and self._valid(selection) else None
        if sel != self.selection:
            self.selection = sel
            self.selection_changed.emit(sel)
        if self.link is not None:
            self._timer.start()
        self._emit_unsent()

    def _human(self) -> str:
        return HUMAN_PREFIX + self.user

    def _edit(
        self,
        text: str,
        merge_key: tuple | None = None,
        selection: Selection | None = None,
        suggestion: Any = ...,
        **changes: Any,
    ) -> bool:
        """Validate the changed annotation and push it as one undoable command."""
        if self.annotation is None:
            return False
        if not self.ready:
            self.message.emit("the episode's annotation is still loading; try again in a moment")
            return False
        if "review" not in changes and self.annotation.review == "unreviewed":
            changes["review"] = "in_review"
        try:
            new = replace(self.annotation, **changes)
        except AnnotationError as exc:
            self.message.emit(f"{text} refused: {exc}")
            return False
        after_sugg = self.suggestion if suggestion is ... else suggestion
        before = Snapshot(self.annotation, self.suggestion)
        after = Snapshot(new, after_sugg)
        if after == before:
            return False
        self.undo_stack.push(
            EditCommand(self, text, before, after, selection or self.selection, merge_key=merge_key)
        )
        return True

    def _snap(self, t: float) -> float:
        return edits.snap(t, self.duration, self.fps)

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
