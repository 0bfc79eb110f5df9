"""Coordinate conventions: one place, checked against the real Qwen processor's resize rule."""

from __future__ import annotations

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from core.vlm.coords import (
    FAMILIES,
    budget,
    family,
    family_of_model_type,
    from_model,
    is_fixed_point,
    model_image_size,
    smart_resize,
    to_model,
)


@pytest.mark.parametrize(
    ("h", "w", "factor", "lo", "hi"),
    [
        (240, 320, 28, 56 * 56, 28 * 28 * 1280),
        (480, 640, 28, 56 * 56, 28 * 28 * 1280),
        (1080, 1920, 28, 56 * 56, 28 * 28 * 1280),
        (3000, 4000, 28, 56 * 56, 28 * 28 * 1280),  # over the budget: scaled down
        (20, 30, 28, 56 * 56, 28 * 28 * 1280),  # under: scaled up
        (480, 640, 32, 64 * 64, 32 * 32 * 1280),  # Qwen3-VL patching
        (100, 5000, 28, 56 * 56, 28 * 28 * 1280),
    ],
)
def test_smart_resize_matches_transformers(h, w, factor, lo, hi) -> None:
    ref = pytest.importorskip("transformers.models.qwen2_vl.image_processing_qwen2_vl")
    assert smart_resize(h, w, factor, lo, hi) == ref.smart_resize(h, w, factor, lo, hi)


def test_smart_resize_rejects_bad_sizes() -> None:
    with pytest.raises(ValueError, match="aspect ratio"):
        smart_resize(10, 3000)
    with pytest.raises(ValueError, match="must be > 0"):
        smart_resize(0, 10)


def test_qwen25_is_pixels_on_the_resized_image() -> None:
    size = model_image_size("qwen2_5_vl", 320, 240)
    assert size == (308, 252)
    assert to_model((0.5, 0.25, 1.0, 1.0), "qwen2_5_vl", size) == [154, 63, 308, 252]
    assert from_model([154, 63, 308, 252], "qwen2_5_vl", size) == pytest.approx((0.5, 0.25, 1.0, 1.0))


def test_qwen2_and_qwen3_use_the_1000_grid_whatever_the_size() -> None:
    for name in ("qwen2_vl", "qwen3_vl"):
        assert to_model((0.5, 0.25), name, (308, 252)) == [500, 250]
        assert to_model((0.5, 0.25), name, (999, 17)) == [500, 250]
        assert from_model([500, 250], name, (0, 0)) == pytest.approx((0.5, 0.25))


def test_llava_is_normalized() -> None:
    assert to_model((0.12345, 0.5, 0.6, 0.7), "llava_onevision", (320, 240)) == [0.123, 0.5, 0.6, 0.7]
    assert model_image_size("llava_onevision", 320, 240) == (320, 240)


def test_out_of_range_values_are_clipped() -> None:
    assert from_model([-10, 300, 400, 100], "qwen2_5_vl", (308, 252)) == pytest.approx(
        (0.0, 1.0, 1.0, 100 / 252)
    )
    assert from_model([1200, -5], "qwen3_vl", (0, 0)) == (1.0, 0.0)


def test_errors_name_the_problem() -> None:
    with pytest.raises(ValueError, match="unknown"):
        family("gpt4v")
    with pytest.raises(ValueError, match="point"):
        to_model((0.1, 0.2, 0.3), "qwen2_5_vl", (308, 252))
    with pytest.raises(ValueError, match="image size"):
        to_model((0.1, 0.2), "qwen2_5_vl", (0, 0))
    with pytest.raises(ValueError, match="supported"):
        family_of_model_type("llama")
    assert family_of_model_type("qwen2_5_vl") == "qwen2_5_vl"


@given(
    st.sampled_from(sorted(FAMILIES)),
    st.integers(64, 2000),
    st.integers(64, 2000),
    st.lists(st.floats(0, 1), min_size=4, max_size=4),
)
def test_round_trip_within_one_unit(name, w, h, xyxy) -> None:
    size = model_image_size(name, w, h)
    back = from_model(to_model(xyxy, name, size), name, size)
    unit = {"pixels": 1 / min(size), "grid1000": 1e-3, "unit": 1e-3}[family(name).coords]
    assert back == pytest.approx(tuple(xyxy), abs=unit)


@given(
    st.integers(28, 4000),
    st.integers(28, 4000),
    st.sampled_from([(3136, 12845056), (3136, 50176), (3136, 451584), (200704, 1003520), (784, 784 * 4)]),
)
@example(28, 2731, (3136, 50176))  # a thin image settles only after many resizes (found by hypothesis)
def test_model_image_size_is_a_fixed_point_of_the_processors_resize(w, h, budget) -> None:
    """The size we render at is one Qwen's own smart_resize (transformers') leaves alone under the budget."""
    ref = pytest.importorskip("transformers.models.qwen2_vl.image_processing_qwen2_vl")
    lo, hi = budget
    if max(w, h) / min(w, h) > 150:
        return
    size = model_image_size("qwen2_5_vl", w, h, max_pixels=hi, min_pixels=lo)
    assert is_fixed_point("qwen2_5_vl", size, max_pixels=hi, min_pixels=lo)
    assert ref.smart_resize(size[1], size[0], 28, lo, hi) == (size[1], size[0])
    assert lo <= size[0] * size[1] <= hi


def test_a_one_size_budget_has_no_fixed_point_for_most_shapes() -> None:
    size = model_image_size("qwen2_5_vl", 320, 240, max_pixels=50176, min_pixels=50176)
    assert not is_fixed_point("qwen2_5_vl", size, max_pixels=50176, min_pixels=50176)
    assert is_fixed_point("qwen2_5_vl", (224, 224), max_pixels=50176, min_pixels=50176)
    assert is_fixed_point("llava_onevision", (321, 17))  # no resize in that family
    assert budget("qwen2_5_vl") == (56 * 56, 28 * 28 * 1280)
    assert budget("qwen2_5_vl", 3136, 12845056) == (3136, 12845056)
