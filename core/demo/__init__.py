"""Simulated teleoperation demos, written as real LeRobot datasets with their ground truth.

Three robots (core.demo.robots): `single-ee` (one arm, end-effector pose),
`single-joint` (an SO-100 in joint space, pick-and-place and push) and
`bimanual` (two ALOHA arms, handover and peg insertion). Every episode is
teleoperated the way people do it: a speed of its own for every phase, pauses,
failed grasps and retries, tremor, a follower that lags the leader, grippers
that stall on what they hold, idle time at both ends, sensor noise.

Modules: scene (objects and layouts), motion (strokes, tremor, follower,
sensors), script (phases and the boundary rule), kinematics (the arms),
episode (what a simulation hands on), robots/* (the variants' tasks), render
(pixels), truth (ground-truth records), writer (lerobot, the cache).

Ground-truth phase names are what a careful annotator writes for the task, with
the task's nouns (`reach_cube`, `move_to_bowl`, `insert_peg`). Where each
boundary lies is one rule for all variants (core.demo.script): a phase starts
when its first motion or gripper stroke starts (a grasp when the jaws start
closing, a release when they start opening) and lasts until the next one
starts, so a hold or a pause belongs to the phase it interrupts or ends; a
motion that blends into the next splits at the middle of the overlap; idle time
at the start and at the end of an episode is its own `idle` phase. A failed
grasp is `grasp_X` (the jaws close on nothing and open), then `reach_X` again.
Boundaries are on the follower's clock (what the video shows), the leader's
command (the action) leads them by `action_lead_frames`.
"""

ROBOTS = ("single-ee", "single-joint", "bimanual")
