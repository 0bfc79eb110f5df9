"""The kinematic engine's knobs, in seconds and ratios so they do not depend on fps."""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Any


class KinematicOptionError(ValueError):
    """A bad engine option; the message names it."""


@dataclass(frozen=True)
class KinematicOptions:
    """Tuning knobs, in seconds and dimensionless ratios so they do not depend on fps."""

    # Pelt penalty per change point, in units of the velocity's squared robust scale.
    penalty: float = 0.3
    # Gaussian smoothing of velocities (sigma, seconds).
    smoothing: float = 0.05
    # Shortest motion segment the engine proposes (seconds). Grasp and release are
    # kept however short: a fast gripper closes in a few frames.
    min_segment: float = 0.2
    # Below this fraction of the episode's typical speed the arm counts as still.
    still_speed: float = 0.12
    # Least shape score for a dimension to count as the gripper when no name says so.
    shape_threshold: float = 0.4

    @classmethod
    def parse(cls, options: dict[str, Any], *, strict: bool = True) -> KinematicOptions:
        """Validated options; unknown names are an error when `strict` (the constructor)."""
        known = [f.name for f in fields(cls)]
        values: dict[str, float] = {}
        for name, value in options.items():
            if name not in known:
                if strict:
                    raise KinematicOptionError(
                        f"kinematic engine: unknown option '{name}' (known: {', '.join(known)})"
                    )
                continue
            if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
                raise KinematicOptionError(f"kinematic engine option '{name}' = {value!r}: must be a number")
            values[name] = float(value)
        opts = cls(**values)
        checks = {
            "penalty": (opts.penalty > 0, "must be > 0"),
            "smoothing": (opts.smoothing >= 0, "must be >= 0 seconds"),
            "min_segment": (opts.min_segment > 0, "must be > 0 seconds"),
            "still_speed": (0 < opts.still_speed < 1, "must be in (0, 1)"),
            "shape_threshold": (0 <= opts.shape_threshold <= 1, "must be in [0, 1]"),
        }
        for name, (ok, why) in checks.items():
            if not ok:
                raise KinematicOptionError(
                    f"kinematic engine option '{name}' = {getattr(opts, name)!r}: {why}"
                )
        return opts
