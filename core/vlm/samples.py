"""THE prompt builder: one place that turns an episode into model samples.

Inference (the VLM engines), export (LLaVA / Qwen JSON) and training (the
trainer) all call this module, so a model is trained on exactly the prompts,
images and coordinate convention it is later asked with.

A `Sample` names its images (`ImageSpec`: camera + times, a single frame or a
contact sheet, at the size the model sees), the filled prompt, and the answer
(the training target, "" for inference). Images come before the prompt, in
order (see `chat_messages`). Answers are compact JSON; per task:

- ``segmentation``: ``[{"name": str, "start": s, "end": s}, ...]``, seconds from
  the episode start, ordered and gap-free over the sample's window
  (``meta["window"]``); images: contact sheets with each tile's time burned in.
- ``box_current`` / ``box_final`` / ``box_contact`` / ``gripper``:
  ``[{"bbox_2d": [x1, y1, x2, y2], "label": str}, ...]`` on one frame at
  ``meta["t"]``, in the family's coordinates (Qwen2.5-VL: pixels of the image
  as sent; Qwen2-VL / Qwen3-VL: integers 0..1000; LLaVA-OneVision: 0..1 floats).
  `box_final` is where the object should end up (the target), drawn on the frame
  at the box's time (the episode start).
- ``trajectory``: ``[{"t": s, "point_2d": [x, y]}, ...]``, the gripper in each of
  the sample's frames (one per time, all the same size).
- ``trajectory_from_start``: the same list, all points drawn on the first frame
  (the path to come).
- ``contact_point``: ``[{"point_2d": [x, y], "label": "contact"}]`` on the frame at
  ``meta["t"]``.
- ``qa_choice``: ``[{"question": str, "choices": [str, ...], "answer": str}, ...]``;
  ``qa_open``: ``[{"question": str, "answer": str}, ...]``; one frame at ``meta["t"]``.
- ``dialogue``: ``{"user_prompt": str, "robot_utterance": str, "scenario_type": str,
  "response_type": str}`` for the skill ``meta["skill"]`` starting at ``meta["t"]``.
- ``describe`` (inference only, the first pass of describe-then-segment): free
  text; its answer is put into the window's segmentation prompt (`with_description`).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from core.annotations import (
    QA,
    RESPONSE_TYPES,
    SCENARIO_TYPES,
    Box,
    Contact,
    EpisodeAnnotation,
    Segment,
    frame_at,
    interpolate_point,
    segment_at,
    snap_time,
)
from core.dataset import Dataset
from core.vlm import prompts
from core.vlm.coords import Family, family, model_image_size, to_model
from core.vlm.frames import fit_size, sample_times, sheet_grid

if TYPE_CHECKING:
    from PIL import Image

    from core.video import FrameReader

TASKS: tuple[str, ...] = (
    "segmentation",
    "box_current",
    "box_final",
    "box_contact",
    "gripper",
    "trajectory",
    "trajectory_from_start",
    "contact_point",
    "qa_choice",
    "qa_open",
    "dialogue",
)
# Not trained (no data carries it): the describe pass before segmentation.
DESCRIBE = "describe"

# Which data-model field each task fills (the engines' `kinds`).
TASK_KIND: dict[str, str] = {
    "segmentation": "segments",
    "box_current": "boxes",
    "box_final": "boxes",
    "box_contact": "boxes",
    "gripper": "boxes",
    "trajectory": "trajectories",
    "trajectory_from_start": "trajectories",
    "contact_point": "contacts",
    "qa_choice": "qa",
    "qa_open": "qa",
    "dialogue": "dialogue",
}
BOX_TASK_KIND: dict[str, str] = {
    "box_current": "current",
    "box_final": "final",
    "box_contact": "contact",
    "gripper": "gripper",
}
# The tasks an engine runs for a requested data-model kind.
KIND_TASKS: dict[str, tuple[str, ...]] = {
    "segments": ("segmentation",),
    "boxes": ("box_current", "box_final", "box_contact", "gripper"),
    "trajectories": ("trajectory",),
    "contacts": ("contact_point",),
    "qa": ("qa_choice", "qa_open"),
    "dialogue": ("dialogue",),
}


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


# ---------------------------------------------------------------- helpers


def _fam(name: str) -> Family:
    return family(name)


def coord_hint(fam: Family, size: tuple[int, int]) -> str:
    """The sentence that tells a model its coordinate convention (part of every grounding prompt)."""
    if fam.coords == "pixels":
        return f"Coordinates are absolute pixels on this {size[0]}x{size[1]} image, origin at the top left."
    if fam.coords == "grid1000":
        return "Coordinates are integers from 0 to 1000, relative to the image width and height, origin at the top left."
    return "Coordinates are fractions from 0 to 1 of the image width and height, origin at the top left."


def _frame_size(ds: Dataset, camera: str, fam: Family, cfg: SampleConfig, side: int) -> tuple[int, int]:
    h, w = ds.camera_shape(camera)
    fw, fh = fit_size(w, h, side)
    return model_image_size(fam, fw, fh, cfg.max_pixels, cfg.min_pixels)


def _sheet_size(
    ds: Dataset, camera: str, n: int, fam: Family, cfg: SampleConfig
) -> tuple[tuple[int, int], int]:
    h, w = ds.camera_shape(camera)
    cols, rows = sheet_grid(n)
    sw, sh = fit_size(w * cols, h * rows, cfg.sheet_side)
    return model_image_size(fam, sw, sh, cfg.max_pixels, cfg.min_pixels), cols


def _grid(t: float, fps: float, duration: float) -> float:
    """t snapped to the frame grid and kept inside the episode."""
    n = max(1, round(duration * fps))
    return round(frame_at(snap_time(t, fps), fps, n) / fps, 6)


def _dump(obj: Any) -> str:
    return json.dumps(obj, ensure_ascii=False, separators=(", ", ": "))


def _cameras(ds: Dataset, cfg: SampleConfig, used: Iterable[str] | None = None) -> list[str]:
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


def windows(duration: float, cfg: SampleConfig) -> list[tuple[float, float]]:
    """Overlapping segmentation windows covering [0, duration]; one window when it fits."""
    if duration <= cfg.window_s:
        return [(0.0, duration)]
    step = cfg.window_s - cfg.window_overlap_s
    n = math.ceil((duration - cfg.window_overlap_s) / step)
    step = (duration - cfg.window_s) / (n - 1) if n > 1 else step
    return [(round(i * step, 6), round(min(duration, i * step + cfg.window_s), 6)) for i in range(n)]


class _Builder:
    """Shared state for one episode's samples."""

    def __init__(
        self, ds: Dataset, dataset_id: str, episode: int, fam: str, cfg: SampleConfig, task_text: str
    ) -> None:
        self.ds, self.dataset_id, self.episode = ds, dataset_id, episode
        self.fam = _fam(fam)
        self.cfg = cfg
        info = ds.episode(episode)
        self.fps = float(ds.fps)
        self.duration = info.length / self.fps
        self.task_text = task_text or info.task or "(no task given)"
        self.count: dict[str, int] = {}

    def sample(self, task: str, images: list[ImageSpec], prompt: str, answer: str, **meta: Any) -> Sample:
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
        return _grid(t, self.fps, self.duration)

    # ------------------------------------------------------------ per task

    def segmentation(
        self, window: tuple[float, float], camera: str, description: str = ""
    ) -> tuple[Sample, Sample | None]:
        """The segmentation sample of a window and (when describing) its describe sample."""
        cfg = self.cfg
        a, b = window
        per_sheet = cfg.sheet_frames
        times = sample_times(a, b, self.fps, cfg.rate, per_sheet * cfg.sheets_per_window)
        chunks = [tuple(times[i : i + per_sheet]) for i in range(0, len(times), per_sheet)]
        images = []
        for chunk in chunks:
            size, cols = _sheet_size(self.ds, camera, len(chunk), self.fam, cfg)
            images.append(ImageSpec(camera, chunk, size, cols))
        vocab = "Use only these names: " + ", ".join(cfg.vocabulary) + "." if cfg.vocabulary else ""
        fields = {
            "task": self.task_text,
            "duration": f"{self.duration:.2f}",
            "window_start": f"{a:.2f}",
            "window_end": f"{b:.2f}",
            "n_frames": len(times),
            "camera": camera,
        }
        seg_prompt = prompts.render(
            "segmentation", vocabulary=vocab, description=_description_block(description), **fields
        )
        meta = {"window": (a, b), "camera": camera, "times": list(times), "vocabulary": list(cfg.vocabulary)}
        seg = self.sample("segmentation", images, seg_prompt, "", **meta)
        desc = None
        if cfg.describe:
            desc = self.sample(DESCRIBE, images, prompts.render(DESCRIBE, **fields), "", **meta)
            seg.meta["after"] = desc.id
        return seg, desc

    def frame_spec(self, camera: str, t: float) -> ImageSpec:
        return ImageSpec(camera, (t,), _frame_size(self.ds, camera, self.fam, self.cfg, self.cfg.frame_side))

    def box(self, task: str, camera: str, t: float, boxes: Sequence[Box] = ()) -> Sample:
        spec = self.frame_spec(camera, t)
        prompt = prompts.render(
            task,
            task=self.task_text,
            time=f"{t:.2f}",
            camera=camera,
            coords=coord_hint(self.fam, spec.size),
        )
        answer = (
            _dump([{"bbox_2d": to_model(b.xyxy, self.fam, spec.size), "label": b.label} for b in boxes])
            if boxes
            else ""
        )
        return self.sample(
            task, [spec], prompt, answer, t=t, camera=camera, kind=BOX_TASK_KIND[task], image_size=spec.size
        )

    def contact(self, camera: str, t: float, contacts: Sequence[Contact] = ()) -> Sample:
        spec = self.frame_spec(camera, t)
        prompt = prompts.render(
            "contact_point",
            task=self.task_text,
            time=f"{t:.2f}",
            camera=camera,
            coords=coord_hint(self.fam, spec.size),
        )
        answer = (
            _dump(
                [
                    {"point_2d": to_model((c.x, c.y), self.fam, spec.size), "label": "contact"}
                    for c in contacts
                ]
            )
            if contacts
            else ""
        )
        return self.sample("contact_point", [spec], prompt, answer, t=t, camera=camera, image_size=spec.size)

    def trajectory(
        self,
        task: str,
        camera: str,
        times: Sequence[float],
        points: Sequence[tuple[float, float, float]] = (),
    ) -> Sample:
        times = [self.t(t) for t in times]
        times = sorted(set(times))
        if task == "trajectory":
            specs = [self.frame_spec(camera, t) for t in times]
            shown = times
        else:
            specs = [self.frame_spec(camera, times[0])]
            shown = [times[0]]
        size = specs[0].size
        prompt = prompts.render(
            task,
            task=self.task_text,
            time=f"{shown[0]:.2f}",
            times=", ".join(f"{t:.2f}" for t in times),
            camera=camera,
            coords=coord_hint(self.fam, size),
        )
        answer = ""
        if points:
            rows = []
            for t in times:
                x, y = interpolate_point(points, t)  # type: ignore[misc]
                rows.append({"t": round(t, 2), "point_2d": to_model((x, y), self.fam, size)})
            answer = _dump(rows)
        return self.sample(
            task, specs, prompt, answer, camera=camera, times=times, t=shown[0], image_size=size
        )

    def qa(self, task: str, camera: str, t: float, items: Sequence[QA] = ()) -> Sample:
        spec = self.frame_spec(camera, t)
        count = len(items) if items else self.cfg.qa_count
        prompt = prompts.render(task, task=self.task_text, time=f"{t:.2f}", camera=camera, count=count)
        answer = ""
        if items:
            if task == "qa_choice":
                answer = _dump(
                    [{"question": q.question, "choices": list(q.choices), "answer": q.answer} for q in items]
                )
            else:
                answer = _dump([{"question": q.question, "answer": q.answer} for q in items])
        return self.sample(task, [spec], prompt, answer, t=t, camera=camera, image_size=spec.size)

    def dialogue(
        self, camera: str, t: float, skill: str, span: tuple[float, float], turn: Any = None
    ) -> Sample:
        spec = self.frame_spec(camera, t)
        prompt = prompts.render(
            "dialogue",
            task=self.task_text,
            time=f"{t:.2f}",
            camera=camera,
            skill=skill,
            start=f"{span[0]:.2f}",
            end=f"{span[1]:.2f}",
            scenario_types=", ".join(SCENARIO_TYPES),
            response_types=", ".join(RESPONSE_TYPES),
        )
        answer = ""
        if turn is not None:
            answer = _dump(
                {
                    "user_prompt": turn.user_prompt,
                    "robot_utterance": turn.robot_utterance,
                    "scenario_type": turn.scenario_type,
                    "response_type": turn.response_type,
                }
            )
        return self.sample("dialogue", [spec], prompt, answer, t=t, camera=camera, skill=skill, span=span)


