"""Slowdowns: an arm that slows almost to a stop and carries on (an approach that reaches the
object and pushes it) is a place a person cuts, even where a faster motion elsewhere in the same
run hides it from the change-point search."""

from __future__ import annotations

import numpy as np

from backend.engines.kinematic.course import slowdowns
from backend.engines.kinematic.events import MOVING_ABOVE

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
