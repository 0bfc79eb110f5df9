"""Forward and inverse kinematics of the demo's jointed arms.

Both arms are of the common tabletop kind: a base yaw joint, three pitch
joints in the vertical plane it turns (shoulder, elbow, wrist) and roll joints
about the forearm and the tool axis. The SO-100 (5 joints + jaw) has no forearm
roll; the ViperX 300 of ALOHA (6 joints + parallel gripper) has one. Geometric
angles (radians, zero = every link straight ahead, pitch positive = up) are
mapped to what the robot records through each joint's sign and offset, so the
recorded numbers look like a calibrated robot's, not like textbook angles.

Tool frame: x = approach direction, y = the axis the jaws close along.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

# Internal geometric joint vector, for every arm: pan, shoulder pitch, elbow
# pitch, forearm roll, wrist pitch, wrist roll.
GEOM = ("pan", "shoulder", "elbow", "forearm_roll", "wrist", "roll")


def rot_z(a: np.ndarray | float) -> np.ndarray:
    a = np.asarray(a, float)
    c, s, z, o = np.cos(a), np.sin(a), np.zeros_like(a), np.ones_like(a)
    return np.stack([np.stack([c, -s, z], -1), np.stack([s, c, z], -1), np.stack([z, z, o], -1)], -2)


def _pitch(a: np.ndarray) -> np.ndarray:
    """Rotation about -y: positive angles raise the x axis toward z."""
    c, s, z, o = np.cos(a), np.sin(a), np.zeros_like(a), np.ones_like(a)
    return np.stack([np.stack([c, z, -s], -1), np.stack([z, o, z], -1), np.stack([s, z, c], -1)], -2)


def _roll(a: np.ndarray) -> np.ndarray:
    """Rotation about x (y turns toward z)."""
    c, s, z, o = np.cos(a), np.sin(a), np.zeros_like(a), np.ones_like(a)
    return np.stack([np.stack([o, z, z], -1), np.stack([z, c, -s], -1), np.stack([z, s, c], -1)], -2)


@dataclass(frozen=True)
class ArmPose:
    """Forward kinematics of a trajectory: points (T, 3) and the tool frame (T, 3, 3)."""

    base: np.ndarray
    shoulder: np.ndarray
    elbow: np.ndarray
    wrist: np.ndarray
    tip: np.ndarray  # grasp point, between the jaws
    tool: np.ndarray  # columns: approach, closing axis, normal


@dataclass(frozen=True)
class ArmModel:
    """Link geometry, joint names and the recorded units of one arm type."""

    joints: tuple[str, ...]  # recorded joint names (the gripper excluded)
    geom_index: tuple[int, ...]  # which geometric joint each recorded joint drives
    sign: tuple[float, ...]
    offset: tuple[float, ...]  # radians, recorded = scale * (sign * geom + offset)
    scale: float  # 1 for radians, 180/pi for degrees
    shoulder_height: float  # pitch axis above the base plate
    shoulder_forward: float
    upper: tuple[float, float]  # shoulder -> elbow: along the link, perpendicular (up)
    forearm: float  # elbow -> wrist pitch axis
    hand: float  # wrist pitch axis -> grasp point
    finger: float  # finger length (rendering)
    max_gap: float  # jaw opening at the tips when fully open, metres
    link_width: tuple[float, float, float]  # upper, forearm, hand (rendering)
    base_size: tuple[float, float]  # radius, height (rendering)

    def gap(self, g: np.ndarray) -> np.ndarray:
        """Jaw opening (metres) of a recorded gripper value."""
        raise NotImplementedError

    def gripper_value(self, gap: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    # ------------------------------------------------------------ units

    def to_recorded(self, geom: np.ndarray) -> np.ndarray:
        """(T, 6) geometric radians -> (T, n) recorded joint values."""
        geom = np.atleast_2d(geom)
        cols = [self.sign[k] * geom[:, j] + self.offset[k] for k, j in enumerate(self.geom_index)]
        return np.stack(cols, axis=1) * self.scale

    def from_recorded(self, rec: np.ndarray) -> np.ndarray:
        rec = np.atleast_2d(rec) / self.scale
        geom = np.zeros((len(rec), len(GEOM)))
        for k, j in enumerate(self.geom_index):
            geom[:, j] = (rec[:, k] - self.offset[k]) * self.sign[k]
        return geom


@dataclass(frozen=True)
class PlacedArm:
    """An arm model bolted to the table at `base` (x, y), facing `yaw`."""

    model: ArmModel
    base: tuple[float, float]
    yaw: float
    _b: np.ndarray = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_b", np.array([self.base[0], self.base[1], 0.0]))

    def fk(self, geom: np.ndarray) -> ArmPose:
        """Forward kinematics of (T, 6) geometric joint angles."""
        m = self.model
        q = np.atleast_2d(np.asarray(geom, float))
        n = len(q)
        r0 = rot_z(self.yaw + q[:, 0])
        base = np.repeat(self._b[None], n, 0)
        shoulder = base + np.array([0, 0, m.shoulder_height]) + r0 @ np.array([m.shoulder_forward, 0, 0])
        r1 = r0 @ _pitch(q[:, 1])
        elbow = shoulder + r1 @ np.array([m.upper[0], 0, m.upper[1]])
        r2 = r1 @ _pitch(q[:, 2])
        wrist = elbow + r2 @ np.array([m.forearm, 0, 0])
        r3 = r2 @ _roll(q[:, 3]) @ _pitch(q[:, 4]) @ _roll(q[:, 5])
        tip = wrist + r3 @ np.array([m.hand, 0, 0])
        return ArmPose(base, shoulder, elbow, wrist, tip, r3)

    def ik(
        self,
        tip: np.ndarray,
        pitch: float,
        closing: np.ndarray | None = None,
        roll_ref: float = 0.0,
        elbow_up: bool = True,
        exact: bool = False,
    ) -> np.ndarray:
        """Geometric joints (6,) that put the grasp point at `tip` with the tool pitched `pitch`.

        `closing` (a world direction perpendicular to the approach) sets the wrist
        roll so the jaws close along it; of the two rolls that do (the jaws are
        symmetric) the one nearer `roll_ref` is taken, unless `exact` asks for the jaw
        axis to point along `closing` itself (when what is held is not symmetric). Raises ValueError when the
        point is out of reach, so a scene that cannot be done is never written.
        """
        m = self.model
        d = np.asarray(tip, float) - self._b - np.array([0, 0, m.shoulder_height])
        c, s = np.cos(-self.yaw), np.sin(-self.yaw)
        dx, dy = c * d[0] - s * d[1], s * d[0] + c * d[1]
        pan = float(np.arctan2(dy, dx))
        r = float(np.hypot(dx, dy)) - m.shoulder_forward
        z = float(d[2])
        wr, wz = r - m.hand * np.cos(pitch), z - m.hand * np.sin(pitch)
        l1, beta = float(np.hypot(*m.upper)), float(np.arctan2(m.upper[1], m.upper[0]))
        l2 = m.forearm
        dist = float(np.hypot(wr, wz))
        cos2 = (dist**2 - l1**2 - l2**2) / (2 * l1 * l2)
        if not -1.0 <= cos2 <= 1.0:
            raise ValueError(f"tip {np.round(tip, 3).tolist()} is out of reach (wrist at {dist:.3f} m)")
        psi2 = -np.arccos(cos2) if elbow_up else np.arccos(cos2)
        psi1 = np.arctan2(wz, wr) - np.arctan2(l2 * np.sin(psi2), l1 + l2 * np.cos(psi2))
        q1 = psi1 - beta
        q2 = psi2 + beta
        q4 = pitch - (q1 + q2)
        geom = np.array([pan, q1, q2, 0.0, q4, 0.0])
        if closing is not None:
            frame = self.fk(geom).tool[0]
            cvec = np.asarray(closing, float)
            roll = float(np.arctan2(cvec @ frame[:, 2], cvec @ frame[:, 1]))
            if exact:
                roll += 2 * np.pi * np.round((roll_ref - roll) / (2 * np.pi))
            else:
                roll += np.pi * np.round((roll_ref - roll) / np.pi)
            geom[5] = roll
        return geom


def _wrap(a: np.ndarray) -> np.ndarray:
    return (a + np.pi) % (2 * np.pi) - np.pi


@dataclass(frozen=True)
class SO100(ArmModel):
    """SO-100 / SO-101: degrees, gripper 0 (closed) .. 100 (fully open), like lerobot's so100_follower."""

    def gap(self, g: np.ndarray) -> np.ndarray:
        return self.max_gap * np.sin(np.radians(np.clip(g, 0.0, 100.0) * 0.9))

    def gripper_value(self, gap: np.ndarray) -> np.ndarray:
        return np.degrees(np.arcsin(np.clip(np.asarray(gap) / self.max_gap, 0.0, 1.0))) / 0.9


