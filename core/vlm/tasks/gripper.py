"""``gripper``: a box around the gripper, on one frame at ``meta["t"]``.

An engine asks on `SampleConfig.box_frames` frames spread evenly over the episode.
"""

from __future__ import annotations

from core.vlm.tasks._base import register
from core.vlm.tasks.box_current import BoxCurrent


class Gripper(BoxCurrent):
    name = "gripper"
    box_kind = "gripper"
    order = 23
    max_tokens = 64


register(Gripper())
