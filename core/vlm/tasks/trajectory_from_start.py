"""``trajectory_from_start``: the path to come (`SampleConfig.trajectory_points` points), all drawn
on the first frame. Engines run it only when it is named, not for every trajectory request."""

from __future__ import annotations

from core.vlm.config import SampleConfig
from core.vlm.tasks._base import register
from core.vlm.tasks._trajectory import TrajectoryTask


class TrajectoryFromStart(TrajectoryTask):
    name = "trajectory_from_start"
    order = 31
    every_frame = False
    on_request = False

    def count(self, cfg: SampleConfig) -> int:
        return cfg.trajectory_points


register(TrajectoryFromStart())
