"""What every variant shares: the teleoperator's episode habits, grasps that hold, and the variant base.

A grasp is scripted as a gripper stroke; whether it holds is physics: the
follower's jaws stall where they meet the object (the closed level depends on
the object's width and on how hard the operator squeezes), the object rides
with the gripper from the frame the jaws meet it and is let go the frame they
open past it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from core.demo.episode import Arm, first_frame
from core.demo.kinematics import ArmModel, PlacedArm
from core.demo.motion import follow, follow_gripper, hand_noise, sense
from core.demo.render import Camera, Look
from core.demo.script import Script, Style


@dataclass(frozen=True)
class Teleop:
    """One episode's operator and link: how late and how smoothly the follower tracks."""

    delay: int  # frames the follower lags the leader
    tau: float  # follower lag time constant, frames
    style: Style
    retry: bool  # this episode has a failed grasp and a retry
    start_idle: float  # seconds
    end_idle: float


def sample_teleop(rng: np.random.Generator, retry_prob: float = 0.25) -> Teleop:
    return Teleop(
        delay=int(rng.integers(2, 6)),
        tau=float(rng.uniform(0.6, 2.0)),
        style=Style(pause_prob=float(rng.uniform(0.08, 0.25))),
        retry=bool(rng.random() < retry_prob),
        start_idle=float(rng.uniform(0.4, 2.2)),
        end_idle=float(rng.uniform(0.4, 1.8)),
    )


@dataclass
class Grip:
    """A scripted grasp that holds: when the jaws start closing and when they have opened again."""

    arm: str
    obj: str
    close_start: float  # leader seconds
    release_end: float | None = None
    stall: float = math.nan  # gripper value where the jaws meet the object


@dataclass
class FollowedArm:
    lead_q: np.ndarray
    lead_g: np.ndarray
    q: np.ndarray  # follower, true
    g: np.ndarray


def episode_length(script: Script, teleop: Teleop, fps: float) -> int:
    """Frames from the start to the end of the script's last (idle) phase, in follower time."""
    return math.ceil(script.end * fps) + teleop.delay + 1


def run_arms(
    script: Script,
    teleop: Teleop,
    fps: float,
    n: int,
    rng: np.random.Generator,
    tremor: np.ndarray,
    drift: np.ndarray,
    grips: list[Grip],
    closes_up: bool = False,
) -> dict[str, FollowedArm]:
    """Leader tracks (with tremor and drift) and the follower's answer, per arm."""
    out = {}
    for name, (q, g) in script.trajectories(n, fps).items():
        lead_q = q + hand_noise(rng, n, fps, tremor, drift)
        stall = np.full(n, np.nan)
        for gr in grips:
            if gr.arm != name:
                continue
            a = round(gr.close_start * fps) + teleop.delay
            b = n if gr.release_end is None else round(gr.release_end * fps) + teleop.delay + 1
            stall[a:b] = gr.stall
        out[name] = FollowedArm(
            lead_q,
            g,
            follow(lead_q, teleop.delay, teleop.tau),
            follow_gripper(g, teleop.delay, 1.5, stall, closes_up),
        )
    return out


def hold_frames(gap: np.ndarray, grip: Grip, width: float, fps: float, delay: int) -> tuple[int, int]:
    """(attach, detach) frames of a grasp that holds, from the follower's jaw opening."""
    n = len(gap)
    a0 = min(round(grip.close_start * fps) + delay, n - 1)
    attach = first_frame(gap <= width + 0.0015, a0)
    if attach is None:
        raise RuntimeError(f"the {grip.arm} gripper never closed on the {grip.obj}")
    detach = first_frame(gap > width + 0.002, attach + 1)
    return attach, n if detach is None else detach


def grasp_roll_axis(yaw: float, ref: float = 0.0) -> float:
    """The object yaw, turned by quarter turns to the one nearest `ref` (a box has four grasps)."""
    return float(yaw + (np.pi / 2) * np.round((ref - yaw) / (np.pi / 2)))


def reach_time(distance: float, base: float = 0.45, k: float = 1.9) -> float:
    """Nominal seconds for a hand motion of `distance` metres (slow near, faster per metre far)."""
    return base + k * math.sqrt(max(distance, 0.0))


@dataclass
class Variant:
    """A robot and its tasks; one instance per dataset (its seed picks what stays fixed per dataset)."""

    dataset_seed: int = 0
    name: str = field(default="", init=False)
    robot_type: str = field(default="", init=False)
    names: list[str] = field(default_factory=list, init=False)
    look: Look = field(default_factory=Look, init=False)

    def cameras(self, width: int, height: int) -> list[Camera]:
        raise NotImplementedError

    def episode(self, seed: int, fps: int, index: int = 0):
        raise NotImplementedError


def jointed_arm(name: str, placed: PlacedArm, q: np.ndarray, g: np.ndarray) -> Arm:
    """The drawable arm of a follower joint track (geometric radians) and gripper values."""
    pose = placed.fk(q)
    return Arm(name, pose.tip, pose.tool, placed.model.gap(g), placed=placed, pose=pose)


def joint_signals(rng: np.random.Generator, model: ArmModel, f: FollowedArm) -> tuple[np.ndarray, np.ndarray]:
    """(state, action) columns of one jointed arm in its recorded units: joints then gripper.

    The follower's encoders read the state; the leader arm's encoders (their own
    noise) read the action. Both quantize to the servo's resolution.
    """
    joint_step = model.scale * 2 * np.pi / 4096
    grip_step = 100 / 4096 if model.scale > 1 else 1 / 4096
    n_j = len(model.joints)
    steps = np.array([joint_step] * n_j + [grip_step])
    state = np.concatenate([model.to_recorded(f.q), f.g[:, None]], axis=1)
    action = np.concatenate([model.to_recorded(f.lead_q), f.lead_g[:, None]], axis=1)
    sig_s = np.array([joint_step * 1.2] * n_j + [grip_step * 3])
    sig_a = np.array([joint_step * 1.6] * n_j + [grip_step * 4])
    return sense(rng, state, sig_s, steps), sense(rng, action, sig_a, steps)