def _description_block(text: str) -> str:
    text = " ".join(text.split())
    return f"A first look at the frames described them so: {text}\n" if text else ""


def with_description(sample: Sample, description: str) -> Sample:
    """The segmentation sample with the describe pass's answer put into its prompt."""
    if sample.task != "segmentation":
        raise ValueError(f"sample {sample.id}: only segmentation samples take a description")
    a, b = sample.meta["window"]
    vocab = sample.meta.get("vocabulary") or []
    prompt = prompts.render(
        "segmentation",
        task=sample.meta["task_text"],
        duration=f"{sample.meta['duration']:.2f}",
        window_start=f"{a:.2f}",
        window_end=f"{b:.2f}",
        n_frames=len(sample.meta.get("times", [])),
        camera=sample.meta.get("camera", ""),
        vocabulary="Use only these names: " + ", ".join(vocab) + "." if vocab else "",
        description=_description_block(description),
    )
    return replace(sample, prompt=prompt, meta={**sample.meta, "description": description})


def _check_tasks(tasks: Iterable[str]) -> tuple[str, ...]:
    tasks = tuple(tasks)
    unknown = [t for t in tasks if t not in TASKS]
    if unknown:
        raise ValueError(f"tasks {unknown}: unknown (known: {', '.join(TASKS)})")
    return tasks


