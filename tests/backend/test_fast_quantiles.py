"""signals.median and signals.percentile: numpy's results bit for bit, at a fraction of the cost
per call (the kinematic analysis calls them dozens of times an episode)."""

from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from backend.engines.kinematic.signals import median, percentile

values = st.floats(-1e6, 1e6, width=32)
arrays = st.one_of(
    hnp.arrays(st.sampled_from([np.float64, np.float32]), st.integers(1, 60), elements=values),
    hnp.arrays(
        st.sampled_from([np.float64, np.float32]),
        st.tuples(st.integers(1, 40), st.integers(1, 5)),
        elements=values,
    ),
    # ties: few distinct values
    hnp.arrays(np.float64, st.integers(1, 60), elements=st.sampled_from([0.0, 1.0, 2.5])),
)


def same(got, want) -> None:
    got, want = np.asarray(got), np.asarray(want)
    assert got.dtype == want.dtype and got.shape == want.shape, (got, want)
    assert np.array_equal(got, want), (got, want)


@given(arrays, st.floats(0, 100), st.sampled_from([None, 0]))
def test_the_same_as_numpy(a, q, axis):
    same(percentile(a, q, axis), np.percentile(a, q, axis=axis))
    same(median(a, axis), np.median(a, axis=axis))


def test_what_the_fast_path_does_not_take_goes_to_numpy():
    a = np.array([1.0, np.nan, 3.0])
    assert np.isnan(median(a)) and np.isnan(percentile(a, 50))
    ints = np.array([3, 1, 2, 4])
    same(median(ints), np.median(ints))
    same(percentile(ints, 30), np.percentile(ints, 30))
    m = np.arange(12.0).reshape(3, 4)
    same(median(m, axis=1), np.median(m, axis=1))
    same(percentile(m, 10, axis=1), np.percentile(m, 10, axis=1))
