"""A scripted tabletop pick-and-place: the demo dataset's ground truth.

A 7-D end-effector (x, y, z, roll, pitch, yaw, gripper opening) moves through
reach, grasp, lift, move, place, release and retreat with minimum-jerk timing,
varied speeds, hesitations and object layouts. Everything the renderer draws and
every ground-truth label comes from this simulation's own state.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

PHASES = ("reach", "grasp", "lift", "move", "place", "release", "retreat")
COLORS: dict[str, tuple[int, int, int]] = {
    "red": (205, 45, 45),
    "green": (45, 165, 70),
    "blue": (50, 90, 210),
    "yellow": (230, 200, 45),
    "orange": (240, 135, 35),
    "purple": (145, 65, 175),
}
SHAPES = ("cube", "block", "cylinder")
TARGETS = ("bowl", "plate", "tray")
OPEN_WIDTH = 0.085
HOME = np.array([0.0, -0.05, 0.32])
TABLE_X = (-0.32, 0.32)
TABLE_Y = (-0.22, 0.24)


@dataclass(frozen=True)
class Item:
    """A rigid thing on the table: its shape, colour, size (w, d, h) and pose."""

    shape: str
    color: str
    size: tuple[float, float, float]
    xy: tuple[float, float]
    yaw: float

    @property
    def label(self) -> str:
        return f"{self.color} {self.shape}"

    @property
    def rgb(self) -> tuple[int, int, int]:
        return COLORS[self.color]


@dataclass(frozen=True)
class EpisodeSpec:
    """What varies between episodes, drawn from one seed."""

    obj: Item
    target: Item
    distractors: tuple[Item, ...]
    durations: dict[str, float]
    pauses: dict[str, float]
    lift_height: float
    light: tuple[float, float, float]
    brightness: float

    @property
    def task(self) -> str:
        prep = "on" if self.target.shape == "plate" else "in"
        return f"pick up the {self.obj.label} and place it {prep} the {self.target.label}"


@dataclass
class EpisodeTrace:
    """The simulated episode, one row per frame."""

    spec: EpisodeSpec
    fps: int
    ee: np.ndarray  # (T, 3) fingertip centre
    yaw: np.ndarray  # (T,)
    opening: np.ndarray  # (T,) finger gap in metres
    command: np.ndarray  # (T,) commanded gap
    obj_pos: np.ndarray  # (T, 3) object centre
    obj_yaw: np.ndarray  # (T,)
    phase: np.ndarray  # (T,) index into PHASES
    segments: list[dict] = field(default_factory=list)
    grasp_frame: int = 0
    release_frame: int = 0

    @property
    def length(self) -> int:
        return len(self.ee)


def _sample_items(rng: np.random.Generator) -> tuple[Item, Item, tuple[Item, ...]]:
    colors = list(COLORS)
    rng.shuffle(colors)
    placed: list[tuple[float, float, float]] = []

    def free_spot(radius: float) -> tuple[float, float]:
        for _ in range(200):
            x = rng.uniform(TABLE_X[0] + radius + 0.02, TABLE_X[1] - radius - 0.02)
            y = rng.uniform(TABLE_Y[0] + radius + 0.02, TABLE_Y[1] - radius - 0.02)
            if all(np.hypot(x - px, y - py) > radius + pr + 0.03 for px, py, pr in placed):
                placed.append((x, y, radius))
                return float(x), float(y)
        raise RuntimeError("could not place items on the table")

    tshape = str(rng.choice(TARGETS))
    tsize = {
        "bowl": (0.15, 0.15, 0.035),
        "plate": (0.16, 0.16, 0.01),
        "tray": (0.17, 0.13, 0.02),
    }[tshape]
    txy = free_spot(0.09)
    target = Item(tshape, colors[0], tsize, txy, float(rng.uniform(-0.4, 0.4)))

    def make_obj(color: str) -> Item:
        shape = str(rng.choice(SHAPES))
        s = float(rng.uniform(0.038, 0.055))
        size = {"cube": (s, s, s), "block": (s * 0.8, s * 0.8, s * 1.6), "cylinder": (s, s, s * 1.2)}[shape]
        xy = free_spot(0.045)
        return Item(shape, color, size, xy, float(rng.uniform(-0.6, 0.6)))

    obj = make_obj(colors[1])
    # The object must be far enough from the target that "move" is a real motion.
    if np.hypot(obj.xy[0] - txy[0], obj.xy[1] - txy[1]) < 0.16:
        placed.pop()
        for _ in range(100):
            cand = make_obj(colors[1])
            if np.hypot(cand.xy[0] - txy[0], cand.xy[1] - txy[1]) >= 0.16:
                obj = cand
                break
            placed.pop()
        else:
            obj = Item(obj.shape, obj.color, obj.size, (-txy[0] * 0.9, -txy[1] * 0.9), obj.yaw)
    n_distractors = int(rng.integers(1, 3))
    distractors = tuple(make_obj(colors[2 + i]) for i in range(n_distractors))
    return obj, target, distractors


def sample_spec(rng: np.random.Generator) -> EpisodeSpec:
    obj, target, distractors = _sample_items(rng)
    speed = float(rng.uniform(0.75, 1.35))
    base = {
        "reach": rng.uniform(1.3, 2.3),
        "grasp": rng.uniform(0.5, 0.9),
        "lift": rng.uniform(0.7, 1.2),
        "move": rng.uniform(1.2, 2.4),
        "place": rng.uniform(0.7, 1.2),
        "release": rng.uniform(0.45, 0.8),
        "retreat": rng.uniform(0.9, 1.6),
    }
    durations = {k: float(v / speed) for k, v in base.items()}
    # Hesitations: the arm holds still at the end of a phase now and then.
    pauses = {
        k: (float(rng.uniform(0.3, 1.0)) if rng.random() < 0.3 else 0.0) for k in ("lift", "move", "place")
    }
    pauses["start"] = float(rng.uniform(0.0, 0.6))
    light = rng.normal([0.3, -0.5, 1.0], 0.15)
    light /= np.linalg.norm(light)
    return EpisodeSpec(
        obj=obj,
        target=target,
        distractors=distractors,
        durations=durations,
        pauses=pauses,
        lift_height=float(rng.uniform(0.10, 0.17)),
        light=tuple(float(v) for v in light),
        brightness=float(rng.uniform(0.85, 1.1)),
    )


def _min_jerk(n: int) -> np.ndarray:
    """Minimum-jerk time scaling: 0 -> 1 with zero velocity and acceleration at both ends."""
    if n <= 1:
        return np.ones(max(n, 0))
    tau = np.linspace(0.0, 1.0, n)
    return 10 * tau**3 - 15 * tau**4 + 6 * tau**5


def _bezier(p0: np.ndarray, p1: np.ndarray, p2: np.ndarray, s: np.ndarray) -> np.ndarray:
    s = s[:, None]
    return (1 - s) ** 2 * p0 + 2 * (1 - s) * s * p1 + s**2 * p2


def simulate(spec: EpisodeSpec, fps: int, rng: np.random.Generator) -> EpisodeTrace:
    obj_h = spec.obj.size[2]
    grasp_p = np.array([*spec.obj.xy, obj_h / 2])
    target_top = spec.target.size[2] if spec.target.shape != "bowl" else 0.012
    place_p = np.array([*spec.target.xy, target_top + obj_h / 2 + 0.002])
    start = HOME + rng.normal(0, [0.04, 0.03, 0.02])
    lift_p = grasp_p + np.array([0, 0, spec.lift_height])
    above_place = np.array([place_p[0], place_p[1], lift_p[2]])
    grasp_width = min(spec.obj.size[0], spec.obj.size[1]) * 0.98

    frames = lambda sec: max(2, round(sec * fps))  # noqa: E731
    ee_parts: list[np.ndarray] = []
    open_parts: list[np.ndarray] = []
    cmd_parts: list[np.ndarray] = []
    phase_parts: list[np.ndarray] = []

    def hold(p: np.ndarray, n: int, width: float, cmd: float, phase: int) -> None:
        ee_parts.append(np.repeat(p[None], n, 0))
        open_parts.append(np.full(n, width))
        cmd_parts.append(np.full(n, cmd))
        phase_parts.append(np.full(n, phase))

    def path(p0: np.ndarray, via: np.ndarray, p1: np.ndarray, n: int, width: float, phase: int) -> None:
        ee_parts.append(_bezier(p0, via, p1, _min_jerk(n)))
        open_parts.append(np.full(n, width))
        cmd_parts.append(np.full(n, width))
        phase_parts.append(np.full(n, phase))

    def gripper(p: np.ndarray, n: int, w0: float, w1: float, phase: int) -> None:
        ee_parts.append(np.repeat(p[None], n, 0))
        open_parts.append(w0 + (w1 - w0) * _min_jerk(n))
        cmd_parts.append(np.full(n, w1))
        phase_parts.append(np.full(n, phase))

    d, pz = spec.durations, spec.pauses
    P = {name: i for i, name in enumerate(PHASES)}
    hold(start, frames(pz["start"]) if pz["start"] > 0.05 else 0, OPEN_WIDTH, OPEN_WIDTH, P["reach"])
    via = (start + grasp_p) / 2 + [0, 0, 0.10]
    via[2] = max(via[2], grasp_p[2] + 0.12)
    path(start, via, grasp_p, frames(d["reach"]), OPEN_WIDTH, P["reach"])
    gripper(grasp_p, frames(d["grasp"]), OPEN_WIDTH, grasp_width, P["grasp"])
    path(grasp_p, (grasp_p + lift_p) / 2, lift_p, frames(d["lift"]), grasp_width, P["lift"])
    if pz["lift"]:
        hold(lift_p, frames(pz["lift"]), grasp_width, grasp_width, P["lift"])
    mid = (lift_p + above_place) / 2 + [0, 0, 0.03]
    path(lift_p, mid, above_place, frames(d["move"]), grasp_width, P["move"])
    if pz["move"]:
        hold(above_place, frames(pz["move"]), grasp_width, grasp_width, P["move"])
    path(above_place, (above_place + place_p) / 2, place_p, frames(d["place"]), grasp_width, P["place"])
    if pz["place"]:
        hold(place_p, frames(pz["place"]), grasp_width, grasp_width, P["place"])
    gripper(place_p, frames(d["release"]), grasp_width, OPEN_WIDTH, P["release"])
    end = HOME + rng.normal(0, [0.04, 0.03, 0.02])
    via = (place_p + end) / 2 + [0, 0, 0.08]
    path(place_p, via, end, frames(d["retreat"]), OPEN_WIDTH, P["retreat"])

    ee = np.concatenate([p for p in ee_parts if len(p)])
    opening = np.concatenate([p for p in open_parts if len(p)])
    command = np.concatenate([p for p in cmd_parts if len(p)])
    phase = np.concatenate([p for p in phase_parts if len(p)]).astype(np.int64)
    n = len(ee)

    # The wrist turns to the object's yaw while reaching, then keeps it.
    yaw = np.empty(n)
    reach_end = int(np.flatnonzero(phase == P["reach"])[-1]) + 1
    yaw[:reach_end] = spec.obj.yaw * _min_jerk(reach_end)
    yaw[reach_end:] = spec.obj.yaw

    grasp_frame = int(np.flatnonzero(phase == P["grasp"])[0])
    release_frame = int(np.flatnonzero(phase == P["release"])[0])
    # The object rides with the fingers once they close on it (halfway through
    # "grasp") and stays where it was released once they open.
    attach = grasp_frame + int(np.sum(phase == P["grasp"]) // 2)
    detach = release_frame + int(np.sum(phase == P["release"]) // 2)
    obj_pos = np.repeat(grasp_p[None], n, 0)
    obj_pos[attach:detach] = ee[attach:detach]
    obj_pos[detach:] = ee[detach - 1]
    obj_yaw = np.full(n, spec.obj.yaw)

    segments = []
    for i, name in enumerate(PHASES):
        idx = np.flatnonzero(phase == i)
        segments.append({"name": name, "start": idx[0] / fps, "end": (idx[-1] + 1) / fps})
    return EpisodeTrace(
        spec=spec,
        fps=fps,
        ee=ee,
        yaw=yaw,
        opening=opening,
        command=command,
        obj_pos=obj_pos,
        obj_yaw=obj_yaw,
        phase=phase,
        segments=segments,
        grasp_frame=attach,
        release_frame=detach,
    )


def robot_signals(trace: EpisodeTrace, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(state, action), both (T, 7) float32: x, y, z, roll, pitch, yaw, gripper.

    The state is what sensors read (with noise); the action is the next commanded
    pose and the commanded finger gap.
    """
    n = trace.length
    pose = np.zeros((n, 6))
    pose[:, :3] = trace.ee
    pose[:, 3] = np.pi  # fingers point down
    pose[:, 5] = trace.yaw
    state = np.concatenate([pose, trace.opening[:, None]], axis=1)
    state = state + rng.normal(0, [4e-4, 4e-4, 4e-4, 2e-3, 2e-3, 2e-3, 3e-4], size=state.shape)
    nxt = np.concatenate([pose[1:], pose[-1:]], axis=0)
    action = np.concatenate([nxt, trace.command[:, None]], axis=1)
    action = action + rng.normal(0, [2e-4, 2e-4, 2e-4, 1e-3, 1e-3, 1e-3, 0.0], size=action.shape)
    return state.astype(np.float32), action.astype(np.float32)


def sample_episode(seed: int, fps: int) -> EpisodeTrace:
    """One episode from one seed, so an episode is reproducible on its own."""
    rng = np.random.default_rng(seed)
    return simulate(sample_spec(rng), fps, rng)
