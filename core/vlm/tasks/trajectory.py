"""``trajectory``: the gripper in each of the sample's frames (`SampleConfig.trajectory_frames`)."""

from __future__ import annotations

from core.vlm.config import SampleConfig
from core.vlm.tasks._base import register
from core.vlm.tasks._trajectory import TrajectoryTask


class TrajectoryFrames(TrajectoryTask):
    name = "trajectory"
    order = 30

    def count(self, cfg: SampleConfig) -> int:
        return cfg.trajectory_frames


register(TrajectoryFrames())
