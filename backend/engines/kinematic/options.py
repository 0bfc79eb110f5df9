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

    # Shortest segment the engine proposes (seconds); a shorter one is flagged unsure.
    min_segment: float = 0.2
    # Least shape score for a dimension to count as the gripper when no name says so.
    shape_threshold: float = 0.4
    # A stop at least this long is a pause (a new motion may start after it); shorter ones are
    # dips inside one motion (seconds).
    min_pause: float = 0.25
    # Cuts closer than this are one cut (seconds).
    merge: float = 0.3
    # Processes for large batches (0: one per core, at most four; 1: none).
    workers: float = 0

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
            "min_segment": (opts.min_segment > 0, "must be > 0 seconds"),
            "shape_threshold": (0 <= opts.shape_threshold <= 1, "must be in [0, 1]"),
            "min_pause": (opts.min_pause > 0, "must be > 0 seconds"),
            "merge": (opts.merge >= 0, "must be >= 0 seconds"),
            "workers": (
                opts.workers >= 0 and float(opts.workers).is_integer(),
                "must be a whole number >= 0",
            ),
        }
        for name, (ok, why) in checks.items():
            if not ok:
                raise KinematicOptionError(
                    f"kinematic engine option '{name}' = {getattr(opts, name)!r}: {why}"
                )
        return opts
