"""Mirrored joints: the same motion with the objects on the other side aligns like with like."""

import numpy as np

from backend.engines.kinematic.alignment import align
from backend.engines.kinematic.propagate import mirror


def _features(turn: float, n: int = 90) -> np.ndarray:
    """Positions and velocities of two joints: one lifts, then the base turns by `turn`."""
    t = np.linspace(0, 1, n)
    lift = np.clip(t / 0.4, 0, 1)
    base = 0.5 + turn * np.clip((t - 0.4) / 0.4, 0, 1)
    u = np.stack([lift, base], axis=1)
    v = np.gradient(u, axis=0) * n
    return np.hstack([u, v])


def test_a_joint_turning_the_other_way_is_mirrored_and_aligns_cheaper():
    ex, tgt = _features(+0.5), _features(-0.5)
    path, cost = align(ex, tgt)
    flipped = mirror(ex, tgt, path, np.ones(2))
    assert flipped is not None
    # only the base is mirrored; the lift, which moves the same way, is left alone
    np.testing.assert_allclose(flipped[:, 0], tgt[:, 0])
    np.testing.assert_allclose(flipped[:, 3], -tgt[:, 3])
    _, cost2 = align(ex, flipped)
    assert cost2 < cost


def test_the_same_motion_is_not_mirrored():
    ex = _features(+0.5)
    tgt = _features(+0.4)
    path, _ = align(ex, tgt)
    assert mirror(ex, tgt, path, np.ones(2)) is None
