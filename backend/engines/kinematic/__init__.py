"""Subtask segments from an episode's own signals: no GPU, no weights.

The gripper says the most: it closes on the object (grasp) and opens again
(release), so its transitions cut an episode into free motion (reach, retreat)
and carrying. Change points in the arm's velocity, found with `ruptures`, split
the carrying into lift / move / place by motion direction (up, sideways, down)
when the end effector's z is known, and by order when only joints are. The
result is a proposal a person reviews: every segment says how sharp the evidence
for its boundaries was, and the episode's uncertainty ranks it in the review
queue.
"""

from backend.engines.kinematic.engine import KinematicEngine
from backend.engines.kinematic.gripper import find_gripper, gripper_shape, gripper_transitions
from backend.engines.kinematic.options import KinematicOptionError, KinematicOptions

__all__ = [
    "KinematicEngine",
    "KinematicOptionError",
    "KinematicOptions",
    "find_gripper",
    "gripper_shape",
    "gripper_transitions",
]
