"""Small readers shared by the task parsers: times, keys, lists, numbers, coordinates.

Models name the same thing many ways ("start", "start_time", "begin"; a box as
a list, a dict or a string of numbers; pixels where the family uses 0..1), so
every task reads through these few tolerant helpers. Coordinates are converted
through core.vlm.coords, the one place that knows each family's convention.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from typing import Any

from core.vlm.coords import FAMILIES, from_model
from core.vlm.jsontext import Unparseable

_TIME = re.compile(r"^\s*(?:(\d+):)?(?:(\d+):)?(\d+(?:\.\d*)?)\s*(?:s|sec|secs|seconds)?\s*$", re.I)


def parse_time(value: Any) -> float:
    """Seconds from a number or a string like '1.5', '1.5s', '0:01.50', '00:00:01.5'."""
    if isinstance(value, bool):
        raise ValueError(f"time {value!r}: not a number")
    if isinstance(value, int | float):
        if not math.isfinite(value):
            raise ValueError(f"time {value!r}: not finite")
        return float(value)
    if isinstance(value, str):
        m = _TIME.match(value)
        if m:
            a, b, c = m.groups()
            parts = [float(x) for x in (a, b) if x is not None]
            secs = float(c)
            for k, p in enumerate(reversed(parts)):
                secs += p * 60 ** (k + 1)
            return secs
    raise ValueError(f"time {value!r}: not a time in seconds")


def pick(d: dict, keys: Iterable[str]) -> Any:
    """The value under the first of `keys` the dict has, matching keys case- and space-blind."""
    lower = {str(k).lower().strip(): v for k, v in d.items()}
    for k in keys:
        if k in lower:
            return lower[k]
    return None


def listify(value: Any, keys: Iterable[str]) -> list:
    """The list of entries: the value itself, or a list under one of `keys`, or one dict."""
    if isinstance(value, list):
        return value
    if isinstance(value, dict):
        inner = pick(value, keys)
        if isinstance(inner, list):
            return inner
        return [value]
    raise Unparseable(f"expected a JSON list, got {type(value).__name__}")


def numbers(value: Any, n: int) -> list[float] | None:
    """n finite numbers from a list, a dict (x1, y1, ... / x, y), a string or corner pairs; else None."""
    if isinstance(value, dict):
        keys = ("x1", "y1", "x2", "y2") if n == 4 else ("x", "y")
        value = [pick(value, (k,)) for k in keys]
    if isinstance(value, str):
        value = re.findall(r"-?\d+(?:\.\d+)?", value)
    if (
        isinstance(value, list | tuple)
        and len(value) == 2
        and n == 4
        and all(isinstance(p, list | tuple) and len(p) == 2 for p in value)
    ):
        value = [*value[0], *value[1]]  # [[x1, y1], [x2, y2]]
    if not isinstance(value, list | tuple) or len(value) != n:
        return None
    try:
        out = [float(v) for v in value]
    except (TypeError, ValueError):
        return None
    return out if all(math.isfinite(v) for v in out) else None


def convention(values: list[float], fam: str, size: tuple[int, int], repairs: list[str]) -> str:
    """The convention the numbers are actually in: the family's, unless they plainly are not."""
    mode = FAMILIES[fam].coords
    big = max(abs(v) for v in values)
    has_frac = any(v != int(v) for v in values)
    if mode != "unit" and big <= 1.0 and has_frac:
        repairs.append("coordinates were normalized [0, 1], not the family's convention")
        return "llava_onevision"
    if mode == "unit" and big > 1.0:
        w, h = size
        if big <= 1000 and (big > max(w, h) or w <= 0):
            repairs.append("coordinates were on a 0..1000 grid, not normalized")
            return "qwen2_vl"
        repairs.append("coordinates were pixels, not normalized")
        return "qwen2_5_vl"
    return fam


def to_unit(values: list[float], meta: dict, repairs: list[str]) -> tuple[float, ...]:
    """Model coordinates to the data model's [0, 1], in the convention they are really in."""
    fam = meta.get("family", "qwen2_5_vl")
    size = tuple(meta.get("image_size") or (0, 0))
    conv = convention(values, fam, size, repairs)  # type: ignore[arg-type]
    scale_ok = FAMILIES[conv].coords != "pixels" or (size[0] > 0 and size[1] > 0)
    if not scale_ok:
        raise Unparseable("pixel coordinates but the sample does not say the image size")
    lim = {"pixels": size, "grid1000": (1000, 1000), "unit": (1, 1)}[FAMILIES[conv].coords]
    if any(not 0 <= v <= lim[i % 2] for i, v in enumerate(values)):
        repairs.append("clipped coordinates outside the image")
    return from_model(values, conv, size)  # type: ignore[arg-type]


def text(value: Any) -> str:
    """A string (or number) with its white space folded; "" for anything else."""
    if isinstance(value, str):
        return " ".join(value.split())
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    return ""


def points(value: Any, meta: dict, repairs: list[str]) -> list[tuple[float | None, tuple[float, ...]]]:
    """(time or None, (x, y) in [0, 1]) for each readable point of an answer."""
    if isinstance(value, list) and numbers(value, 2) is not None:
        value = [value]
    rows = listify(value, ("points", "trajectory", "path", "answer"))
    out = []
    dropped = 0
    for row in rows:
        t = None
        nums = None
        if isinstance(row, dict):
            nums = numbers(pick(row, ("point_2d", "point", "xy", "position", "coordinates")), 2)
            if nums is None:
                nums = numbers(row, 2)
            tv = pick(row, ("t", "time", "timestamp"))
            if tv is not None:
                try:
                    t = parse_time(tv)
                except ValueError:
                    t = None
        else:
            nums = numbers(row, 2)
        if nums is None:
            dropped += 1
            continue
        out.append((t, to_unit(nums, meta, repairs)))
    if dropped:
        repairs.append(f"dropped {dropped} entries without two point coordinates")
    return out
