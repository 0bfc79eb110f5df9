"""THE prompt builder: one place that turns an episode into model samples.

Inference (the VLM engines), export (LLaVA / Qwen JSON) and training (the
trainer) all call this module, so a model is trained on exactly the prompts,
images and coordinate convention it is later asked with.

A `Sample` names its images (`ImageSpec`: camera + times, a single frame or a
contact sheet, at the size the model sees), the filled prompt, and the answer
(the training target, "" for inference). Images come before the prompt, in
order (see `chat_messages`). Answers are compact JSON; each task's module in
core.vlm.tasks says its format, when it looks and how its answers are read
(segmentation, box_current, box_final, box_contact, gripper, trajectory,
trajectory_from_start, contact_point, qa_choice, qa_open, dialogue, and
describe, the inference-only first pass of describe-then-segment).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from core.annotations import CAMERA_FIELDS, EpisodeAnnotation, frame_at
from core.dataset import Dataset
from core.vlm import tasks as registry
from core.vlm.builder import ImageSpec, Sample, SampleBuilder, cameras, coord_hint, windows
from core.vlm.config import SampleConfig
from core.vlm.tasks._boxes import BoxTask
from core.vlm.tasks.describe import DESCRIBE as _DESCRIBE_TASK
from core.vlm.tasks.segmentation import SEGMENTATION

if TYPE_CHECKING:
    from PIL import Image

    from core.video import FrameReader

__all__ = [
    "BOX_TASK_KIND",
    "DESCRIBE",
    "KIND_TASKS",
    "TASKS",
    "TASK_KIND",
    "ImageSpec",
    "Sample",
    "SampleConfig",
    "build_inference_requests",
    "build_samples",
    "chat_messages",
    "coord_hint",
    "render_images",
    "windows",
    "with_description",
]

# The built-in trained tasks, in order (tasks registered later: core.vlm.tasks.trained_names()).
TASKS: tuple[str, ...] = registry.trained_names()
# Not trained (no data carries it): the describe pass before segmentation.
DESCRIBE = _DESCRIBE_TASK.name
# Which data-model field each task fills (the engines' `kinds`).
TASK_KIND: dict[str, str] = {t.name: t.kind for t in registry.ordered() if t.trained and t.kind}
BOX_TASK_KIND: dict[str, str] = {t.name: t.box_kind for t in registry.ordered() if isinstance(t, BoxTask)}
# The tasks an engine runs for a requested data-model kind.
KIND_TASKS: dict[str, tuple[str, ...]] = registry.kind_tasks()


def _check_tasks(tasks: Iterable[str] | None) -> tuple[str, ...]:
    known = registry.trained_names()
    if tasks is None:
        return known
    tasks = tuple(tasks)
    unknown = [t for t in tasks if t not in known]
    if unknown:
        raise ValueError(f"tasks {unknown}: unknown (known: {', '.join(known)})")
    return tasks


def with_description(sample: Sample, description: str) -> Sample:
    """The segmentation sample with the describe pass's answer put into its prompt."""
    if sample.task != SEGMENTATION.name:
        raise ValueError(f"sample {sample.id}: only segmentation samples take a description")
    return SEGMENTATION.with_description(sample, description)


def build_inference_requests(
    dataset: Dataset,
    episode: int,
    family: str = "qwen2_5_vl",
    tasks: Iterable[str] | None = None,
    *,
    config: SampleConfig | None = None,
    context: EpisodeAnnotation | None = None,
    dataset_id: str | None = None,
) -> list[Sample]:
    """Prompts (answer "") for the episode's `tasks` (None: every trained task).

    `context` (e.g. the kinematic engine's segments) places the contact frame and
    gives dialogue its skills; without it, contact tasks look at the middle of the
    episode and dialogue treats the whole task as one skill. With `describe` on,
    each segmentation window is preceded by a `describe` sample whose id its
    segmentation sample names in ``meta["after"]``.
    """
    cfg = config or SampleConfig()
    names = _check_tasks(tasks)
    b = SampleBuilder(dataset, dataset_id or dataset.name, episode, family, cfg, "")
    cams = cameras(dataset, cfg)
    out: list[Sample] = []
    for name in names:
        task = registry.get(name)
        for cam in cams:
            out.extend(task.requests(b, cam, context))
    return out


def build_samples(
    ann: EpisodeAnnotation,
    dataset: Dataset,
    family: str = "qwen2_5_vl",
    tasks: Iterable[str] | None = None,
    *,
    config: SampleConfig | None = None,
) -> list[Sample]:
    """Training samples (prompt + answer) from a reviewed annotation (`tasks` None: every trained task).

    One sample per window (segmentation), per (camera, time) group of boxes of a
    kind, per trajectory (both trajectory tasks), per (camera, time) group of
    contacts and of QAs of a kind, and per dialogue turn. Tasks the annotation has
    no data for give no samples. The dataset is opened to know camera sizes and
    the frame grid; frames are decoded only by `render_images`.
    """
    cfg = config or SampleConfig()
    names = _check_tasks(tasks)
    if ann.episode not in dataset.episodes:
        raise ValueError(f"annotation of {ann.dataset} episode {ann.episode}: not in dataset {dataset.root}")
    used = {item.camera for kind in CAMERA_FIELDS for item in getattr(ann, kind)}
    cams = cameras(dataset, cfg, used)
    first = (cfg.cameras or tuple(dataset.cameras) or ("",))[0]
    b = SampleBuilder(dataset, ann.dataset, ann.episode, family, cfg, ann.task, cams, first)
    out: list[Sample] = []
    for name in names:
        out.extend(registry.get(name).samples(b, ann))
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
