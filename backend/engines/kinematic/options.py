"""The kinematic engine's knobs, in seconds and ratios so they do not depend on fps."""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Any

from core.config import setting, validate


class KinematicOptionError(ValueError):
    """A bad engine option; the message names it."""


@dataclass(frozen=True)
class KinematicOptions:
    """Tuning knobs, in seconds and dimensionless ratios so they do not depend on fps."""

    min_segment: float = setting(
        0.2, gt=0, unit="seconds", help="shortest segment proposed (seconds); a shorter one is flagged unsure"
    )
    shape_threshold: float = setting(
        0.4, ge=0, le=1, help="least shape score for a dimension to count as the gripper when no name says so"
    )
    min_pause: float = setting(
        0.25,
        gt=0,
        unit="seconds",
        help="a stop at least this long is a pause (a new motion may start after it); shorter ones are "
        "dips inside one motion (seconds)",
    )
    merge: float = setting(0.3, ge=0, unit="seconds", help="cuts closer than this are one cut (seconds)")
    workers: float = setting(
        0, ge=0, integer=True, help="processes for large batches (0: one per core, at most four; 1: none)"
    )

    def __post_init__(self) -> None:
        validate(self, error=KinematicOptionError, label="kinematic engine option '{name}'")

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
        return cls(**values)
