"""`bimanual`: two ViperX 300 arms (ALOHA) teleoperated with two leader arms, in joint space.

State and action are 14-D, ALOHA's names in radians (`left_waist` ...
`left_wrist_rotate`, `left_gripper`, then `right_*`), grippers as a normalized
opening (1 = open). The arms face each other across the table. Two tasks
share one dataset, each with its own task string: a cube handed from one arm
to the other and put in a bowl, and a peg pushed into a socket that the other
arm holds up. Which arm gives and which holds is fixed per dataset (a lab's
habit); colours too. The task scripts are in core.demo.robots.bimanual_tasks.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from core.demo.episode import Body, Episode
from core.demo.kinematics import PlacedArm, interpolate_joints, vx300s
from core.demo.render import Camera, Look
from core.demo.robots.common import (
    Grip,
    Variant,
    episode_length,
    joint_signals,
    jointed_arm,
    run_arms,
    sample_teleop,
)
from core.demo.robots.single_ee import sample_light
from core.demo.scene import Item, draw_colors
from core.demo.script import Script, segments_from_phases

BASES = {"left": ((-0.47, 0.0), 0.0), "right": ((0.47, 0.0), np.pi)}
SIDE = {"left": -1.0, "right": 1.0}  # sign of x on that arm's side of the table
START = np.array([0.0, -0.96, 1.16, 0.0, -0.3, 0.0])  # ALOHA's usual start pose (recorded radians)
DOWN = -np.pi / 2


def other(arm: str) -> str:
    return "right" if arm == "left" else "left"


@dataclass
class ArmPlan:
    """Where one arm's plan stands: its last planned joints, for IK references."""

    placed: PlacedArm
    q: np.ndarray

    def ik(
        self, tip: np.ndarray, pitch: float, closing: np.ndarray | None = None, exact: bool = False
    ) -> np.ndarray:
        q = self.placed.ik(np.asarray(tip, float), pitch, closing, roll_ref=float(self.q[5]), exact=exact)
        if closing is None:
            q[5] = self.q[5]
        q = interpolate_joints(self.q, q)
        self.q = q
        return q

    def tool(self, q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        pose = self.placed.fk(q)
        return pose.tip[0], pose.tool[0]


@dataclass(frozen=True)
class Scene:
    """One episode's table: the manipulated objects, the target, the task."""

    kind: str  # "handover" or "insertion"
    task: str
    items: dict[str, Item]
    light: tuple[float, float, float]
    brightness: float


@dataclass
class Bimanual(Variant):
    giver: str = field(default="left", init=False)
    holder: str = field(default="left", init=False)

    def __post_init__(self) -> None:
        rng = np.random.default_rng([self.dataset_seed, 3])
        self.name, self.robot_type = "bimanual", "aloha"
        self.model = vx300s(calibration=rng.normal(0, 0.02, 6))
        self.placed = {k: PlacedArm(self.model, *BASES[k]) for k in ("left", "right")}
        joints = [*self.model.joints, "gripper"]
        self.names = [f"{a}_{j}" for a in ("left", "right") for j in joints]
        self.look = Look(
            table_rgb=(150, 146, 138),
            table=(-0.6, 0.6, -0.38, 0.38),
            arm_rgb=(58, 60, 66),
            joint_rgb=(30, 30, 34),
            finger_rgb=(95, 98, 106),
            wall=(150.0, 105.0),
        )
        self.giver = str(rng.choice(["left", "right"]))
        self.holder = str(rng.choice(["left", "right"]))
        c = draw_colors(rng, 5)
        self.colors = {"cube": c[0], "bowl": c[1], "socket": c[2], "peg": c[3], "distractor": c[4]}
        self.cube_size = float(rng.uniform(0.042, 0.052))
        self.socket_size = float(rng.uniform(0.046, 0.056))
        col = self.colors
        self.tasks = {
            "handover": f"pass the {col['cube']} cube from the {self.giver} arm to the {other(self.giver)} arm "
            f"and put it in the {col['bowl']} bowl",
            "insertion": f"hold up the {col['socket']} socket and insert the {col['peg']} peg into it",
        }

    def cameras(self, width: int, height: int) -> list[Camera]:
        return [
            Camera("cam_high", (0.0, -0.42, 0.92), (0.0, 0.02, 0.05), (0, 0, 1), 72.0, width, height),
            Camera("cam_low", (0.0, -0.72, 0.26), (0.0, 0.04, 0.12), (0, 0, 1), 68.0, width, height),
        ]

    def task_kind(self, index: int) -> str:
        """Which task episode `index` records: drawn per dataset, both tasks in any two consecutive."""
        order = np.random.default_rng([self.dataset_seed, 4, index // 2]).permutation(
            ["handover", "insertion"]
        )
        return str(order[index % 2])

    def episode(self, seed: int, fps: int, index: int = 0) -> Episode:
        from core.demo.robots import bimanual_tasks as tasks

        rng = np.random.default_rng(seed)
        kind = self.task_kind(index)
        light, brightness = sample_light(rng)
        tele = sample_teleop(rng)
        plans = {
            k: ArmPlan(self.placed[k], self.model.from_recorded(START + rng.normal(0, 0.03, 6))[0])
            for k in ("left", "right")
        }
        rest = {k: plans[k].q.copy() for k in plans}
        sc = Script(rng, {k: (rest[k], float(rng.uniform(0.05, 0.3))) for k in plans}, tele.style)
        sc.idle(tele.start_idle)
        if kind == "handover":
            items = tasks.handover_items(rng, self)
            plan = tasks.handover(sc, rng, self, plans, rest, items, tele)
        else:
            items = tasks.insertion_items(rng, self)
            plan = tasks.insertion(sc, rng, self, plans, rest, items, tele)
        sc.idle(tele.end_idle)
        scene = Scene(kind, self.tasks[kind], items, light, brightness)
        n = episode_length(sc, tele, fps)
        amp = rng.uniform(0.5, 1.5)
        arms_f = run_arms(
            sc,
            tele,
            fps,
            n,
            rng,
            tremor=np.array([0.0008, 0.0008, 0.001, 0.0015, 0.0015, 0.002]) * amp,
            drift=np.array([0.006, 0.006, 0.007, 0.008, 0.008, 0.01]) * amp,
            grips=plan.grips,
        )
        arms = {k: jointed_arm(k, self.placed[k], f.q, f.g) for k, f in arms_f.items()}
        bodies, ev = plan.bodies(arms, n, fps, tele)
        cols = [joint_signals(rng, self.model, arms_f[k]) for k in ("left", "right")]
        state = np.concatenate([c[0] for c in cols], axis=1)
        action = np.concatenate([c[1] for c in cols], axis=1)
        events = {**plan.events, **ev, "delay": tele.delay}
        events["pauses"] = [
            {"arm": p.arm, "phase": p.phase, "start": p.start + tele.delay / fps, "duration": p.duration}
            for p in sc.pauses
        ]
        for fg in events["failed_grasps"]:
            fg["start"] = round(fg["start"] * fps) + tele.delay
            fg["end"] = round(fg["end"] * fps) + tele.delay
        primary = next(iter(bodies.values())).item
        return Episode(
            robot=self.name,
            task=scene.task,
            fps=fps,
            state=state.astype(np.float32),
            action=action.astype(np.float32),
            names=list(self.names),
            segments=segments_from_phases(sc.phases, fps, tele.delay, n),
            arms=arms,
            bodies=bodies,
            fixtures=plan.fixtures,
            primary_arm=plan.primary_arm,
            target=plan.target,
            light=light,
            brightness=brightness,
            spec=scene,
            events=events,
            record={
                "task_kind": kind,
                "object": {"label": primary.label, "shape": primary.shape, "color": primary.color},
                "target": None
                if plan.target is None
                else {"label": plan.target.label, "shape": plan.target.shape, "color": plan.target.color},
                "distractors": [f.label for f in plan.fixtures if f is not plan.target],
            },
        )


@dataclass
class TaskPlan:
    """What a bimanual task script hands back: its grasps and how the objects move."""

    grips: list[Grip]
    events: dict
    fixtures: list[Item]
    target: Item | None
    primary_arm: str
    bodies: object  # (arms, n, fps, teleop) -> (dict[str, Body], events)


__all__ = ["BASES", "DOWN", "SIDE", "ArmPlan", "Bimanual", "Body", "TaskPlan", "other"]
