"""Tracking: boxes and points that follow the object through an episode.

`make_track_engine(name)` builds an engine: `cpu` (OpenCV, the default), `sam2`
or `sam3` (transformers video models, `model=` a checkpoint; GPU recommended).
Engines are imported only when asked for, so importing this package is cheap.
"""

from __future__ import annotations

from typing import Any

from backend.tracking.base import (
    TARGET_KINDS,
    TRACKER_PREFIX,
    Step,
    TargetInfo,
    TrackEngine,
    Tracker,
    TrackingError,
)

__all__ = [
    "TARGET_KINDS",
    "TRACKER_PREFIX",
    "TRACK_ENGINES",
    "Step",
    "TargetInfo",
    "TrackEngine",
    "Tracker",
    "TrackingError",
    "make_track_engine",
]

TRACK_ENGINES = ("cpu", "sam2", "sam3")


def make_track_engine(name: str = "cpu", **options: Any) -> TrackEngine:
    """A tracking engine by name; SAM engines need `model` (a checkpoint directory or hub id)."""
    if name == "cpu":
        try:
            import cv2  # noqa: F401
        except ImportError as exc:
            from core.errors import MissingExtraError

            raise MissingExtraError("opencv-python-headless", "track", "The CPU tracker") from exc
        from backend.tracking.box import CpuTrackEngine

        return CpuTrackEngine(**options)
    if name in ("sam2", "sam3"):
        if not options.get("model"):
            raise TrackingError(
                f"the {name} tracker needs weights: give --model with a {name.upper()} video checkpoint "
                "directory (e.g. facebook/sam2.1-hiera-tiny downloaded beforehand)"
            )
        from backend.tracking.sam import Sam2TrackEngine, Sam3TrackEngine

        return (Sam2TrackEngine if name == "sam2" else Sam3TrackEngine)(**options)
    raise TrackingError(f"unknown tracker '{name}' (known: {', '.join(TRACK_ENGINES)})")
