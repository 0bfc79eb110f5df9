"""The ground-truth record of one episode, computed from the simulator's state.

Image positions are normalized to [0, 1] of the camera frame and come from the
same projection that draws the pixels. An object's box bounds its visible solid
(a peg's part inside its socket is not part of it) regardless of occlusion by
an arm, and is None (JSON null) in a frame where the object is wholly out of
view. Gripper points are the grasp point between the jaws, clipped to the
image border.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from core.demo.episode import Episode
from core.demo.render import Camera, body_vertices, fixture_pose, item_solids


def camera_key(name: str) -> str:
    return f"observation.images.{name}"


def _boxes(ep: Episode, cam: Camera, label: str) -> list[list[float] | None]:
    body = ep.bodies[label]
    return [cam.box(body_vertices(body, i)) for i in range(ep.length)]


def episode_record(index: int, seed: int, ep: Episode, cameras: list[Camera]) -> dict[str, Any]:
    """The `episodes[i]` entry of ground_truth.json (layout in core.demo.writer)."""
    fps = ep.fps
    keys = {c.name: camera_key(c.name) for c in cameras}
    objects = {label: {keys[c.name]: _boxes(ep, c, label) for c in cameras} for label in ep.bodies}
    grippers = {
        name: {keys[c.name]: c.normalized(arm.tip).astype(float).tolist() for c in cameras}
        for name, arm in ep.arms.items()
    }
    primary = ep.primary.label
    ev = ep.events
    contacts = []
    for g in ev["grasps"]:
        f = g["grasp_frame"]
        for c in cameras:
            x, y = grippers[g["arm"]][keys[c.name]][f]
            contacts.append({"t": f / fps, "camera": keys[c.name], "x": x, "y": y, "arm": g["arm"]})
    record: dict[str, Any] = {
        "episode_index": index,
        "seed": seed,
        "task": ep.task,
        "length": ep.length,
        **ep.record,
        "segments": ep.segments,
        "boxes": objects[primary],
        "objects": objects,
        "gripper": grippers[ep.primary_arm],
        "grippers": grippers,
        "primary_arm": ep.primary_arm,
        "contacts": contacts,
        "grasp_frame": int(ev["grasp_frame"]),
        "release_frame": int(ev["release_frame"]),
        "grasps": ev["grasps"],
        "retry": bool(ev["failed_grasps"]),
        "failed_grasps": ev["failed_grasps"],
        "pauses": ev["pauses"],
        "closed_gripper": ev["closed_level"],
        "action_lead_frames": int(ev["delay"]),
    }
    if ep.target is not None:
        verts = np.concatenate([s.vertices for s in item_solids(ep.target, *fixture_pose(ep.target))])
        record["target_boxes"] = {keys[c.name]: c.box(verts) for c in cameras}
    return record
