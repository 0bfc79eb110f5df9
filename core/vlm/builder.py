"""What every task's samples share: the `Sample` and `ImageSpec` types and the per-episode builder.

A task module (core.vlm.tasks) decides which frames to show and what to ask;
`SampleBuilder` knows the episode (fps, duration, task text, cameras), sizes
images the way the model family resizes them, puts times on the frame grid and
numbers the samples. Answers are written with `dump` so every task's targets
look alike.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

from core.annotations import EpisodeAnnotation, frame_at, snap_time
from core.dataset import Dataset
from core.vlm.config import SampleConfig
from core.vlm.coords import Family, family, model_image_size
from core.vlm.frames import fit_size, sheet_grid


class _OnFrame(Protocol):
    camera: str
    t: float


_Framed = TypeVar("_Framed", bound=_OnFrame)


@dataclass(frozen=True)
class ImageSpec:
    """One image of a sample: a frame (one time) or a contact sheet (several), rendered at `size`."""

    camera: str
    times: tuple[float, ...]
    # (width, height) the model sees; coordinates in answers refer to this size.
    size: tuple[int, int]
    # Tiles per row of a contact sheet (None for a single frame).
    cols: int | None = None

    @property
    def is_sheet(self) -> bool:
        return len(self.times) > 1


@dataclass
class Sample:
    """One prompt (and, for training, its answer) about one episode."""

    id: str
    task: str
    dataset: str
    episode: int
    images: list[ImageSpec]
    prompt: str
    # The training target in the family's coordinate convention; "" for inference.
    answer: str = ""
    # What a parser needs to read the answer back: family, duration, fps, t, camera, window, ...
    meta: dict[str, Any] = field(default_factory=dict)


def coord_hint(fam: Family, size: tuple[int, int]) -> str:
    """The sentence that tells a model its coordinate convention (part of every grounding prompt)."""
    if fam.coords == "pixels":
        return f"Coordinates are absolute pixels on this {size[0]}x{size[1]} image, origin at the top left."
    if fam.coords == "grid1000":
        return "Coordinates are integers from 0 to 1000, relative to the image width and height, origin at the top left."
    return "Coordinates are fractions from 0 to 1 of the image width and height, origin at the top left."


def dump(obj: Any) -> str:
    """An answer as the model should write it: compact JSON, non-ASCII kept."""
    return json.dumps(obj, ensure_ascii=False, separators=(", ", ": "))


def even_times(a: float, b: float, n: int) -> list[float]:
    """n times evenly spread over [a, b] (the middle when n is 1)."""
    if n == 1:
        return [(a + b) / 2]
    return [a + k * (b - a) / (n - 1) for k in range(n)]


def windows(duration: float, cfg: SampleConfig) -> list[tuple[float, float]]:
    """Overlapping segmentation windows covering [0, duration]; one window when it fits."""
    if duration <= cfg.window_s:
        return [(0.0, duration)]
    step = cfg.window_s - cfg.window_overlap_s
    n = math.ceil((duration - cfg.window_overlap_s) / step)
    step = (duration - cfg.window_s) / (n - 1) if n > 1 else step
    return [(round(i * step, 6), round(min(duration, i * step + cfg.window_s), 6)) for i in range(n)]


def cameras(ds: Dataset, cfg: SampleConfig, used: Iterable[str] | None = None) -> list[str]:
    """The cameras to sample: the config's, else the annotated ones (`used`), else the first."""
    if cfg.cameras:
        missing = [c for c in cfg.cameras if c not in ds.cameras]
        if missing:
            raise ValueError(
                f"cameras {missing}: not in dataset {ds.name} (cameras: {', '.join(ds.cameras) or 'none'})"
            )
        return list(cfg.cameras)
    if used is not None:
        return [c for c in ds.cameras if c in set(used)]
    if not ds.cameras:
        raise ValueError(f"dataset {ds.name} has no cameras: a VLM has nothing to look at")
    return [ds.cameras[0]]


