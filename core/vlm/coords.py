"""Coordinate conventions of the VLM families, converted in ONE place.

The data model stores image coordinates normalized to [0, 1] of the camera frame.
Models speak differently, and a model trained on the wrong convention learns
nonsense, so every conversion goes through `to_model` / `from_model` here:

- Qwen2.5-VL: absolute pixels on the image *after* `smart_resize` (the size the
  vision tower actually sees; multiples of 28).
- Qwen2-VL and Qwen3-VL: relative integers on a 0..1000 grid, independent of the
  resize (Qwen3-VL went back to the Qwen2-VL convention).
- LLaVA-OneVision: normalized floats in [0, 1].

`smart_resize` is the Qwen2-VL image processor's rule (transformers
`image_processing_qwen2_vl.smart_resize`), reproduced so that core needs no
transformers; tests check the two agree.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

CoordMode = Literal["pixels", "grid1000", "unit"]


@dataclass(frozen=True)
class Family:
    """What a model family expects: its coordinate mode and its vision patching."""

    name: str
    # How boxes and points are written in answers.
    coords: CoordMode
    # Image sides are multiples of this (patch size x spatial merge).
    factor: int
    # Pixel budget of the processor's resize (Qwen defaults).
    min_pixels: int
    max_pixels: int


FAMILIES: dict[str, Family] = {
    "qwen2_vl": Family("qwen2_vl", "grid1000", 28, 56 * 56, 28 * 28 * 1280),
    "qwen2_5_vl": Family("qwen2_5_vl", "pixels", 28, 56 * 56, 28 * 28 * 1280),
    # Qwen3-VL: 16 px patches merged 2x2; its processor's size is {shortest_edge: 65536, longest_edge: 16777216}.
    "qwen3_vl": Family("qwen3_vl", "grid1000", 32, 256 * 256, 4096 * 4096),
    "llava_onevision": Family("llava_onevision", "unit", 1, 1, 2**31),
}

# model_type (config.json) -> family, for engines that open a checkpoint.
MODEL_TYPES: dict[str, str] = {
    "qwen2_vl": "qwen2_vl",
    "qwen2_5_vl": "qwen2_5_vl",
    "qwen3_vl": "qwen3_vl",
    "qwen3_vl_moe": "qwen3_vl",
    "llava_onevision": "llava_onevision",
}


def family(name: str) -> Family:
    """The family named `name`; a clear error lists the known ones."""
    try:
        return FAMILIES[name]
    except KeyError:
        raise ValueError(f"family = {name!r}: unknown (known: {', '.join(FAMILIES)})") from None


def smart_resize(
    height: int, width: int, factor: int = 28, min_pixels: int = 56 * 56, max_pixels: int = 28 * 28 * 1280
) -> tuple[int, int]:
    """(height, width) a Qwen-VL processor resizes an image to: sides multiples of
    `factor`, area within [min_pixels, max_pixels], aspect ratio kept."""
    if height <= 0 or width <= 0:
        raise ValueError(f"image size {width}x{height}: sides must be > 0")
    if max(height, width) / min(height, width) > 200:
        raise ValueError(f"image size {width}x{height}: aspect ratio must be smaller than 200")
    h_bar = round(height / factor) * factor
    w_bar = round(width / factor) * factor
    if h_bar * w_bar > max_pixels:
        beta = math.sqrt((height * width) / max_pixels)
        h_bar = max(factor, math.floor(height / beta / factor) * factor)
        w_bar = max(factor, math.floor(width / beta / factor) * factor)
    elif h_bar * w_bar < min_pixels:
        beta = math.sqrt(min_pixels / (height * width))
        h_bar = math.ceil(height * beta / factor) * factor
        w_bar = math.ceil(width * beta / factor) * factor
    return h_bar, w_bar


def model_image_size(
    fam: str | Family,
    width: int,
    height: int,
    max_pixels: int | None = None,
    min_pixels: int | None = None,
) -> tuple[int, int]:
    """(width, height) the model sees for an image of (width, height), under the pixel
    budget [min_pixels, max_pixels] (None: the family's default).

    Images are rendered at this size before they reach the processor. It is a fixed
    point of `smart_resize` under the same budget whenever one exists nearby (one
    resize may land outside the budget when it is narrow; resizing again settles it),
    so the processor's own resize is the identity and pixel coordinates mean the same
    thing on both sides. `is_fixed_point` says whether it is.
    """
    f = family(fam) if isinstance(fam, str) else fam
    if f.factor == 1:
        return width, height
    lo, hi = budget(f, min_pixels, max_pixels)
    h, w = height, width
    # A side clamped at one factor (a very thin image) shrinks the other only a little per
    # resize, so settling can take dozens of rounds; each is a few integer operations.
    for _ in range(256):
        nh, nw = smart_resize(h, w, f.factor, lo, hi)
        if (nh, nw) == (h, w):
            break
        h, w = nh, nw
    return w, h


def budget(
    fam: str | Family, min_pixels: int | None = None, max_pixels: int | None = None
) -> tuple[int, int]:
    """The pixel budget (min_pixels, max_pixels), the family's defaults where not given."""
    f = family(fam) if isinstance(fam, str) else fam
    return (min_pixels or f.min_pixels, max_pixels or f.max_pixels)


def is_fixed_point(
    fam: str | Family, size: tuple[int, int], max_pixels: int | None = None, min_pixels: int | None = None
) -> bool:
    """True when the family's processor leaves an image of `size` (width, height) as it is
    under the budget: the trainer sees exactly the pixels the answers refer to."""
    f = family(fam) if isinstance(fam, str) else fam
    if f.factor == 1:
        return True
    w, h = size
    lo, hi = budget(f, min_pixels, max_pixels)
    return smart_resize(h, w, f.factor, lo, hi) == (h, w)


def _clip01(v: float) -> float:
    return min(1.0, max(0.0, v))


def _scale(fam: Family, image_size: tuple[int, int]) -> tuple[float, float]:
    if fam.coords == "pixels":
        w, h = image_size
        if w <= 0 or h <= 0:
            raise ValueError(f"image_size = {image_size}: pixel coordinates need the model-side image size")
        return float(w), float(h)
    if fam.coords == "grid1000":
        return 1000.0, 1000.0
    return 1.0, 1.0


def _fmt(fam: Family, v: float) -> float | int:
    if fam.coords == "unit":
        return round(v, 3)
    return round(v)


def to_model(values: Sequence[float], fam: str | Family, image_size: tuple[int, int]) -> list[float | int]:
    """Normalized x/y values (a box x1,y1,x2,y2 or a point x,y) in the family's convention.

    `image_size` is (width, height) of the image the model sees.
    """
    f = family(fam) if isinstance(fam, str) else fam
    if len(values) not in (2, 4):
        raise ValueError(f"coordinates {list(values)}: expected a point (x, y) or a box (x1, y1, x2, y2)")
    sx, sy = _scale(f, image_size)
    return [_fmt(f, _clip01(v) * (sx if i % 2 == 0 else sy)) for i, v in enumerate(values)]


def from_model(values: Sequence[float], fam: str | Family, image_size: tuple[int, int]) -> tuple[float, ...]:
    """The family's x/y values back to normalized [0, 1], clipped to the image."""
    f = family(fam) if isinstance(fam, str) else fam
    if len(values) not in (2, 4):
        raise ValueError(f"coordinates {list(values)}: expected a point (x, y) or a box (x1, y1, x2, y2)")
    sx, sy = _scale(f, image_size)
    return tuple(_clip01(float(v) / (sx if i % 2 == 0 else sy)) for i, v in enumerate(values))


def out_of_range(values: Sequence[float], fam: str | Family, image_size: tuple[int, int]) -> bool:
    """True when a model value lies outside its image (a repair worth noting)."""
    f = family(fam) if isinstance(fam, str) else fam
    sx, sy = _scale(f, image_size)
    return any(not 0 <= float(v) <= (sx if i % 2 == 0 else sy) for i, v in enumerate(values))


def family_of_model_type(model_type: str) -> str:
    """The family of a checkpoint's config `model_type`."""
    try:
        return MODEL_TYPES[model_type]
    except KeyError:
        raise ValueError(
            f"model_type {model_type!r}: not a supported VLM family (supported: {', '.join(MODEL_TYPES)})"
        ) from None
