"""`llava` and `qwen`: conversation JSON for VLM fine-tuning, frames as JPEG files.

The samples (tasks, prompts, answers, images and their sizes) come from the one
shared builder, `core.vlm.samples.build_samples`; this module lays them out so
that the official trainer and the seed's trainer of each family load them as
they are (their loaders, read for this layout):

- LLaVA-NeXT `llava/train/train.py` (`LazySupervisedDataset`, OneVision) reads
  `image` (a path or a list) relative to `--image_folder`;
- RoboInterVLM-LLaVAOV `llava/train/train.py` reads `images` relative to the
  `data_path` of its dataset registry (`llava/data.py`);
- QwenLM `qwen-vl-finetune/qwenvl/data/data_qwen.py` reads `image` relative to
  the registry's `data_path` (`qwenvl/data/__init__.py`);
- RoboInterVLM `qwen-vl-finetune/qwenvl/data/data_qwen.py` reads `images` there.

So every record carries the same list under both keys, paths relative to this
output directory (the folder each trainer is told about), and one `<image>`
tag per image at the start of the human turn, in order (all four replace the
tags in order with the images' tokens). No sample is a clip, so no record has
a `video` key. One layout serves all four; nothing is left to an option.

Coordinates follow the family (`core.vlm.coords`): LLaVA-OneVision answers are
normalized to [0, 1] of the image; Qwen2.5-VL answers are absolute pixels of
the image as written. Qwen trainers resize every image again with
`smart_resize` under their own `--min_pixels/--max_pixels`, so the qwen export
takes that budget (`min_pixels`, `max_pixels`; default RoboInterVLM's
3,136..12,845,056) and writes every image at a size that is a fixed point of
`smart_resize` under it: the trainer leaves it alone and a pixel in an answer
is a pixel the model sees. The budget is recorded in `export.json` and the
README with the exact trainer flags. An image the budget cannot hold, or a box
thinner than a pixel of its image, leaves its sample out with a warning that
names the episode and the item.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from core.export.base import ExportJob
from core.export.cards import ANNOTATIONS, IMAGES, conversation_card, export_info
from core.export.report import ExportError

FAMILY = {"llava": "llava_onevision", "qwen": "qwen2_5_vl"}
INFO = "export.json"
JPEG_QUALITY = 95
# The qwen export's default budget: RoboInterVLM's Qwen2.5-VL recipe (qwen-vl-finetune/scripts/sft.sh).
QWEN_MIN_PIXELS = 3136
QWEN_MAX_PIXELS = 12845056
# Warnings of one kind listed in full before they are counted.
WARN_LIMIT = 20


def _image_name(episode: int, spec: Any) -> str:
    """A stable file name per distinct image (same episode, camera, times, size, layout)."""
    key = repr((episode, spec.camera, tuple(round(t, 6) for t in spec.times), tuple(spec.size), spec.cols))
    digest = hashlib.sha1(key.encode()).hexdigest()[:16]
    kind = "sheet" if spec.is_sheet else "frame"
    cam = spec.camera.replace("/", "_")
    return f"{IMAGES}/ep{episode:06d}/{cam}/{kind}-{digest}.jpg"


def sample_record(sample: Any, images: list[str]) -> dict[str, Any]:
    """One sample as the trainers read it (plus `task` and `source`, which they ignore)."""
    tags = "".join("<image>\n" for _ in images)
    meta = sample.meta
    return {
        "id": sample.id,
        "image": list(images),
        "images": list(images),
        "conversations": [
            {"from": "human", "value": tags + sample.prompt.strip()},
            {"from": "gpt", "value": sample.answer},
        ],
        "task": sample.task,
        "source": {
            "dataset": sample.dataset,
            "episode": sample.episode,
            "t": meta.get("t"),
            "camera": meta.get("camera"),
            "image_size": [list(s.size) for s in sample.images],
        },
    }


def _where(sample: Any) -> str:
    meta = sample.meta
    at = f" at t={meta['t']:.2f} s" if isinstance(meta.get("t"), float | int) else ""
    cam = f" on {meta['camera']}" if meta.get("camera") else ""
    return f"episode {sample.episode}: {sample.task} sample {sample.id}{at}{cam}"


def degenerate_box(sample: Any, family: str) -> str | None:
    """Why a box answer cannot be trained on at the size written (a box with no area there), or None."""
    if '"bbox_2d"' not in sample.answer:
        return None
    from core.vlm.coords import family as get_family
    from core.vlm.coords import out_of_range

    size = tuple(sample.images[0].size)
    fam = get_family(family)
    for item in json.loads(sample.answer):
        x1, y1, x2, y2 = item["bbox_2d"]
        if out_of_range(item["bbox_2d"], fam, size):
            return f"box '{item.get('label')}' {item['bbox_2d']} falls outside the {size[0]}x{size[1]} image"
        if x2 <= x1 or y2 <= y1:
            unit = "px" if fam.coords == "pixels" else "at 3 decimals"
            return (
                f"box '{item.get('label')}' is {item['bbox_2d']} on the {size[0]}x{size[1]} image: "
                f"no width or height left ({unit})"
            )
    return None


class _Warnings:
    """Per-item warnings, the first WARN_LIMIT of each kind in full, the rest counted."""

    def __init__(self, job: ExportJob) -> None:
        self.job = job
        self.counts: dict[str, int] = {}

    def add(self, kind: str, message: str) -> None:
        n = self.counts[kind] = self.counts.get(kind, 0) + 1
        if n <= WARN_LIMIT:
            self.job.warn(message)

    def close(self) -> None:
        for kind, n in self.counts.items():
            if n > WARN_LIMIT:
                self.job.warn(f"... and {n - WARN_LIMIT} more samples left out: {kind}")


def _budget(job: ExportJob, fmt: str) -> tuple[int | None, int | None]:
    """The pixel budget the images are written for; refuses one no image can fit."""
    if fmt != "qwen":
        return None, None
    from core.vlm.coords import family

    lo = job.options.min_pixels or QWEN_MIN_PIXELS
    hi = job.options.max_pixels or QWEN_MAX_PIXELS
    factor = family(FAMILY[fmt]).factor
    if hi < factor * factor:
        raise ExportError(
            f"--max-pixels {hi}: too small for any image; the smallest image Qwen2.5-VL takes is "
            f"{factor}x{factor} = {factor * factor} pixels"
        )
    if lo > hi:
        raise ExportError(f"--min-pixels {lo} is above --max-pixels {hi}: no image fits that budget")
    return lo, hi


def write_conversations(job: ExportJob, out: Path, fmt: str) -> None:
    """Samples of every exported annotation, their images as JPEG, export.json and a README."""
    try:
        from core.video import FrameReader
        from core.vlm.coords import is_fixed_point
        from core.vlm.samples import SampleConfig, build_samples, render_images
    except ImportError as exc:  # core.vlm needs Pillow (a base dependency); say so if it is missing
        raise ExportError(f"the {fmt} export needs core.vlm and Pillow: {exc}") from exc

    family = FAMILY[fmt]
    ds = job.dataset
    lo, hi = _budget(job, fmt)
    config = SampleConfig(min_pixels=lo, max_pixels=hi)
    warnings = _Warnings(job)
    samples = []
    built = 0
    for ep in sorted(job.annotations):
        try:
            episode_samples = build_samples(job.annotations[ep], ds, family=family, config=config)
        except ValueError as exc:
            raise ExportError(f"episode {ep}: {exc}") from exc
        built += len(episode_samples)
        for sample in episode_samples:
            misfit = [s.size for s in sample.images if not is_fixed_point(family, s.size, hi, lo)]
            if misfit:
                w, h = misfit[0]
                warnings.add(
                    "the pixel budget cannot hold their images",
                    f"{_where(sample)}: no image size near {w}x{h} is left as it is by the trainer's resize "
                    f"under --min-pixels {lo} --max-pixels {hi}; the sample is left out",
                )
                continue
            why = degenerate_box(sample, family)
            if why is not None:
                warnings.add(
                    "a box has no area on its image", f"{_where(sample)}: {why}; the sample is left out"
                )
                continue
            samples.append(sample)
    if built and not samples and lo is not None:
        raise ExportError(
            f"--min-pixels {lo} --max-pixels {hi}: the budget holds none of the {built} samples' images "
            "(see the first warning); widen it to what the trainer is given"
        )
    warnings.close()
    written: dict[str, tuple[int, int]] = {}
    records = []
    reader = FrameReader(cache_bytes=128 * 2**20)
    try:
        for done, sample in enumerate(samples, 1):
            names = [_image_name(sample.episode, spec) for spec in sample.images]
            if any(n not in written for n in names):
                for name, spec, img in zip(
                    names, sample.images, render_images(sample, ds, reader), strict=True
                ):
                    if name in written:
                        continue
                    if img.size != tuple(spec.size):
                        raise ExportError(f"{sample.id}: rendered {img.size}, the sample says {spec.size}")
                    path = out / name
                    path.parent.mkdir(parents=True, exist_ok=True)
                    img.convert("RGB").save(path, "JPEG", quality=JPEG_QUALITY)
                    written[name] = img.size
            records.append(sample_record(sample, names))
            job.tick(done, len(samples))
    finally:
        reader.close()
    info = export_info(fmt, family, job, records, len(written), lo, hi)
    (out / ANNOTATIONS).write_text(json.dumps(records, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    (out / INFO).write_text(json.dumps(info, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    (out / "README.md").write_text(conversation_card(info, job), encoding="utf-8")
    job.report.samples = len(records)
    job.report.files += len(written) + 3


def conversation_writer(fmt: str) -> Callable[[ExportJob, Path], None]:
    if fmt not in FAMILY:
        raise ExportError(f"format '{fmt}' has no conversation layout (known: {', '.join(FAMILY)})")
    return lambda job, out: write_conversations(job, out, fmt)