def _contact_time(b: _Builder, context: EpisodeAnnotation | None, camera: str) -> tuple[float, str]:
    """When the gripper touches the object: a known contact, else a grasp segment, else mid-episode."""
    if context is not None:
        hits = [c.t for c in context.contacts if c.camera == camera] or [c.t for c in context.contacts]
        if hits:
            return b.t(hits[0]), "contacts"
        for s in context.segments:
            if "grasp" in s.name.lower() or "grip" in s.name.lower():
                return b.t((s.start + s.end) / 2), f"segment '{s.name}'"
    return b.t(b.duration / 2), "middle"


def _even_times(a: float, b: float, n: int) -> list[float]:
    if n == 1:
        return [(a + b) / 2]
    return [a + k * (b - a) / (n - 1) for k in range(n)]


# ---------------------------------------------------------------- public API


def build_inference_requests(
    dataset: Dataset,
    episode: int,
    family: str = "qwen2_5_vl",
    tasks: Iterable[str] = TASKS,
    *,
    config: SampleConfig | None = None,
    context: EpisodeAnnotation | None = None,
    dataset_id: str | None = None,
) -> list[Sample]:
    """Prompts (answer "") for the episode's `tasks`.

    `context` (e.g. the kinematic engine's segments) places the contact frame and
    gives dialogue its skills; without it, contact tasks look at the middle of the
    episode and dialogue treats the whole task as one skill. With `describe` on,
    each segmentation window is preceded by a `describe` sample whose id its
    segmentation sample names in ``meta["after"]``.
    """
    cfg = config or SampleConfig()
    tasks = _check_tasks(tasks)
    b = _Builder(dataset, dataset_id or dataset.name, episode, family, cfg, "")
    cams = _cameras(dataset, cfg)
    last = b.t(b.duration)
    out: list[Sample] = []
    for task in tasks:
        for cam in cams:
            if task == "segmentation":
                for w in windows(b.duration, cfg):
                    seg, desc = b.segmentation(w, cam)
                    out.extend([desc, seg] if desc else [seg])
            elif task in ("box_current", "gripper"):
                for t in _even_times(0.0, last, cfg.box_frames):
                    out.append(b.box(task, cam, b.t(t)))
            elif task == "box_final":
                out.append(b.box(task, cam, 0.0))
            elif task in ("box_contact", "contact_point"):
                t, how = _contact_time(b, context, cam)
                s = b.box(task, cam, t) if task == "box_contact" else b.contact(cam, t)
                s.meta["t_source"] = how
                out.append(s)
            elif task == "trajectory":
                out.append(b.trajectory(task, cam, _even_times(0.0, last, cfg.trajectory_frames)))
            elif task == "trajectory_from_start":
                out.append(b.trajectory(task, cam, _even_times(0.0, last, cfg.trajectory_points)))
            elif task in ("qa_choice", "qa_open"):
                out.append(b.qa(task, cam, b.t(b.duration / 2)))
            elif task == "dialogue":
                segs = context.segments if context is not None and context.segments else []
                if not segs:
                    segs = [Segment(name=b.task_text, start=0.0, end=b.duration)]
                for s in segs:
                    out.append(b.dialogue(cam, b.t(s.start), s.name, (s.start, s.end)))
    return out


