"""One simulated episode: what every variant hands to the renderer and the writer.

An episode holds the recorded signals (state, action and their names), the
ground-truth phases, and the true scene per frame: each arm's drawable pose and
grasp point, each manipulated object's pose. Objects move only by physics the
episode can state: held by a gripper (rigidly, from the frame its jaws meet it),
carried by another object (a peg in its socket), pushed, or falling to rest on
a support when let go.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from core.demo.kinematics import ArmPose, PlacedArm, rot_z
from core.demo.scene import Item

GRAVITY = 9.81


@dataclass
class Body:
    """A manipulated object and its pose per frame."""

    item: Item
    pos: np.ndarray  # (T, 3) centre
    rot: np.ndarray  # (T, 3, 3) body axes as columns
    hidden: np.ndarray | None = None  # (T,) length along -x hidden inside another body

    @property
    def label(self) -> str:
        return self.item.label


@dataclass
class Arm:
    """One arm's true (follower) motion, for drawing and for ground truth."""

    name: str  # "main", "left", "right"
    tip: np.ndarray  # (T, 3) grasp point between the jaws
    tool: np.ndarray  # (T, 3, 3) approach, closing axis, normal
    gap: np.ndarray  # (T,) jaw opening in metres
    placed: PlacedArm | None = None  # jointed arms: the model and where it stands
    pose: ArmPose | None = None  # its forward kinematics per frame


@dataclass
class Episode:
    """Everything one variant simulated for one episode."""

    robot: str
    task: str
    fps: int
    state: np.ndarray  # (T, D) float32, what the follower's sensors read
    action: np.ndarray  # (T, D) float32, the leader's command
    names: list[str]
    segments: list[dict]
    arms: dict[str, Arm]
    bodies: dict[str, Body]  # manipulated objects by label, the primary first
    fixtures: list[Item]  # things that stay put: targets, distractors
    primary_arm: str
    target: Item | None
    light: tuple[float, float, float]
    brightness: float
    spec: Any = None  # the variant's sampled scene (its `task` is the task string)
    events: dict[str, Any] = field(default_factory=dict)
    record: dict[str, Any] = field(default_factory=dict)  # extra ground-truth fields

    @property
    def length(self) -> int:
        return len(self.state)

    @property
    def primary(self) -> Body:
        return next(iter(self.bodies.values()))

    # The single-ee variant's older attribute names.
    @property
    def grasp_frame(self) -> int:
        return int(self.events["grasp_frame"])

    @property
    def release_frame(self) -> int:
        return int(self.events["release_frame"])


def resting(item: Item, z: float, n: int) -> tuple[np.ndarray, np.ndarray]:
    """(pos, rot) of `item` lying still at its spot with its bottom at height z."""
    pos = np.repeat(np.array([[item.xy[0], item.xy[1], z + item.size[2] / 2]]), n, 0)
    rot = np.repeat(rot_z(item.yaw)[None], n, 0)
    return pos, rot


def _frame_of(pos: np.ndarray, rot: np.ndarray) -> np.ndarray:
    t = np.eye(4)
    t[:3, :3], t[:3, 3] = rot, pos
    return t


def carry(
    pos: np.ndarray,
    rot: np.ndarray,
    holds: list[tuple[int, int, np.ndarray, np.ndarray]],
    support: float,
    height: float,
    fps: float,
) -> None:
    """Move a body (in place) with whatever holds it.

    `holds` are (attach frame, detach frame, holder positions (T, 3), holder
    frames (T, 3, 3)); a later attach takes over from an earlier one (a handover),
    and the body keeps its pose relative to the holder from the frame it was
    taken. When nothing holds it, it falls straight down to rest on `support`
    (the height its bottom rests at).
    """
    n = len(pos)
    holds = sorted(holds, key=lambda h: h[0])
    owner = np.full(n, -1)
    for k, (a, d, _, _) in enumerate(holds):
        owner[a:d] = k  # later attaches override earlier ones where they overlap
    # Where a later hold ends while an earlier one still holds, the earlier one carries on.
    for k, (a, d, _, _) in enumerate(holds):
        for i in range(a, min(d, n)):
            if owner[i] == -1:
                owner[i] = k
    rel: dict[int, np.ndarray] = {}
    fall_from: int | None = None
    held = False
    for i in range(n):
        k = int(owner[i])
        if k >= 0:
            _, _, hp, hr = holds[k]
            if i == 0 or owner[i - 1] != k:
                prev = i - 1 if i > 0 else 0
                rel[k] = np.linalg.inv(_frame_of(hp[prev], hr[prev])) @ _frame_of(pos[prev], rot[prev])
            t = _frame_of(hp[i], hr[i]) @ rel[k]
            pos[i], rot[i] = t[:3, 3], t[:3, :3]
            fall_from, held = None, True
            continue
        if i == 0 or not held:
            continue
        pos[i], rot[i] = pos[i - 1], rot[i - 1]
        rest = support + height / 2
        if pos[i, 2] > rest + 1e-6:
            if fall_from is None:
                fall_from = i
            dt = (i - fall_from + 1) / fps
            pos[i, 2] = max(rest, pos[i - 1, 2] - GRAVITY * dt / fps)
        else:
            pos[i, 2] = rest


def first_frame(mask: np.ndarray, start: int = 0) -> int | None:
    idx = np.flatnonzero(mask[start:])
    return int(idx[0]) + start if len(idx) else None
