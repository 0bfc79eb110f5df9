"""Things on the table: shapes, colours, sizes and where they go.

Every variant draws its objects, targets and distractors from here, so a red
cube looks the same to every camera and every variant. Object placement keeps
a clearance between items (no overlaps at the start of an episode) inside a
region the arm can reach.

`sample_episode` / `robot_signals` / `PHASES` are the single-ee variant's
entry points kept for older callers (they return the new `Episode`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

COLORS: dict[str, tuple[int, int, int]] = {
    "red": (205, 45, 45),
    "green": (45, 165, 70),
    "blue": (50, 90, 210),
    "yellow": (230, 200, 45),
    "orange": (240, 135, 35),
    "purple": (145, 65, 175),
}
# The single-ee pick-and-place's phase kinds, in order (its ground-truth names add
# the object's noun: reach_cube, move_to_bowl, ...). Older callers import it.
PHASES = ("reach", "grasp", "lift", "move", "place", "release", "retreat")


@dataclass(frozen=True)
class Item:
    """A rigid thing: its shape, colour, size (w, d, h) in metres and resting pose (x, y, yaw)."""

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

    @property
    def radius(self) -> float:
        """Half the footprint's diagonal: the clearance it needs on the table."""
        return float(np.hypot(self.size[0], self.size[1]) / 2)

    def moved(self, xy: tuple[float, float] | None = None, yaw: float | None = None) -> Item:
        return Item(
            self.shape, self.color, self.size, self.xy if xy is None else xy, self.yaw if yaw is None else yaw
        )


# Fixtures: things that stay put (w, d, h); a bowl's inside floor is lower than its rim.
FIXTURE_SIZES: dict[str, tuple[float, float, float]] = {
    "bowl": (0.15, 0.15, 0.035),
    "plate": (0.16, 0.16, 0.01),
    "tray": (0.17, 0.13, 0.02),
    "square": (0.09, 0.09, 0.002),
}


def support_height(fixture: Item) -> float:
    """Height an object rests at when put on or in `fixture`."""
    if fixture.shape == "bowl":
        return 0.012
    return fixture.size[2]


def fixture_preposition(fixture: Item) -> str:
    return "in" if fixture.shape in ("bowl", "tray") else "on"


def object_size(shape: str, s: float) -> tuple[float, float, float]:
    """(w, d, h) of a graspable object of characteristic size `s`."""
    return {
        "cube": (s, s, s),
        "block": (s * 0.8, s * 0.8, s * 1.6),
        "cylinder": (s, s, s * 1.2),
        "peg": (s * 4.4, s, s),  # lying on the table, long axis = local x
        "socket": (s, s, s),  # a tube along local x, hole = 0.45 s
    }[shape]


class Layout:
    """Places items on a table region with clearances, from one random generator.

    `inside(x, y, r)` says whether an item of radius r centred at (x, y) fits the
    region (e.g. within the arm's reach). Raises RuntimeError when nothing fits:
    that is a bug in a variant's region, never a user error.
    """

    def __init__(
        self,
        rng: np.random.Generator,
        x_range: tuple[float, float],
        y_range: tuple[float, float],
        inside: Callable[[float, float, float], bool] | None = None,
        gap: float = 0.03,
    ) -> None:
        self.rng = rng
        self.x_range, self.y_range = x_range, y_range
        self.inside = inside or (lambda x, y, r: True)
        self.gap = gap
        self.placed: list[tuple[float, float, float]] = []

    def spot(
        self,
        radius: float,
        x_range: tuple[float, float] | None = None,
        y_range: tuple[float, float] | None = None,
        away_from: tuple[float, float, float] | None = None,
    ) -> tuple[float, float]:
        """A free spot for an item of `radius`; `away_from` = (x, y, min distance)."""
        xr, yr = x_range or self.x_range, y_range or self.y_range
        for _ in range(400):
            x = float(self.rng.uniform(xr[0] + radius, xr[1] - radius))
            y = float(self.rng.uniform(yr[0] + radius, yr[1] - radius))
            if not self.inside(x, y, radius):
                continue
            if away_from is not None and np.hypot(x - away_from[0], y - away_from[1]) < away_from[2]:
                continue
            if all(np.hypot(x - px, y - py) > radius + pr + self.gap for px, py, pr in self.placed):
                self.placed.append((x, y, radius))
                return x, y
        raise RuntimeError(f"no free spot of radius {radius:.3f} in x {xr}, y {yr}")

    def place(
        self, shape: str, color: str, size: tuple[float, float, float], yaw_range: float = 0.6, **kw
    ) -> Item:
        r = float(np.hypot(size[0], size[1]) / 2)
        xy = self.spot(r, **kw)
        return Item(shape, color, size, xy, float(self.rng.uniform(-yaw_range, yaw_range)))


def draw_colors(rng: np.random.Generator, n: int) -> list[str]:
    names = list(COLORS)
    rng.shuffle(names)
    return names[:n]


def sample_episode(seed: int, fps: int):
    """The single-ee episode of one seed (kept for older callers; see core.demo.robots.single_ee)."""
    from core.demo.robots.single_ee import SingleEE

    return SingleEE().episode(seed, fps)


def robot_signals(trace, rng: np.random.Generator | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(state, action) of an episode; the noise was drawn with the episode, so `rng` is unused."""
    return trace.state, trace.action