@dataclass(frozen=True)
class ViperX(ArmModel):
    """ViperX 300 (ALOHA): radians, gripper as a normalized opening 0 (closed) .. 1 (open)."""

    def gap(self, g: np.ndarray) -> np.ndarray:
        return self.max_gap * np.clip(g, 0.0, 1.0)

    def gripper_value(self, gap: np.ndarray) -> np.ndarray:
        return np.clip(np.asarray(gap) / self.max_gap, 0.0, 1.0)


def so100(calibration: np.ndarray | None = None) -> SO100:
    """An SO-100 arm; `calibration` (5,) adds a per-robot offset in degrees to each joint."""
    cal = np.zeros(5) if calibration is None else np.radians(calibration)
    # Folded rest (geometric 0, 100, -165, 0, 55, 0 deg) reads about 0, -100, 95, 70, 0.
    offsets = np.radians([0.0, 0.0, -70.0, 15.0, 0.0]) + cal
    return SO100(
        joints=("shoulder_pan", "shoulder_lift", "elbow_flex", "wrist_flex", "wrist_roll"),
        geom_index=(0, 1, 2, 4, 5),
        sign=(1.0, -1.0, -1.0, 1.0, 1.0),
        offset=tuple(float(v) for v in offsets),
        scale=float(180.0 / np.pi),
        shoulder_height=0.09,
        shoulder_forward=0.03,
        upper=(0.112, 0.028),
        forearm=0.135,
        hand=0.095,
        finger=0.055,
        max_gap=0.075,
        link_width=(0.034, 0.03, 0.032),
        base_size=(0.045, 0.06),
    )


