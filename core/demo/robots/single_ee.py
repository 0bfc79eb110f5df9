"""`single-ee`: one arm teleoperated in end-effector space, picking an object and placing it.

State and action are 7-D: x, y, z, roll, pitch, yaw (metres, radians) and the
jaw opening (metres). The operator drives the pose (a space mouse or VR
controller): motions are near-straight in Cartesian space, blended through via
points. Every episode draws its own object, target and layout, so every
episode has its own task string.

Phases: idle, reach_X, grasp_X, lift_X, move_to_T, place_in_T (place_on_T for a
plate), release_X, retreat, idle; X is the object's shape, T the target's.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from core.demo.episode import Arm, Body, Episode, carry, resting
from core.demo.motion import sense
from core.demo.render import Camera, Look, default_cameras
from core.demo.robots.common import (
    Grip,
    Variant,
    episode_length,
    hold_frames,
    reach_time,
    run_arms,
    sample_teleop,
)
from core.demo.scene import (
    FIXTURE_SIZES,
    Item,
    Layout,
    draw_colors,
    fixture_preposition,
    object_size,
    support_height,
)
from core.demo.script import Script, segments_from_phases

HOME = np.array([0.0, -0.05, 0.32])
TABLE_X = (-0.30, 0.30)
TABLE_Y = (-0.20, 0.22)
NAMES = ["x", "y", "z", "roll", "pitch", "yaw", "gripper"]


@dataclass(frozen=True)
class PickPlaceSpec:
    obj: Item
    target: Item
    distractors: tuple[Item, ...]
    lift_height: float
    open_width: float
    light: tuple[float, float, float]
    brightness: float

    @property
    def task(self) -> str:
        prep = fixture_preposition(self.target)
        return f"pick up the {self.obj.label} and place it {prep} the {self.target.label}"


def sample_light(rng: np.random.Generator) -> tuple[tuple[float, float, float], float]:
    light = rng.normal([0.3, -0.5, 1.0], 0.15)
    light /= np.linalg.norm(light)
    return tuple(float(v) for v in light), float(rng.uniform(0.85, 1.1))


def sample_spec(rng: np.random.Generator) -> PickPlaceSpec:
    colors = draw_colors(rng, 4)
    lay = Layout(rng, TABLE_X, TABLE_Y)
    tshape = str(rng.choice(["bowl", "plate", "tray"]))
    target = lay.place(tshape, colors[0], FIXTURE_SIZES[tshape], yaw_range=0.4)
    shape = str(rng.choice(["cube", "block", "cylinder"]))
    obj = lay.place(
        shape, colors[1], object_size(shape, float(rng.uniform(0.038, 0.055))), away_from=(*target.xy, 0.18)
    )
    distractors = []
    for c in colors[2 : 2 + int(rng.integers(1, 3))]:
        s = str(rng.choice(["cube", "block", "cylinder"]))
        distractors.append(lay.place(s, c, object_size(s, float(rng.uniform(0.038, 0.055)))))
    light, brightness = sample_light(rng)
    return PickPlaceSpec(
        obj,
        target,
        tuple(distractors),
        float(rng.uniform(0.10, 0.17)),
        float(rng.uniform(0.07, 0.085)),
        light,
        brightness,
    )


def _tool(yaw: np.ndarray) -> np.ndarray:
    """Tool frames (T, 3, 3) of a gripper pointing down with its jaws closing along yaw."""
    c, s = np.cos(yaw), np.sin(yaw)
    n = len(yaw)
    tool = np.zeros((n, 3, 3))
    tool[:, 2, 0] = -1.0  # approach: down
    tool[:, 0, 1], tool[:, 1, 1] = c, s  # closing axis
    tool[:, 0, 2], tool[:, 1, 2] = s, -c  # approach x closing
    return tool


@dataclass
class SingleEE(Variant):
    def __post_init__(self) -> None:
        self.name, self.robot_type, self.names = "single-ee", "sim_tabletop_arm", list(NAMES)
        self.look = Look()

    def cameras(self, width: int, height: int) -> list[Camera]:
        return default_cameras(width, height)

    def episode(self, seed: int, fps: int, index: int = 0) -> Episode:
        rng = np.random.default_rng(seed)
        spec = sample_spec(rng)
        tele = sample_teleop(rng)
        obj, target = spec.obj, spec.target
        noun, tnoun = obj.shape, target.shape
        h, width = obj.size[2], min(obj.size[0], obj.size[1])
        yaw_g = float(obj.yaw)
        start = HOME + rng.normal(0, [0.04, 0.03, 0.02])
        yaw0 = float(rng.normal(0, 0.15))
        pose = lambda p, yaw: np.array([p[0], p[1], p[2], np.pi, 0.0, yaw])  # noqa: E731
        sc = Script(rng, {"main": (pose(start, yaw0), spec.open_width)}, tele.style)
        grasp_p = np.array([*obj.xy, h * float(rng.uniform(0.45, 0.65))])
        above = grasp_p + np.array([*rng.normal(0, 0.01, 2), rng.uniform(0.06, 0.12)])
        closed_cmd = float(rng.uniform(0.0, 0.006))
        events: dict = {"failed_grasps": [], "retry": tele.retry}

        def reach(to: np.ndarray, frm: np.ndarray, via: np.ndarray) -> None:
            with sc.phase(f"reach_{noun}", "main") as ph:
                ph.move("main", pose(via, yaw_g), reach_time(np.linalg.norm(via - frm)))
                ph.move(
                    "main",
                    pose(to, yaw_g),
                    reach_time(np.linalg.norm(to - via), 0.3),
                    blend=float(rng.uniform(0.2, 0.6)),
                )

        sc.idle(tele.start_idle)
        if tele.retry:
            closing = np.array([np.cos(yaw_g), np.sin(yaw_g), 0.0])
            if rng.random() < 0.5:  # misjudged depth: the jaws close beside the object
                side = np.cross([0, 0, 1.0], closing) * rng.choice([-1, 1])
                wrong = grasp_p + side * rng.uniform(0.045, 0.055)
            else:  # too high: the jaws close above it
                wrong = grasp_p + np.array([0, 0, h * (1 - 0.55) + rng.uniform(0.015, 0.03)])
            reach(wrong, start, above)
            with sc.phase(f"grasp_{noun}", "main") as ph:
                s = ph.grip("main", closed_cmd, float(rng.uniform(0.35, 0.7)))
                ph.wait("main", float(rng.uniform(0.1, 0.5)))
                e = ph.grip("main", spec.open_width, float(rng.uniform(0.3, 0.6)))
            events["failed_grasps"].append(
                {"arm": "main", "object": obj.label, "start": s.start, "end": e.end}
            )
            back = wrong + np.array([0, 0, rng.uniform(0.02, 0.05)])
            reach(grasp_p, wrong, (back + grasp_p + [0, 0, 0.04]) / 2)
        else:
            reach(grasp_p, start, above)
        with sc.phase(f"grasp_{noun}", "main") as ph:
            close = ph.grip("main", closed_cmd, float(rng.uniform(0.35, 0.8)))
            ph.wait("main", float(rng.uniform(0.05, 0.5)))
        squeeze = float(rng.uniform(0.0005, 0.002))
        grip = Grip("main", obj.label, close.start, stall=width - squeeze)
        lift_p = grasp_p + np.array([0, 0, spec.lift_height])
        top = support_height(target)
        place_p = np.array([*target.xy, top + h * 0.55 + float(rng.uniform(0.002, 0.012))])
        above_place = np.array([place_p[0], place_p[1], lift_p[2] + float(rng.uniform(-0.02, 0.03))])
        with sc.phase(f"lift_{noun}", "main") as ph:
            ph.move("main", pose(lift_p, yaw_g), reach_time(spec.lift_height, 0.3))
        with sc.phase(f"move_to_{tnoun}", "main") as ph:
            mid = (lift_p + above_place) / 2 + [0, 0, float(rng.uniform(0.0, 0.04))]
            ph.move(
                "main",
                pose(mid, yaw_g),
                reach_time(np.linalg.norm(mid - lift_p), 0.3),
                blend=float(rng.uniform(0.0, 0.5)),
            )
            ph.move(
                "main",
                pose(above_place, yaw_g),
                reach_time(np.linalg.norm(above_place - mid), 0.3),
                blend=float(rng.uniform(0.3, 0.7)),
            )
        with sc.phase(f"place_{fixture_preposition(target)}_{tnoun}", "main") as ph:
            ph.move(
                "main",
                pose(place_p, yaw_g),
                reach_time(np.linalg.norm(above_place - place_p), 0.35),
                blend=float(rng.uniform(0.0, 0.3)),
            )
        with sc.phase(f"release_{noun}", "main") as ph:
            rel = ph.grip("main", float(rng.uniform(0.065, spec.open_width)), float(rng.uniform(0.3, 0.7)))
            ph.wait("main", float(rng.uniform(0.05, 0.4)))
        grip.release_end = rel.end
        end = HOME + rng.normal(0, [0.04, 0.03, 0.02])
        with sc.phase("retreat", "main") as ph:
            up = place_p + np.array([0, 0, rng.uniform(0.05, 0.1)])
            ph.move("main", pose(up, yaw_g), reach_time(np.linalg.norm(up - place_p), 0.3))
            ph.move(
                "main",
                pose(end, float(rng.normal(0, 0.15))),
                reach_time(np.linalg.norm(end - up)),
                blend=float(rng.uniform(0.2, 0.6)),
            )
        sc.idle(tele.end_idle)

        n = episode_length(sc, tele, fps)
        arms = run_arms(
            sc,
            tele,
            fps,
            n,
            rng,
            tremor=np.array([3e-4, 3e-4, 2.5e-4, 1e-3, 1e-3, 2e-3]) * rng.uniform(0.5, 1.5),
            drift=np.array([1.5e-3, 1.5e-3, 1e-3, 2e-3, 2e-3, 4e-3]) * rng.uniform(0.5, 1.5),
            grips=[grip],
        )
        f = arms["main"]
        gap = np.clip(f.g, 0.0, 0.09)
        tip = f.q[:, :3]
        tool = _tool(f.q[:, 5])
        arm = Arm("main", tip, tool, gap)
        attach, detach = hold_frames(gap, grip, width, fps, tele.delay)
        pos, rot = resting(obj, 0.0, n)
        carry(pos, rot, [(attach, detach, tip, tool)], top, h, fps)
        body = Body(obj, pos, rot)
        state = np.concatenate([f.q, gap[:, None]], axis=1)
        state = sense(rng, state, [4e-4, 4e-4, 4e-4, 2e-3, 2e-3, 2e-3, 3e-4])
        action = np.concatenate([f.lead_q, np.clip(f.lead_g, 0.0, 0.09)[:, None]], axis=1)
        action = sense(rng, action, [2e-4, 2e-4, 2e-4, 1e-3, 1e-3, 1e-3, 0.0])
        events.update(
            delay=tele.delay,
            grasps=[{"arm": "main", "object": obj.label, "grasp_frame": attach, "release_frame": detach}],
            grasp_frame=attach,
            release_frame=detach,
            pauses=[
                {"arm": p.arm, "phase": p.phase, "start": p.start + tele.delay / fps, "duration": p.duration}
                for p in sc.pauses
            ],
            closed_level={"main": float(np.median(gap[attach:detach]))},
        )
        for fg in events["failed_grasps"]:
            fg["start"] = round(fg["start"] * fps) + tele.delay
            fg["end"] = round(fg["end"] * fps) + tele.delay
        return Episode(
            robot=self.name,
            task=spec.task,
            fps=fps,
            state=state.astype(np.float32),
            action=action.astype(np.float32),
            names=list(NAMES),
            segments=segments_from_phases(sc.phases, fps, tele.delay, n),
            arms={"main": arm},
            bodies={obj.label: body},
            fixtures=[target, *spec.distractors],
            primary_arm="main",
            target=target,
            light=spec.light,
            brightness=spec.brightness,
            spec=spec,
            events=events,
            record={
                "object": {"label": obj.label, "shape": obj.shape, "color": obj.color},
                "target": {"label": target.label, "shape": target.shape, "color": target.color},
                "distractors": [d.label for d in spec.distractors],
            },
        )
