"""Which dimensions belong to which arm, and each arm's gripper.

A bimanual robot's state is one vector: ALOHA writes `left_waist ... left_gripper,
right_waist ... right_gripper`, others `arm0_joint1`, `l_shoulder`, or nothing
but `motor_0 .. motor_13`. The arms are found from the names where they say
(a token that splits the dimensions into groups with one gripper each), and
otherwise from the grippers found by shape: arm layouts are contiguous blocks
(joints then gripper, or gripper then joints), and the block split is kept only if
the joints of a block move together more than with the other block's. Everything
downstream then works per arm on a view of the signals that holds only that
arm's dimensions, so a one-arm engine reads each arm as if it were alone.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from typing import Any

import numpy as np

from backend.engines.kinematic.gripper import (
    GripperChannel,
    dim_speeds,
    find_gripper,
    gripper_shape,
    paired_command,
)
from backend.engines.kinematic.signals import GRIPPER_WORDS, feature_order
from core.dataset import EpisodeSignals

SIDE_WORDS = {"left": "left", "right": "right", "l": "left", "r": "right", "lft": "left", "rgt": "right"}
# Tokens that name an arm by number: arm0, arm_1, robot2, follower1 ...
ARM_NUMBER = re.compile(r"^(?:arm|robot|follower|leader|manipulator|a)?(\d)$")


def _toks(name: str) -> list[str]:
    return [t for t in re.split(r"[^a-z0-9]+", name.lower()) if t]


def _is_gripper_name(name: str) -> bool:
    return any(w in t for t in _toks(name) for w in GRIPPER_WORDS)


@dataclass
class Arm:
    """One arm: its name, its dimensions (in the main feature), its gripper, and its own view."""

    name: str
    dims: list[int]
    found_by: str  # "name", "layout" (contiguous blocks around shape-found grippers) or "single"
    signals: EpisodeSignals
    gripper: GripperChannel | None = None
    gripper_notes: dict[str, Any] | None = None

    @property
    def label(self) -> str:
        return self.name


def _side_key(toks: list[str]) -> str | None:
    for t in toks:
        if t in SIDE_WORDS:
            return SIDE_WORDS[t]
    for t in toks[:2]:
        m = ARM_NUMBER.match(t)
        if m:
            return f"arm{m.group(1)}"
    return None


def groups_by_name(names: list[str]) -> dict[str, list[int]] | None:
    """Arm name -> dims, when the names split into 2+ arms with at most one gripper each."""
    if len(names) < 4:
        return None
    keys = [_side_key(_toks(n)) for n in names]
    if any(k is None for k in keys):
        return None
    groups: dict[str, list[int]] = {}
    for i, k in enumerate(keys):
        groups.setdefault(k, []).append(i)  # type: ignore[arg-type]
    if len(groups) < 2 or any(len(g) < 2 for g in groups.values()):
        return None
    grippers = Counter(k for k, n in zip(keys, names, strict=True) if _is_gripper_name(n))
    if any(c > 1 for c in grippers.values()):
        return None
    return groups


def _co_motion(speeds: list[np.ndarray | None], a: list[int], b: list[int]) -> tuple[float, float]:
    """Mean speed correlation within the blocks and across them (joints only)."""

    def corr(i: int, j: int) -> float | None:
        si, sj = speeds[i], speeds[j]
        if si is None or sj is None or np.std(si) == 0 or np.std(sj) == 0:
            return None
        return float(np.corrcoef(si, sj)[0, 1])

    within = [
        c for blk in (a, b) for x, i in enumerate(blk) for j in blk[x + 1 :] if (c := corr(i, j)) is not None
    ]
    across = [c for i in a for j in b if (c := corr(i, j)) is not None]
    return (float(np.mean(within)) if within else 0.0, float(np.mean(across)) if across else 0.0)


def groups_by_layout(
    arr: np.ndarray, fps: float, threshold: float, command: np.ndarray | None = None
) -> dict[str, list[int]] | None:
    """Two contiguous blocks around two shape-found grippers, if the joints say they are two arms."""
    d = arr.shape[1]
    if d < 6:
        return None
    speeds = dim_speeds(arr, fps)
    others = [np.sum([s for j, s in enumerate(speeds) if j != i and s is not None], axis=0) for i in range(d)]
    scores = {
        i: gripper_shape(
            arr[:, i],
            fps,
            others[i] if np.ndim(others[i]) else None,
            None if command is None else command[:, i],
        )
        for i in range(d)
    }
    # The two likeliest grippers: those that stall against their command first, then by shape.
    ranked = sorted(
        (i for i, sc in scores.items() if sc.score >= threshold and sc.transitions >= 2),
        key=lambda i: (scores[i].stall >= 0.05, scores[i].score),
        reverse=True,
    )
    if len(ranked) < 2:
        return None
    if (
        len(ranked) > 2
        and not (scores[ranked[1]].stall >= 0.05 > scores[ranked[2]].stall)
        and scores[ranked[1]].score - scores[ranked[2]].score < 0.2
    ):
        return None  # more than two look like grippers and nothing sets two apart: no split to trust
    g0, g1 = sorted(ranked[:2])
    grips = [g0, g1]
    # joints then gripper (ALOHA, SO-100) or gripper then joints
    for blocks in (
        (list(range(0, g0 + 1)), list(range(g0 + 1, d))),
        (list(range(0, g1)), list(range(g1, d))),
    ):
        a, b = blocks
        if not (len(a) >= 2 and len(b) >= 2 and sum(g in a for g in grips) == 1):
            continue
        ja, jb = [i for i in a if i not in grips], [i for i in b if i not in grips]
        within, across = _co_motion(speeds, ja, jb)
        if within > across + 0.1:
            return {"arm0": a, "arm1": b}
    return None


def _view(sig: EpisodeSignals, feature: str, dims: list[int]) -> EpisodeSignals:
    """The signals of one arm: its dims of `feature`, and the same-named dims of every other
    feature with that layout (the action mirrors the state)."""
    names = sig.names.get(feature, [])
    wanted = [names[i] for i in dims if i < len(names)]
    out = EpisodeSignals(episode=sig.episode, timestamps=sig.timestamps, frame_index=sig.frame_index)
    for f, arr in sig.channels.items():
        fn = sig.names.get(f, [])
        if f != feature and fn != names:
            continue
        idx = dims
        out.channels[f] = arr[:, idx]
        out.names[f] = [fn[i] for i in idx] if len(fn) == arr.shape[1] else [f"{f}[{i}]" for i in idx]
        if f in sig.ranges:
            out.ranges[f] = sig.ranges[f][idx]
    if not out.channels:
        out.channels[feature] = sig.channels[feature][:, dims]
        out.names[feature] = wanted
    return out


def find_arms(sig: EpisodeSignals, fps: float, threshold: float) -> tuple[list[Arm], dict[str, Any]]:
    """The arms of an episode (one or more), each with its gripper if it has one."""
    notes: dict[str, Any] = {}
    order = feature_order(sig)
    if not order:
        return [], {"arms": "no numeric signals"}
    feature = order[0]
    arr = sig.channels[feature]
    names = sig.names.get(feature, [])
    groups = groups_by_name(names) if len(names) == arr.shape[1] else None
    how = "name"
    named_grippers = sum(1 for n in names if _is_gripper_name(n))
    if groups is None and named_grippers == 1:
        # One gripper by name and no arm names: one arm (no need to look for two by shape).
        gripper, gnotes = find_gripper(sig, fps, threshold)
        return [Arm("arm", list(range(arr.shape[1])), "single", sig, gripper, gnotes)], notes
    if groups is None:
        command = paired_command(sig, feature)
        groups = groups_by_layout(arr.astype(np.float64), fps, threshold, command) if len(arr) >= 8 else None
        how = "layout"
    if groups is None:
        gripper, gnotes = find_gripper(sig, fps, threshold)
        return [Arm("arm", list(range(arr.shape[1])), "single", sig, gripper, gnotes)], notes
    arms = []
    for name, dims in groups.items():
        view = _view(sig, feature, dims)
        gripper, gnotes = find_gripper(view, fps, threshold)
        arms.append(Arm(name, dims, how, view, gripper, gnotes))
    notes["arms"] = {a.name: [names[i] if i < len(names) else str(i) for i in a.dims] for a in arms}
    notes["arms_found_by"] = how
    return arms, notes