def vx300s(calibration: np.ndarray | None = None) -> ViperX:
    """A ViperX 300 6-DoF arm as ALOHA records it (Interbotix joint zero: upper arm vertical)."""
    cal = np.zeros(6) if calibration is None else np.asarray(calibration, float)
    # geometric -> Interbotix: shoulder = pi/2 - g1, elbow = -g2 - pi/2, wrist_angle = -g4.
    offsets = np.array([0.0, np.pi / 2, -np.pi / 2, 0.0, 0.0, 0.0]) + cal
    return ViperX(
        joints=("waist", "shoulder", "elbow", "forearm_roll", "wrist_angle", "wrist_rotate"),
        geom_index=(0, 1, 2, 3, 4, 5),
        sign=(1.0, -1.0, -1.0, 1.0, -1.0, 1.0),
        offset=tuple(float(v) for v in offsets),
        scale=1.0,
        shoulder_height=0.127,
        shoulder_forward=0.0,
        upper=(0.3, -0.06),
        forearm=0.3,
        hand=0.155,
        finger=0.06,
        max_gap=0.085,
        link_width=(0.045, 0.04, 0.04),
        base_size=(0.06, 0.08),
    )


def interpolate_joints(q0: np.ndarray, q1: np.ndarray) -> np.ndarray:
    """q1 re-expressed so that rolls take the short way from q0 (a leader arm never spins 300 degrees)."""
    q1 = np.asarray(q1, float).copy()
    for j in (3, 5):
        q1[j] = q0[j] + _wrap(q1[j] - q0[j])
    return q1
