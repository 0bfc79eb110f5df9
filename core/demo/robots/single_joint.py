"""`single-joint`: an SO-100 arm teleoperated with a leader arm, recorded in joint space.

State and action are the six values lerobot's so100_follower records
(`shoulder_pan.pos` ... `wrist_roll.pos` in degrees, `gripper.pos` 0..100); no
end-effector pose anywhere. The operator moves a leader arm, so motions are
joint-space sweeps between poses (inverse kinematics of where the hand goes) and
the gripper does not travel on straight lines. Two tasks share one table and one
dataset, each with its own task string: pick the cube and put it in the bowl,
or push the block onto the square. What the scene holds is fixed per dataset;
the layout changes every episode.

Phases: pick: idle, reach_cube (the jaws open on the way), grasp_cube, lift_cube,
move_to_bowl, place_in_bowl, release_cube, retreat (the jaws close on the way
home), idle. Push: idle, reach_block (to behind the block, jaws closing on the
way: a pusher, not a grasp), push_block (from the first contact until the
push stops), retreat, idle. Failed grasps and retries happen in pick episodes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from core.demo.episode import Body, Episode, carry, resting
from core.demo.kinematics import PlacedArm, interpolate_joints, so100
from core.demo.render import Camera, Look
from core.demo.robots.common import (
    Grip,
    Teleop,
    Variant,
    episode_length,
    grasp_roll_axis,
    hold_frames,
    joint_signals,
    jointed_arm,
    reach_time,
    run_arms,
    sample_teleop,
)
from core.demo.robots.single_ee import sample_light
from core.demo.scene import Item, Layout, draw_colors, object_size, support_height
from core.demo.script import Script, segments_from_phases

BASE = (0.0, 0.20)
BASE_YAW = -np.pi / 2  # facing the laptop camera, toward -y
REST = np.radians([0.0, 100.0, -165.0, 0.0, 55.0, 0.0])
R_RANGE = (0.13, 0.235)  # reachable ring around the shoulder, metres
ANGLE = np.radians(62)  # half-width of the reachable sector
DOWN = -np.pi / 2


def _reachable(x: float, y: float, r: float) -> bool:
    dx, dy = x - BASE[0], y - BASE[1]
    dist = np.hypot(dx, dy)
    ang = np.arctan2(dy, dx) - BASE_YAW
    ang = (ang + np.pi) % (2 * np.pi) - np.pi
    return R_RANGE[0] + r * 0.3 <= dist <= R_RANGE[1] - r * 0.3 and abs(ang) <= ANGLE


@dataclass(frozen=True)
class TableSpec:
    cube: Item
    bowl: Item
    block: Item
    square: Item
    light: tuple[float, float, float]
    brightness: float
    task_kind: str  # "pick" or "push"
    task: str


@dataclass
class SingleJoint(Variant):
    def __post_init__(self) -> None:
        rng = np.random.default_rng([self.dataset_seed, 1])
        self.name, self.robot_type = "single-joint", "so100_follower"
        self.model = so100(calibration=rng.normal(0, 2.0, 5))
        self.names = [f"{j}.pos" for j in self.model.joints] + ["gripper.pos"]
        self.look = Look(
            table_rgb=(128, 132, 138),
            table=(-0.32, 0.32, -0.16, 0.30),
            arm_rgb=(232, 230, 222),
            joint_rgb=(38, 38, 42),
        )
        c = draw_colors(rng, 4)
        self.colors = {"cube": c[0], "bowl": c[1], "block": c[2], "square": c[3]}
        self.cube_size = float(rng.uniform(0.024, 0.034))
        self.block_size = float(rng.uniform(0.026, 0.034))
        self.placed = PlacedArm(self.model, BASE, BASE_YAW)
        col = self.colors
        self.tasks = {
            "pick": f"pick up the {col['cube']} cube and put it in the {col['bowl']} bowl",
            "push": f"push the {col['block']} block onto the {col['square']} square",
        }

    def cameras(self, width: int, height: int) -> list[Camera]:
        return [
            Camera("laptop", (0.0, -0.40, 0.34), (0.0, 0.07, 0.04), (0, 0, 1), 58.0, width, height),
            Camera("phone", (0.40, -0.12, 0.46), (0.0, 0.07, 0.0), (0, 0, 1), 55.0, width, height),
        ]

    def task_kind(self, index: int) -> str:
        """Which task episode `index` records: drawn per dataset, both tasks in any two consecutive."""
        order = np.random.default_rng([self.dataset_seed, 2, index // 2]).permutation(["pick", "push"])
        return str(order[index % 2])

    def _layout(self, rng: np.random.Generator, kind: str) -> tuple[Item, Item, Item, Item]:
        for _ in range(50):
            try:
                lay = Layout(rng, (-0.3, 0.3), (-0.15, 0.30), _reachable, gap=0.025)
                col = self.colors
                bowl = lay.place("bowl", col["bowl"], (0.10, 0.10, 0.03), yaw_range=0.3)
                square = lay.place("square", col["square"], (0.07, 0.07, 0.002), yaw_range=0.4)
                block = lay.place(
                    "block", col["block"], (self.block_size,) * 3, away_from=(*square.xy, 0.085)
                )
                d = np.hypot(block.xy[0] - square.xy[0], block.xy[1] - square.xy[1])
                cube = lay.place(
                    "cube", col["cube"], object_size("cube", self.cube_size), away_from=(*bowl.xy, 0.1)
                )
                if kind == "push" and not (0.08 <= d <= 0.15 and self._push_reachable(block, square)):
                    continue
                return cube, bowl, block, square
            except RuntimeError:
                continue
        raise RuntimeError("could not lay out the single-joint table")

    def _push_reachable(self, block: Item, square: Item) -> bool:
        d = np.array(square.xy) - np.array(block.xy)
        d /= np.linalg.norm(d)
        for p in (np.array(block.xy) - d * 0.04, np.array(square.xy) - d * 0.03):
            if not _reachable(float(p[0]), float(p[1]), 0.0):
                return False
        return True

    # ------------------------------------------------------------ episodes

    def episode(self, seed: int, fps: int, index: int = 0) -> Episode:
        rng = np.random.default_rng(seed)
        kind = self.task_kind(index)
        cube, bowl, block, square = self._layout(rng, kind)
        light, brightness = sample_light(rng)
        spec = TableSpec(cube, bowl, block, square, light, brightness, kind, self.tasks[kind])
        tele = sample_teleop(rng, retry_prob=0.45 if kind == "pick" else 0.0)
        rest = REST + np.radians(rng.normal(0, [3, 2, 2, 0, 3, 4]))
        rest_g = float(rng.uniform(0.5, 3.0))
        sc = Script(rng, {"main": (rest, rest_g)}, tele.style)
        sc.idle(tele.start_idle)
        if kind == "pick":
            grips, events, bodies_fn = self._pick(sc, rng, spec, tele, rest)
        else:
            grips, events, bodies_fn = self._push(sc, rng, spec, rest)
        sc.idle(tele.end_idle)
        n = episode_length(sc, tele, fps)
        arms = run_arms(
            sc,
            tele,
            fps,
            n,
            rng,
            tremor=np.radians([0.06, 0.06, 0.08, 0.1, 0, 0.12]) * rng.uniform(0.5, 1.5),
            drift=np.radians([0.4, 0.4, 0.5, 0.6, 0, 0.6]) * rng.uniform(0.5, 1.5),
            grips=grips,
        )
        f = arms["main"]
        arm = jointed_arm("main", self.placed, f.q, f.g)
        bodies, ev = bodies_fn(arm, n, fps, tele)
        events.update(ev)
        state, action = joint_signals(rng, self.model, f)
        events["delay"] = tele.delay
        events["pauses"] = [
            {"arm": p.arm, "phase": p.phase, "start": p.start + tele.delay / fps, "duration": p.duration}
            for p in sc.pauses
        ]
        for fg in events["failed_grasps"]:
            fg["start"] = round(fg["start"] * fps) + tele.delay
            fg["end"] = round(fg["end"] * fps) + tele.delay
        obj = cube if kind == "pick" else block
        target = bowl if kind == "pick" else square
        others = [square, block] if kind == "pick" else [bowl, cube]  # the other task's things stay put
        return Episode(
            robot=self.name,
            task=spec.task,
            fps=fps,
            state=state.astype(np.float32),
            action=action.astype(np.float32),
            names=list(self.names),
            segments=segments_from_phases(sc.phases, fps, tele.delay, n),
            arms={"main": arm},
            bodies=bodies,
            fixtures=[target, *others],
            primary_arm="main",
            target=target,
            light=light,
            brightness=brightness,
            spec=spec,
            events=events,
            record={
                "task_kind": kind,
                "object": {"label": obj.label, "shape": obj.shape, "color": obj.color},
                "target": {"label": target.label, "shape": target.shape, "color": target.color},
                "distractors": [o.label for o in others],
            },
        )

    def _ik(
        self, p: np.ndarray, pitch: float, q_ref: np.ndarray, closing: np.ndarray | None = None
    ) -> np.ndarray:
        """Joints for the grasp point at `p`; without `closing` the wrist keeps its roll (a leader arm's habit)."""
        q = self.placed.ik(p, pitch, closing, roll_ref=float(q_ref[5]))
        if closing is None:
            q[5] = q_ref[5]
        return interpolate_joints(q_ref, q)

    def _closing(self, item: Item, q_ref: np.ndarray) -> np.ndarray:
        """The jaw axis across the item's faces that needs the least wrist roll."""
        pan_dir = float(q_ref[0]) + BASE_YAW
        lateral = pan_dir + np.pi / 2
        yaw = grasp_roll_axis(item.yaw, lateral)
        return np.array([np.cos(yaw), np.sin(yaw), 0.0])

    def _pick(self, sc: Script, rng: np.random.Generator, spec: TableSpec, tele: Teleop, rest: np.ndarray):
        cube, bowl = spec.cube, spec.bowl
        h, width = cube.size[2], cube.size[0]
        noun = "cube"
        g_open = float(self.model.gripper_value(width + rng.uniform(0.014, 0.026)))
        closed_cmd = float(rng.uniform(0.0, 4.0))
        tilt = lambda: DOWN + float(rng.uniform(0.0, 0.35))  # noqa: E731
        grasp_p = np.array([*cube.xy, h * float(rng.uniform(0.4, 0.6))])
        q = rest
        q_dir = self._ik(grasp_p, DOWN, q)
        closing = self._closing(cube, q_dir)
        q_grasp = self._ik(grasp_p, DOWN, q_dir, closing)
        above = grasp_p + np.array([*rng.normal(0, 0.008, 2), rng.uniform(0.04, 0.08)])
        q_above = self._ik(above, tilt(), q_grasp)
        events: dict = {"failed_grasps": []}

        def reach(
            q_from_p: np.ndarray, q_via: np.ndarray, q_to: np.ndarray, d_via: float, d_to: float
        ) -> None:
            with sc.phase(f"reach_{noun}", "main") as ph:
                ph.move("main", q_via, reach_time(d_via, 0.5, 2.2))
                ph.grip("main", g_open, float(rng.uniform(0.4, 0.9)), with_motion=True)
                ph.move("main", q_to, reach_time(d_to, 0.35, 1.8), blend=float(rng.uniform(0.15, 0.6)))

        tip_rest = self.placed.fk(rest).tip[0]
        if tele.retry:
            if rng.random() < 0.5:
                side = np.cross([0, 0, 1.0], closing) * rng.choice([-1, 1])
                wrong_p = grasp_p + side * rng.uniform(0.032, 0.04)
            else:
                wrong_p = grasp_p + np.array([0, 0, h * 0.5 + rng.uniform(0.02, 0.035)])
            q_wrong = self._ik(wrong_p, DOWN, q_grasp, closing)
            reach(
                tip_rest, q_above, q_wrong, np.linalg.norm(above - tip_rest), np.linalg.norm(wrong_p - above)
            )
            with sc.phase(f"grasp_{noun}", "main") as ph:
                s = ph.grip("main", closed_cmd, float(rng.uniform(0.3, 0.7)))
                ph.wait("main", float(rng.uniform(0.15, 0.6)))
                e = ph.grip("main", g_open, float(rng.uniform(0.3, 0.6)))
            events["failed_grasps"].append(
                {"arm": "main", "object": cube.label, "start": s.start, "end": e.end}
            )
            back_p = (wrong_p + grasp_p) / 2 + np.array([0, 0, rng.uniform(0.025, 0.045)])
            q_back = self._ik(back_p, tilt(), q_wrong)
            with sc.phase(f"reach_{noun}", "main") as ph:
                ph.move("main", q_back, reach_time(np.linalg.norm(back_p - wrong_p), 0.35, 1.8))
                ph.move(
                    "main",
                    q_grasp,
                    reach_time(np.linalg.norm(grasp_p - back_p), 0.35, 1.8),
                    blend=float(rng.uniform(0.2, 0.6)),
                )
        else:
            reach(
                tip_rest, q_above, q_grasp, np.linalg.norm(above - tip_rest), np.linalg.norm(grasp_p - above)
            )
        with sc.phase(f"grasp_{noun}", "main") as ph:
            close = ph.grip("main", closed_cmd, float(rng.uniform(0.3, 0.8)))
            ph.wait("main", float(rng.uniform(0.05, 0.5)))
        squeeze = float(rng.uniform(0.0005, 0.003))
        grip = Grip("main", cube.label, close.start, stall=float(self.model.gripper_value(width - squeeze)))
        lift_p = grasp_p + np.array([*rng.normal(0, 0.01, 2), rng.uniform(0.05, 0.1)])
        q_lift = self._ik(lift_p, tilt(), q_grasp)
        place_p = np.array([*bowl.xy, support_height(bowl) + h * 0.5 + float(rng.uniform(0.004, 0.015))])
        place_p[:2] += rng.normal(0, 0.008, 2)
        q_place = self._ik(place_p, DOWN, q_lift)
        above_place = place_p + np.array([0, 0, rng.uniform(0.04, 0.08)])
        q_above_place = self._ik(above_place, tilt(), q_place)
        with sc.phase(f"lift_{noun}", "main") as ph:
            ph.move("main", q_lift, reach_time(np.linalg.norm(lift_p - grasp_p), 0.35, 1.8))
        with sc.phase("move_to_bowl", "main") as ph:
            ph.move(
                "main",
                q_above_place,
                reach_time(np.linalg.norm(above_place - lift_p), 0.4, 2.0),
                blend=float(rng.uniform(0.0, 0.55)),
            )
        with sc.phase("place_in_bowl", "main") as ph:
            ph.move(
                "main",
                q_place,
                reach_time(np.linalg.norm(above_place - place_p), 0.35, 1.8),
                blend=float(rng.uniform(0.0, 0.35)),
            )
        with sc.phase(f"release_{noun}", "main") as ph:
            rel = ph.grip("main", g_open + float(rng.uniform(-3, 8)), float(rng.uniform(0.3, 0.7)))
            ph.wait("main", float(rng.uniform(0.05, 0.4)))
        grip.release_end = rel.end
        up_p = place_p + np.array([0, 0, rng.uniform(0.04, 0.08)])
        q_up = self._ik(up_p, tilt(), q_place)
        q_end = REST + np.radians(rng.normal(0, [3, 2, 2, 0, 3, 4]))
        with sc.phase("retreat", "main") as ph:
            ph.move("main", q_up, reach_time(np.linalg.norm(up_p - place_p), 0.3, 1.8))
            ph.move(
                "main",
                interpolate_joints(q_up, q_end),
                reach_time(0.2, 0.5, 2.0),
                blend=float(rng.uniform(0.2, 0.6)),
            )
            ph.grip("main", float(rng.uniform(0.5, 3.0)), float(rng.uniform(0.4, 0.9)), with_motion=True)

        def bodies(arm, n: int, fps: int, tele: Teleop):
            attach, detach = hold_frames(arm.gap, grip, width, fps, tele.delay)
            pos, rot = resting(cube, 0.0, n)
            carry(pos, rot, [(attach, detach, arm.tip, arm.tool)], support_height(bowl), h, fps)
            ev = {
                "grasps": [
                    {"arm": "main", "object": cube.label, "grasp_frame": attach, "release_frame": detach}
                ],
                "grasp_frame": attach,
                "release_frame": detach,
                "closed_level": {"main": float(np.median(arm.gap[attach:detach]))},
            }
            return {cube.label: Body(cube, pos, rot)}, ev

        return [grip], events, bodies

    def _push(self, sc: Script, rng: np.random.Generator, spec: TableSpec, rest: np.ndarray):
        block, square = spec.block, spec.square
        half = block.size[0] / 2
        b, s = np.array(block.xy), np.array(square.xy) + rng.normal(0, 0.006, 2)
        d = (s - b) / np.linalg.norm(s - b)
        z = float(rng.uniform(0.008, 0.016))
        pitch = DOWN + float(rng.uniform(0.25, 0.5))
        back = 0.012 + half
        contact = np.array([*(b - d * back), z])
        finish = np.array([*(s - d * back), z])
        behind = np.array([*(b - d * (back + rng.uniform(0.02, 0.04))), z + rng.uniform(0.01, 0.025)])
        above = behind + np.array([0, 0, rng.uniform(0.04, 0.07)])
        q_above = self._ik(above, pitch, rest)
        q_behind = self._ik(behind, pitch, q_above)
        q_contact = self._ik(contact, pitch, q_behind)
        tip_rest = self.placed.fk(rest).tip[0]
        with sc.phase("reach_block", "main") as ph:
            ph.move("main", q_above, reach_time(np.linalg.norm(above - tip_rest), 0.5, 2.2))
            ph.grip("main", float(rng.uniform(0.0, 4.0)), float(rng.uniform(0.3, 0.8)), with_motion=True)
            ph.move(
                "main",
                q_behind,
                reach_time(np.linalg.norm(behind - above), 0.35, 1.8),
                blend=float(rng.uniform(0.2, 0.6)),
            )
            ph.move(
                "main",
                q_contact,
                reach_time(np.linalg.norm(contact - behind), 0.3, 1.6),
                blend=float(rng.uniform(0.0, 0.4)),
            )
        push_start = sc.t
        q = q_contact
        with sc.phase("push_block", "main") as ph:
            pts = [contact + (finish - contact) * f for f in (1 / 3, 2 / 3, 1.0)]
            for k, p in enumerate(pts):
                q_next = self._ik(p, pitch + float(rng.normal(0, 0.03)), q)
                ph.move(
                    "main",
                    q_next,
                    reach_time(np.linalg.norm(finish - contact) / 3, 0.25, 2.0),
                    blend=0.0 if k == 0 else float(rng.uniform(0.4, 0.7)),
                    pause=k == 1,
                )
                q = q_next
        up = finish + np.array([-d[0] * 0.02, -d[1] * 0.02, rng.uniform(0.04, 0.07)])
        q_up = self._ik(up, pitch, q)
        q_end = REST + np.radians(rng.normal(0, [3, 2, 2, 0, 3, 4]))
        with sc.phase("retreat", "main") as ph:
            ph.move("main", q_up, reach_time(np.linalg.norm(up - finish), 0.3, 1.8))
            ph.move(
                "main",
                interpolate_joints(q_up, q_end),
                reach_time(0.2, 0.5, 2.0),
                blend=float(rng.uniform(0.2, 0.6)),
            )
        events: dict = {"failed_grasps": []}

        def bodies(arm, n: int, fps: int, tele: Teleop):
            a = round(push_start * fps) + tele.delay
            rel = (arm.tip[:, :2] - contact[:2]) @ d
            prog = np.zeros(n)
            prog[a:] = np.maximum.accumulate(np.maximum(rel[a:], 0.0))
            pos, rot = resting(block, 0.0, n)
            pos[:, :2] += prog[:, None] * d[None]
            moving = np.flatnonzero(np.diff(prog) > 1e-5)
            start = int(moving[0]) if len(moving) else a
            stop = int(moving[-1]) + 1 if len(moving) else a
            ev = {
                "grasps": [
                    {
                        "arm": "main",
                        "object": block.label,
                        "grasp_frame": start,
                        "release_frame": stop,
                        "kind": "push",
                    }
                ],
                "grasp_frame": start,
                "release_frame": stop,
                "closed_level": {"main": float(np.median(arm.gap[start : stop + 1]))},
            }
            return {block.label: Body(block, pos, rot)}, ev

        return [], events, bodies