def build_samples(
    ann: EpisodeAnnotation,
    dataset: Dataset,
    family: str = "qwen2_5_vl",
    tasks: Iterable[str] = TASKS,
    *,
    config: SampleConfig | None = None,
) -> list[Sample]:
    """Training samples (prompt + answer) from a reviewed annotation.

    One sample per window (segmentation), per (camera, time) group of boxes of a
    kind, per trajectory (both trajectory tasks), per (camera, time) group of
    contacts and of QAs of a kind, and per dialogue turn. Tasks the annotation has
    no data for give no samples. The dataset is opened to know camera sizes and
    the frame grid; frames are decoded only by `render_images`.
    """
    cfg = config or SampleConfig()
    tasks = _check_tasks(tasks)
    if ann.episode not in dataset.episodes:
        raise ValueError(f"annotation of {ann.dataset} episode {ann.episode}: not in dataset {dataset.root}")
    b = _Builder(dataset, ann.dataset, ann.episode, family, cfg, ann.task)
    used = (
        {x.camera for x in ann.boxes}
        | {x.camera for x in ann.trajectories}
        | {x.camera for x in ann.contacts}
        | {x.camera for x in ann.qa}
    )
    cams = _cameras(dataset, cfg, used)
    cam_set = set(cams)
    first_cam = (cfg.cameras or tuple(dataset.cameras) or ("",))[0]
    out: list[Sample] = []
    for task in tasks:
        if task == "segmentation" and ann.segments:
            for a, z in windows(b.duration, cfg):
                seg, _ = b.segmentation((a, z), first_cam)
                spans = [
                    {"name": s.name, "start": round(max(s.start, a), 2), "end": round(min(s.end, z), 2)}
                    for s in ann.segments
                    if min(s.end, z) - max(s.start, a) > 1e-6
                ]
                if spans:
                    spans[0]["start"], spans[-1]["end"] = round(a, 2), round(z, 2)
                seg.answer = _dump(spans)
                out.append(seg)
        elif task in BOX_TASK_KIND:
            kind = BOX_TASK_KIND[task]
            groups: dict[tuple[str, float], list[Box]] = {}
            for bx in ann.boxes:
                if bx.kind == kind and bx.camera in cam_set:
                    groups.setdefault((bx.camera, b.t(bx.t)), []).append(bx)
            for (cam, t), boxes in sorted(groups.items()):
                out.append(b.box(task, cam, t, boxes))
        elif task in ("trajectory", "trajectory_from_start"):
            n = cfg.trajectory_frames if task == "trajectory" else cfg.trajectory_points
            for tr in ann.trajectories:
                if tr.camera not in cam_set or len(tr.points) < 2:
                    continue
                t0, t1 = tr.points[0][0], tr.points[-1][0]
                out.append(b.trajectory(task, tr.camera, _even_times(t0, t1, n), tr.points))
        elif task == "contact_point":
            cgroups: dict[tuple[str, float], list[Contact]] = {}
            for c in ann.contacts:
                if c.camera in cam_set:
                    cgroups.setdefault((c.camera, b.t(c.t)), []).append(c)
            for (cam, t), cs in sorted(cgroups.items()):
                out.append(b.contact(cam, t, cs))
        elif task in ("qa_choice", "qa_open"):
            kind = "choice" if task == "qa_choice" else "open"
            qgroups: dict[tuple[str, float], list[QA]] = {}
            for q in ann.qa:
                if q.kind == kind and q.camera in cam_set:
                    qgroups.setdefault((q.camera, b.t(q.t)), []).append(q)
            for (cam, t), qs in sorted(qgroups.items()):
                out.append(b.qa(task, cam, t, qs))
        elif task == "dialogue":
            for turn in ann.dialogue:
                seg = segment_at(ann.segments, turn.t)
                span = (
                    (seg.start, seg.end)
                    if seg is not None and seg.name == turn.skill
                    else (turn.t, ann.duration)
                )
                out.append(b.dialogue(first_cam, b.t(turn.t), turn.skill, span, turn))
    return out


