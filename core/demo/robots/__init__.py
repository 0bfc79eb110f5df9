"""The demo's robots: one module per variant, each a `Variant` that simulates episodes."""

from __future__ import annotations

from core.demo import ROBOTS
from core.demo.robots.common import Variant

__all__ = ["ROBOTS", "Variant", "make_variant"]


def make_variant(robot: str, dataset_seed: int = 0) -> Variant:
    """The variant called `robot` for a dataset of seed `dataset_seed`."""
    if robot == "single-ee":
        from core.demo.robots.single_ee import SingleEE

        return SingleEE(dataset_seed)
    if robot == "single-joint":
        from core.demo.robots.single_joint import SingleJoint

        return SingleJoint(dataset_seed)
    if robot == "bimanual":
        from core.demo.robots.bimanual import Bimanual

        return Bimanual(dataset_seed)
    raise ValueError(f"robot {robot!r}: must be one of {', '.join(ROBOTS)}")
