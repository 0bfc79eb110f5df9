"""How samples are made (`SampleConfig`): rates, windows, image sizes, counts per task.

Engines, the exporter and the trainer pass the same config so that a model is
asked with the images and prompts it was trained on.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class SampleConfig:
    """How samples are made; the defaults suit a 3B model on one GPU."""

    # Cameras to use (None: the first camera for inference, every annotated one for training).
    cameras: tuple[str, ...] | None = None
    # Segmentation: frames per second sampled into contact sheets.
    rate: float = 2.0
    # Segmentation: at most this many tiles per contact sheet, and sheets per window.
    sheet_frames: int = 16
    sheets_per_window: int = 2
    # Segmentation windows (seconds) for long episodes, and how much neighbours overlap.
    window_s: float = 30.0
    window_overlap_s: float = 4.0
    # Longest side of a single-frame image and of a contact sheet, before the family's resize.
    frame_side: int = 448
    sheet_side: int = 896
    # Pixel budget per image (None: the family's default); pass the trainer's own
    # --min_pixels / --max_pixels so its resize leaves the images alone.
    max_pixels: int | None = None
    min_pixels: int | None = None
    # Inference: box_current / gripper at this many evenly spaced times.
    box_frames: int = 2
    # Trajectory: frames shown (trajectory) and points asked (trajectory_from_start).
    trajectory_frames: int = 4
    trajectory_points: int = 6
    # QA questions asked per frame at inference.
    qa_count: int = 2
    # Subtask names the model should use (empty: its own words).
    vocabulary: tuple[str, ...] = ()
    # Describe-then-segment: a describe pass first (inference only).
    describe: bool = True

    def __post_init__(self) -> None:
        for name in ("rate", "window_s"):
            if getattr(self, name) <= 0:
                raise ValueError(f"SampleConfig.{name} = {getattr(self, name)}: must be > 0")
        if not 0 <= self.window_overlap_s < self.window_s:
            raise ValueError(
                f"SampleConfig.window_overlap_s = {self.window_overlap_s}: must be in [0, window_s)"
            )
        for name in (
            "sheet_frames",
            "sheets_per_window",
            "frame_side",
            "sheet_side",
            "box_frames",
            "trajectory_frames",
            "trajectory_points",
            "qa_count",
        ):
            if getattr(self, name) < 1:
                raise ValueError(f"SampleConfig.{name} = {getattr(self, name)}: must be >= 1")
        for name in ("min_pixels", "max_pixels"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise ValueError(f"SampleConfig.{name} = {getattr(self, name)}: must be >= 1")
        if self.min_pixels is not None and self.max_pixels is not None and self.min_pixels > self.max_pixels:
            raise ValueError(
                f"SampleConfig.min_pixels = {self.min_pixels}: must not exceed max_pixels ({self.max_pixels})"
            )

    @classmethod
    def from_options(cls, options: dict[str, Any]) -> SampleConfig:
        """A config from engine options (unknown keys are someone else's and ignored)."""
        known = {f for f in cls.__dataclass_fields__}
        kw = {k: v for k, v in options.items() if k in known}
        for k in ("cameras", "vocabulary"):
            if kw.get(k) is not None:
                kw[k] = tuple(kw[k])
        return cls(**kw)