def render_images(sample: Sample, dataset: Dataset, reader: FrameReader | None = None) -> list[Image.Image]:
    """The sample's images, decoded and laid out at the size the model sees (RGB PIL images)."""
    from PIL import Image as PILImage

    from core.video import FrameReader
    from core.vlm.frames import contact_sheet

    own = reader is None
    rd = reader or FrameReader(cache_bytes=64 * 2**20)
    try:
        out = []
        for spec in sample.images:
            ref = dataset.video(sample.episode, spec.camera)
            idx = [frame_at(t, ref.fps, ref.length) for t in spec.times]
            frames = rd.frames(ref, idx)
            if spec.is_sheet:
                out.append(contact_sheet(frames, spec.times, spec.size, spec.cols))
            else:
                img = PILImage.fromarray(frames[0])
                out.append(img.resize(spec.size, PILImage.Resampling.BICUBIC))
        return out
    finally:
        if own:
            rd.close()


def chat_messages(sample: Sample, with_answer: bool = False) -> list[dict[str, Any]]:
    """The sample as chat messages in the transformers / OpenAI content-list form
    (images first, then the prompt; the answer as the assistant turn when asked)."""
    content: list[dict[str, Any]] = [{"type": "image"} for _ in sample.images]
    content.append({"type": "text", "text": sample.prompt})
    msgs: list[dict[str, Any]] = [{"role": "user", "content": content}]
    if with_answer:
        msgs.append({"role": "assistant", "content": [{"type": "text", "text": sample.answer}]})
    return msgs
