"""Slowdowns: an arm that slows almost to a stop and carries on (an approach that reaches the
object and pushes it, a peg aligned over its socket and then inserted) is a place a person cuts,
even where a faster motion elsewhere in the same run hides it from the change-point search."""

from __future__ import annotations

import numpy as np

from backend.engines.kinematic.arms import Arm
from backend.engines.kinematic.course import slowdowns
from backend.engines.kinematic.events import MOVING_ABOVE, ArmTrack
from backend.engines.kinematic.segmenter import arm_cuts
from core.dataset import EpisodeSignals

FPS = 30.0


def bell(n: int, peak: float) -> np.ndarray:
    return peak * np.sin(np.linspace(0, np.pi, n)) ** 2


def test_a_slowdown_between_two_motions_is_found_at_its_slowest_frame():
    # approach (peak 0.3), slows to 0.03 without stopping, pushes (peak 0.5), then a fast retreat
    speed = np.concatenate([bell(40, 0.3), bell(50, 0.5), bell(30, 2.0)]) + 0.03
    moving = np.ones(len(speed), dtype=bool)
    found = slowdowns(speed, moving, FPS, MOVING_ABOVE)
    assert any(abs(k - 40) <= 1 for k in found), found
    assert any(abs(k - 90) <= 1 for k in found), found  # push into the retreat, too
    assert all(abs(k - 40) <= 1 or abs(k - 90) <= 1 for k in found), found


def test_a_stop_a_shallow_dip_and_noise_at_rest_are_not_slowdowns():
    rng = np.random.default_rng(0)
    stop = np.concatenate([bell(40, 0.3), np.zeros(10), bell(40, 0.3)])
    moving = stop > 0.02
    assert slowdowns(stop, moving, FPS, MOVING_ABOVE) == []  # a stop is a pause, not a slowdown
    shallow = np.concatenate([bell(40, 0.3), bell(40, 0.3)]) * 0.5 + 0.2  # dips to 0.2 of 0.35
    assert slowdowns(shallow, np.ones(len(shallow), dtype=bool), FPS, MOVING_ABOVE) == []
    rest = np.abs(rng.normal(0, 0.3 * MOVING_ABOVE, 200))  # an arm at rest: its noise never peaks as motion
    assert slowdowns(rest, np.ones(len(rest), dtype=bool), FPS, MOVING_ABOVE) == []
    assert slowdowns(np.zeros(2), np.ones(2, dtype=bool), FPS, MOVING_ABOVE) == []


def carrying_track(speed: np.ndarray, turns: list[int]) -> ArmTrack:
    n = len(speed)
    sig = EpisodeSignals(episode=0, timestamps=np.arange(n) / FPS, frame_index=np.arange(n))
    arm = Arm("arm", [0], "single", sig)
    track = ArmTrack(arm, speed, speed[:, None], np.ones(n, dtype=bool), holding=np.ones(n, dtype=bool))
    track.turns = turns
    track.slowdowns = slowdowns(speed, track.moving, FPS, MOVING_ABOVE)
    return track


def test_a_carried_object_that_slows_and_carries_on_is_cut_there():
    # a peg carried over its socket (peak 0.4), slowed to almost nothing, then pushed in (peak 0.3)
    speed = np.concatenate([bell(45, 0.4), bell(40, 0.3)]) + 0.02
    cuts = arm_cuts(carrying_track(speed, turns=[]), [], FPS)
    assert [(c.kind, c.holding) for c in cuts if abs(c.frame - 45) <= 1] == [("turn", True)]
    # without the slowdown (one steady motion) nothing cuts it
    steady = bell(85, 0.4) + 0.02
    assert not [c for c in arm_cuts(carrying_track(steady, turns=[]), [], FPS) if c.kind == "turn"]
