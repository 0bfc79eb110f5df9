"""How samples are made (`SampleConfig`): rates, windows, image sizes, counts per task.

Engines, the exporter and the trainer pass the same config so that a model is
asked with the images and prompts it was trained on.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from core.config import setting, validate


@dataclass(frozen=True)
class SampleConfig:
    """How samples are made; the defaults suit a 3B model on one GPU."""

    cameras: tuple[str, ...] | None = setting(
        None, help="cameras to use (None: the first for inference, every annotated one for training)"
    )
    rate: float = setting(2.0, gt=0, help="segmentation: frames per second sampled into contact sheets")
    sheet_frames: int = setting(16, ge=1, help="segmentation: at most this many tiles per contact sheet")
    sheets_per_window: int = setting(2, ge=1, help="segmentation: contact sheets per window")
    window_s: float = setting(30.0, gt=0, help="segmentation windows (seconds) for long episodes")
    window_overlap_s: float = setting(4.0, help="how much neighbouring windows overlap (seconds)")
    frame_side: int = setting(
        448, ge=1, help="longest side of a single-frame image, before the family's resize"
    )
    sheet_side: int = setting(896, ge=1, help="longest side of a contact sheet, before the family's resize")
    # Pass the trainer's own --min_pixels / --max_pixels so its resize leaves the images alone.
    max_pixels: int | None = setting(None, ge=1, help="pixel budget per image (None: the family's default)")
    min_pixels: int | None = setting(None, ge=1, help="least pixels per image (None: the family's default)")
    box_frames: int = setting(
        2, ge=1, help="inference: box_current / gripper at this many evenly spaced times"
    )
    trajectory_frames: int = setting(4, ge=1, help="trajectory: frames shown")
    trajectory_points: int = setting(6, ge=1, help="trajectory_from_start: points asked")
    qa_count: int = setting(2, ge=1, help="QA questions asked per frame at inference")
    vocabulary: tuple[str, ...] = setting(
        (), help="subtask names the model should use (empty: its own words)"
    )
    describe: bool = setting(True, help="describe-then-segment: a describe pass first (inference only)")

    def __post_init__(self) -> None:
        validate(self, label="SampleConfig.{name}")
        if not 0 <= self.window_overlap_s < self.window_s:
            raise ValueError(
                f"SampleConfig.window_overlap_s = {self.window_overlap_s}: must be in [0, window_s)"
            )
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
