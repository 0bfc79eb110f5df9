"""The data card of a conversation export: `export.json` (for programs) and README.md (for people).

Both say what a trainer must be told to read the export as written: the folder
the image paths are relative to, the coordinate convention and, for Qwen, the
pixel budget and the exact trainer flags that keep the trainer's resize the
identity. The README also gives the registry entry each of the four trainers
(`core.export.conversations`) wants.
"""

from __future__ import annotations

import re
from collections import Counter
from typing import Any

from core.export.base import ExportJob

ANNOTATIONS = "annotations.json"
IMAGES = "images"


def registry_name(dataset: str) -> str:
    """A Python identifier for the trainers' dataset registries (`data_dict` keys)."""
    name = re.sub(r"\W+", "_", f"robo_annotate_{dataset}").strip("_").lower()
    return name if not name[0].isdigit() else f"_{name}"


def trainer_flags(min_pixels: int, max_pixels: int) -> str:
    """The flags of qwen-vl-finetune's `train_qwen.py` (QwenLM's and RoboInterVLM's) for this budget."""
    return f"--min_pixels {min_pixels} --max_pixels {max_pixels}"


def export_info(
    fmt: str,
    family: str,
    job: ExportJob,
    records: list[dict[str, Any]],
    images: int,
    min_pixels: int | None,
    max_pixels: int | None,
) -> dict[str, Any]:
    """`export.json`: what was written and how a trainer must read it."""
    sizes = Counter(f"{w}x{h}" for r in records for w, h in r["source"]["image_size"])
    info: dict[str, Any] = {
        "format": fmt,
        "family": family,
        "dataset": job.dataset.name,
        "source": str(job.dataset.root),
        "episodes": job.report.episodes,
        "samples": len(records),
        "images": images,
        "annotations": ANNOTATIONS,
        "image_folder": ".",
        "image_keys": ["image", "images"],
        "coordinates": "pixels" if fmt == "qwen" else "normalized",
        "tasks": dict(sorted(Counter(r["task"] for r in records).items())),
        "image_sizes": dict(sorted(sizes.items())),
    }
    if min_pixels is not None and max_pixels is not None:
        info["pixel_budget"] = {"min_pixels": min_pixels, "max_pixels": max_pixels}
        info["trainer_flags"] = trainer_flags(min_pixels, max_pixels)
    return info


def _qwen_text(info: dict[str, Any], out: str, name: str) -> tuple[list[str], list[str]]:
    budget = info["pixel_budget"]
    flags = info["trainer_flags"]
    coords = [
        "Boxes (`bbox_2d`: x1, y1, x2, y2) and points (`point_2d`: x, y) are **absolute pixels of the image as",
        "written here**, origin at the top left. Divide x by the image width and y by its height (both in",
        "`source.image_size` and the JPEG itself) to get back to the camera frame.",
        "",
        "## Pixel budget",
        "",
        f"Every image was written at a size that Qwen2.5-VL's `smart_resize` keeps as it is under the budget "
        f"min_pixels = {budget['min_pixels']:,}, max_pixels = {budget['max_pixels']:,}",
        "(sides multiples of 28, area inside the budget). Train with exactly that budget:",
        "",
        "```",
        flags,
        "```",
        "",
        "With any other `--min_pixels/--max_pixels` the trainer resizes the images again and every coordinate in",
        "the answers is off by the resize factor, without an error. Export again with `--min-pixels/--max-pixels`",
        "to train with another budget.",
    ]
    usage = [
        "Both QwenLM's `qwen-vl-finetune` (`qwenvl/data/data_qwen.py`, reads `image`) and RoboInterVLM's",
        "(reads `images`) take a dataset from the registry in `qwenvl/data/__init__.py`:",
        "",
        "```python",
        f'{name.upper()} = {{"annotation_path": "{out}/{ANNOTATIONS}", "data_path": "{out}"}}',
        f'data_dict["{name}"] = {name.upper()}',
        "```",
        "",
        "```bash",
        f"torchrun --nproc_per_node 8 qwenvl/train/train_qwen.py --dataset_use {name} {flags} ...",
        "```",
    ]
    return coords, usage


def _llava_text(out: str, name: str) -> tuple[list[str], list[str]]:
    coords = [
        "Boxes (`bbox_2d`: x1, y1, x2, y2) and points (`point_2d`: x, y) are **normalized to [0, 1]** of the",
        "image width and height (3 decimals), origin at the top left. Images keep the camera's aspect ratio, so",
        "the same numbers hold on the original camera frame.",
    ]
    usage = [
        "LLaVA-NeXT (OneVision) `llava/train/train.py` reads `image` relative to `--image_folder`:",
        "",
        "```bash",
        f"--data_path {out}/{ANNOTATIONS} --image_folder {out}",
        "```",
        "",
        "RoboInterVLM-LLaVAOV's `llava/train/train.py` reads `images` relative to the `data_path` of its registry",
        "(`llava/data.py`):",
        "",
        "```python",
        f'{name} = {{"annotation_path": "{out}/{ANNOTATIONS}", "data_path": "{out}"}}',
        f'data_dict["{name}"] = {name}',
        "```",
        "",
        f"and `--data_path {name}`.",
    ]
    return coords, usage


def conversation_card(info: dict[str, Any], job: ExportJob) -> str:
    """README.md of a llava / qwen export."""
    out = str(job.report.out)
    name = registry_name(job.dataset.name)
    if info["format"] == "qwen":
        coords, usage = _qwen_text(info, out, name)
    else:
        coords, usage = _llava_text(out, name)
    lines = [
        f"# {info['format']} export of {info['dataset']}",
        "",
        f"Written by RoboAnnotate from {info['episodes']} reviewed episode(s) of `{info['source']}`;",
        f"model family `{info['family']}`. Prompts and answers come from `core.vlm.samples` (the same prompts",
        "the annotation engines ask and the trainer trains on).",
        "",
        "## Files",
        "",
        f"- `{ANNOTATIONS}`: a JSON list of samples: `id`; `image` and `images` (the same list of paths, relative",
        "  to this directory: each trainer reads one of the two keys); `conversations` (`human` prompt with one",
        "  `<image>` tag per image at its start, in order, then the `gpt` answer); and `task` and `source`",
        "  (dataset, episode, time, camera, image sizes), which trainers ignore. No sample is a video clip.",
        f"- `{IMAGES}/`: the frames and contact sheets, JPEG, one file per distinct image.",
        "- `export.json`: this card for programs (budget, trainer flags, counts).",
        "",
        "## Coordinates",
        "",
        *coords,
        "",
        "## Using it",
        "",
        *usage,
        "",
        "## Contents",
        "",
        "| task | samples |",
        "|---|---|",
        *(f"| {t} | {n} |" for t, n in info["tasks"].items()),
        "",
        "Image sizes (width x height): " + ", ".join(f"{s} ({n})" for s, n in info["image_sizes"].items()),
        "",
    ]
    if job.report.warnings:
        lines += ["## Left out", "", *(f"- {w}" for w in job.report.warnings), ""]
    return "\n".join(lines)
