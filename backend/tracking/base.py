"""The interface every tracking engine implements: follow one target through a stream of frames.

A `Tracker` sees frames in the order of travel (forwards or backwards in the
episode: it does not know which), starting with the keyframe the person placed,
and says per frame where the target is, how sure it is, and whether it lost the
target; the propagation loop (`propagate.py`) decides what to keep. Values are in
pixels of the frame it was given (x1, y1, x2, y2 for a box; x, y for a point).
A `TrackEngine` makes trackers and says who it is (its tag goes into every
item's provenance). CPU engines are pure OpenCV; the SAM engines load torch and
transformers only when built.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Literal

import numpy as np

from core.errors import RoboAnnotateError
from core.protocol import ModelInfo
from core.tracks import TRACKER_PREFIX

TargetKind = Literal["box", "point"]
TARGET_KINDS: tuple[str, ...] = ("box", "point")


class TrackingError(RoboAnnotateError):
    """A track cannot start or go on: a bad target, a missing camera or model, a broken frame."""


@dataclass(frozen=True)
class Step:
    """One frame's answer: the target's `value` in pixels, a confidence in [0, 1], and loss.

    `guessed`: nothing in this frame was followed; the value only carries the last motion on
    over a frame or two. If the target is then lost, the track ends before the guesses.
    """

    value: tuple[float, ...]
    confidence: float
    lost: bool = False
    reason: str = ""
    guessed: bool = False


@dataclass(frozen=True)
class TargetInfo:
    """What a tracker may know about its target besides where it is (SAM3 uses the words)."""

    label: str = ""
    task: str = ""


class Tracker(ABC):
    """One target, one direction of travel."""

    @abstractmethod
    def start(self, frame: np.ndarray, value: tuple[float, ...]) -> None:
        """The keyframe (RGB uint8, H x W x 3) and the target on it, in pixels."""

    @abstractmethod
    def update(self, frame: np.ndarray) -> Step:
        """The next frame of travel."""

    def close(self) -> None:  # noqa: B027 - optional: most trackers hold nothing
        """Free what the tracker holds (a GPU session)."""


class TrackEngine(ABC):
    """Makes trackers for boxes and points."""

    name: str = "tracker"
    version: str = "0"
    device: str = "cpu"
    kinds: tuple[str, ...] = TARGET_KINDS

    def info(self) -> ModelInfo:
        return ModelInfo(
            engine=self.name, name=self.name, version=self.version, device=self.device, kinds=list(self.kinds)
        )

    @property
    def tag(self) -> str:
        """'name@version' as provenance records it (items get TRACKER_PREFIX + tag)."""
        return self.info().tag

    @property
    def source(self) -> str:
        return TRACKER_PREFIX + self.tag

    def tracker(self, kind: str, target: TargetInfo | None = None) -> Tracker:
        if kind not in self.kinds:
            raise TrackingError(f"the {self.name} tracker follows {', '.join(self.kinds)}, not '{kind}'")
        return self._make(kind, target or TargetInfo())

    @abstractmethod
    def _make(self, kind: str, target: TargetInfo) -> Tracker:
        """A new tracker for a kind this engine supports."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release devices and weights."""


def check_value(
    kind: str, value: tuple[float, ...], width: int, height: int, where: str
) -> tuple[float, ...]:
    """A target in pixels that a tracker can start from, or a TrackingError naming `where`."""
    vals = tuple(float(v) for v in value)
    if kind == "box":
        if len(vals) != 4 or not all(np.isfinite(vals)):
            raise TrackingError(f"{where}: a box needs 4 finite numbers (x1, y1, x2, y2), got {value!r}")
        x1, y1, x2, y2 = vals
        cx1, cy1 = max(0.0, min(x1, x2)), max(0.0, min(y1, y2))
        cx2, cy2 = min(float(width), max(x1, x2)), min(float(height), max(y1, y2))
        if cx2 - cx1 < 2 or cy2 - cy1 < 2:
            raise TrackingError(
                f"{where}: the box {tuple(round(v, 1) for v in vals)} px has no area inside the "
                f"{width}x{height} frame; draw it on the object"
            )
        return (cx1, cy1, cx2, cy2)
    if len(vals) != 2 or not all(np.isfinite(vals)):
        raise TrackingError(f"{where}: a point needs 2 finite numbers (x, y), got {value!r}")
    x, y = vals
    if not (0 <= x <= width and 0 <= y <= height):
        raise TrackingError(f"{where}: the point ({x:.1f}, {y:.1f}) px is outside the {width}x{height} frame")
    return (min(x, width - 1.0), min(y, height - 1.0))
