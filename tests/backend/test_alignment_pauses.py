"""A teleoperator's pause is a moment of the motion it interrupts, not a phase's standstill."""

import numpy as np
from scipy.ndimage import gaussian_filter1d

from backend.engines.kinematic.alignment import _expand, _runs, align, path_maps, still_frames

FPS = 30


def _episode(pause_at: float | None, pause_frames: int, seed: int) -> tuple[np.ndarray, int]:
    """Positions and velocities of one joint: a reach, a short stop at contact, a push in the
    same direction, a stop, a retreat; optionally a long pause `pause_at` of the way into the
    reach. Returns the features and the frame the push starts at."""
    rng = np.random.default_rng(seed)

    def move(a: float, b: float, frames: int) -> np.ndarray:
        s = np.linspace(0, 1, frames)
        return a + (b - a) * (3 * s**2 - 2 * s**3)

    reach = move(0.0, 1.0, 60)
    if pause_at is not None:
        k = int(pause_at * len(reach))
        reach = np.concatenate([reach[:k], np.full(pause_frames, reach[k]), reach[k:]])
    parts = [np.zeros(20), reach, np.full(6, 1.0)]
    push_start = sum(len(p) for p in parts)
    parts += [move(1.0, 1.4, 40), np.full(10, 1.4), move(1.4, 0.2, 50), np.full(20, 0.2)]
    u = np.concatenate(parts)[:, None] + rng.normal(0, 0.003, (sum(len(p) for p in parts), 1))
    v = np.gradient(gaussian_filter1d(u, 1.2, axis=0), axis=0) * FPS
    return np.hstack([u, v]), push_start


def _mapped(ex: np.ndarray, tgt: np.ndarray, at: int, compress: bool) -> int:
    still = (still_frames(ex, FPS), still_frames(tgt, FPS)) if compress else (None, None)
    path, _ = align(ex, tgt, *still)
    first, _ = path_maps(path, len(ex))
    return int(first[at])


def test_a_long_pause_in_the_reach_does_not_pull_the_push_start_onto_it():
    ex, ex_push = _episode(None, 0, seed=1)
    tgt, tgt_push = _episode(0.7, 45, seed=2)
    assert still_frames(tgt, FPS)[20 + 42 + 10 : 20 + 42 + 35].all()  # the pause is found
    # Frame by frame, the 45 still frames go to the exemplar's stop at contact, and the push
    # starts (28 frames early) where the pause ends.
    assert abs(_mapped(ex, tgt, ex_push, compress=False) - tgt_push) > 15
    assert abs(_mapped(ex, tgt, ex_push, compress=True) - tgt_push) <= 4


def test_the_expanded_path_is_monotone_and_covers_every_frame():
    still_ex = np.zeros(40, bool)
    still_ex[10:20] = True
    still_tgt = np.zeros(55, bool)
    still_tgt[0:5] = True
    still_tgt[30:45] = True
    ex_runs, tgt_runs = _runs(40, still_ex), _runs(55, still_tgt)
    rng = np.random.default_rng(0)
    ex = rng.normal(size=(len(ex_runs), 2))
    tgt = rng.normal(size=(len(tgt_runs), 2))
    from dtaidistance import dtw_ndim

    path = np.asarray(dtw_ndim.warping_path(ex, tgt, use_c=True))
    full = _expand(path, ex_runs, tgt_runs)
    assert tuple(full[0]) == (0, 0) and tuple(full[-1]) == (39, 54)
    assert (np.diff(full, axis=0) >= 0).all()
    assert set(full[:, 0]) == set(range(40)) and set(full[:, 1]) == set(range(55))


def test_without_pauses_the_path_is_plain_dtw():
    ex, _ = _episode(None, 0, seed=3)
    moving = np.zeros(len(ex), bool)
    a, cost_a = align(ex, ex, moving, moving)
    b, cost_b = align(ex, ex)
    np.testing.assert_array_equal(a, b)
    assert cost_a == cost_b