class SampleBuilder:
    """One episode's shared state while its tasks make samples.

    `cameras` are the ones the samples may use; `first_camera` is the one
    episode-wide tasks (segmentation, dialogue in training) look through.
    """

    def __init__(
        self,
        ds: Dataset,
        dataset_id: str,
        episode: int,
        fam: str,
        cfg: SampleConfig,
        task_text: str,
        cams: Iterable[str] = (),
        first_camera: str = "",
    ) -> None:
        self.ds, self.dataset_id, self.episode = ds, dataset_id, episode
        self.fam = family(fam)
        self.cfg = cfg
        info = ds.episode(episode)
        self.fps = float(ds.fps)
        self.duration = info.length / self.fps
        self.task_text = task_text or info.task or "(no task given)"
        self.cameras = set(cams)
        self.first_camera = first_camera
        self.count: dict[str, int] = {}

    def sample(self, task: str, images: list[ImageSpec], prompt: str, answer: str, **meta: Any) -> Sample:
        """A numbered sample of `task` with the episode's meta (family, duration, fps, task text) added."""
        k = self.count.get(task, 0)
        self.count[task] = k + 1
        base = {
            "family": self.fam.name,
            "duration": self.duration,
            "fps": self.fps,
            "task_text": self.task_text,
        }
        return Sample(
            id=f"{self.dataset_id}:{self.episode}:{task}:{k}",
            task=task,
            dataset=self.dataset_id,
            episode=self.episode,
            images=images,
            prompt=prompt,
            answer=answer,
            meta={**base, **meta},
        )

    def t(self, t: float) -> float:
        """t snapped to the frame grid and kept inside the episode."""
        n = max(1, round(self.duration * self.fps))
        return round(frame_at(snap_time(t, self.fps), self.fps, n) / self.fps, 6)

    @property
    def last(self) -> float:
        """The time of the episode's last frame."""
        return self.t(self.duration)

    def by_frame(self, items: Iterable[_Framed]) -> list[tuple[str, float, list[_Framed]]]:
        """Items on the sampled cameras grouped by (camera, frame time), in that order."""
        groups: dict[tuple[str, float], list[_Framed]] = {}
        for x in items:
            if x.camera in self.cameras:
                groups.setdefault((x.camera, self.t(x.t)), []).append(x)
        return [(cam, t, xs) for (cam, t), xs in sorted(groups.items(), key=lambda kv: kv[0])]

    def frame_spec(self, camera: str, t: float) -> ImageSpec:
        """A single frame at `t`, at the size the family's resize gives it."""
        h, w = self.ds.camera_shape(camera)
        fw, fh = fit_size(w, h, self.cfg.frame_side)
        size = model_image_size(self.fam, fw, fh, self.cfg.max_pixels, self.cfg.min_pixels)
        return ImageSpec(camera, (t,), size)

    def sheet_spec(self, camera: str, times: tuple[float, ...]) -> ImageSpec:
        """A contact sheet of `times`, at the size the family's resize gives it."""
        h, w = self.ds.camera_shape(camera)
        cols, rows = sheet_grid(len(times))
        sw, sh = fit_size(w * cols, h * rows, self.cfg.sheet_side)
        size = model_image_size(self.fam, sw, sh, self.cfg.max_pixels, self.cfg.min_pixels)
        return ImageSpec(camera, times, size, cols)

    def grounding_fields(self, camera: str, t: float, size: tuple[int, int]) -> dict[str, str]:
        """The prompt fields every single-frame grounding task fills."""
        return {
            "task": self.task_text,
            "time": f"{t:.2f}",
            "camera": camera,
            "coords": coord_hint(self.fam, size),
        }


def contact_time(b: SampleBuilder, context: EpisodeAnnotation | None, camera: str) -> tuple[float, str]:
    """When the gripper touches the object: a known contact, else a grasp segment, else mid-episode."""
    if context is not None:
        hits = [c.t for c in context.contacts if c.camera == camera] or [c.t for c in context.contacts]
        if hits:
            return b.t(hits[0]), "contacts"
        for s in context.segments:
            if "grasp" in s.name.lower() or "grip" in s.name.lower():
                return b.t((s.start + s.end) / 2), f"segment '{s.name}'"
    return b.t(b.duration / 2), "middle"
