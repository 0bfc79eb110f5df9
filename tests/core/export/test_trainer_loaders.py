"""llava / qwen exports as the seeds' own training code reads them.

The four trainers cannot be installed here (each is a repository, not a
package), so each test runs a faithful minimal re-implementation of its
loader's key-reading logic, cited by repository and path, and the parts that
are installed are the real ones: transformers' Qwen2-VL image processor (the
resize every Qwen trainer runs) and a Qwen2.5-VL model (tiny, random weights)
whose forward pass refuses a prompt whose image tokens do not match the
images. Each loader is also shown the previous layout (only `image`), which the
issue found silently broken in the RoboInterVLM trainers, so the
re-implementations are seen to tell the two apart.
"""

from __future__ import annotations

import copy
import json
import os
import re
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

# Qwen2.5-VL ids and the chat template qwen-vl-finetune tokenizes with (data_qwen.py, both repositories).
QWEN_CHAT_TEMPLATE = (
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + "
    "'<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
DEFAULT_IMAGE_TOKEN = "<image>"


def _records(out: Path) -> list[dict]:
    return json.loads((out / "annotations.json").read_text())


def _one_per_task(out: Path) -> list[dict]:
    seen: dict[str, dict] = {}
    for r in _records(out):
        seen.setdefault(r["task"], r)
    return list(seen.values())


def _registry(out: Path) -> dict[str, str]:
    """The dataset entry the registries (`data_dict`) of three of the trainers take, as our README gives it."""
    return {"annotation_path": str(out / "annotations.json"), "data_path": str(out)}


def _with_registry(records: list[dict], entry: dict[str, str]) -> list[dict]:
    # QwenLM/Qwen3-VL and wz7in/RoboInterVLM qwen-vl-finetune/qwenvl/data/data_qwen.py and
    # InternRobotics/RoboInter RoboInterVLM/RoboInterVLM-LLaVAOV/llava/train/train.py,
    # LazySupervisedDataset.__init__: `for ann in annotations: ann["data_path"] = data["data_path"]`.
    return [{**r, "data_path": entry["data_path"]} for r in records]


# ------------------------------------------------------------------ LLaVA family


def _preprocess_multimodal(conversations: list[dict]) -> list[dict]:
    # LLaVA-VL/LLaVA-NeXT llava/train/train.py preprocess_multimodal (same in RoboInterVLM-LLaVAOV):
    # a single <image> not at the start is moved there; nothing else changes the tags.
    out = copy.deepcopy(conversations)
    for sentence in out:
        num_im = len(re.findall(DEFAULT_IMAGE_TOKEN, sentence["value"]))
        if num_im == 1 and not sentence["value"].startswith(DEFAULT_IMAGE_TOKEN):
            sentence["value"] = (
                DEFAULT_IMAGE_TOKEN + "\n" + sentence["value"].replace(DEFAULT_IMAGE_TOKEN, "").strip()
            )
    return out


def llava_next_item(record: dict, image_folder: str) -> dict[str, Any]:
    """LLaVA-VL/LLaVA-NeXT llava/train/train.py LazySupervisedDataset._get_item + process_image
    (OneVision): `image` (a path or a list) opened at os.path.join(--image_folder, path); several
    images are padded square; no `image`/`video` key: a zero image with modality "text"."""
    if "image" in record:
        files = record["image"] if isinstance(record["image"], list) else [record["image"]]
        images = [Image.open(os.path.join(image_folder, f)).convert("RGB") for f in files]
        return {
            "images": images,
            "modality": "image",
            "conversations": _preprocess_multimodal(record["conversations"]),
        }
    if "video" in record:
        raise AssertionError("no export sample is a clip")
    return {"images": [], "modality": "text", "conversations": copy.deepcopy(record["conversations"])}


def robointer_llava_item(record: dict) -> dict[str, Any]:
    """InternRobotics/RoboInter RoboInterVLM/RoboInterVLM-LLaVAOV/llava/train/train.py
    LazySupervisedDataset._get_item: `images` (a path or a list) at os.path.join(record["data_path"], path)
    (data_path from the registry in llava/data.py); without `images` the sample keeps its literal
    <image> text and trains on a zero image with modality "text"."""
    if "images" in record:
        files = record["images"] if isinstance(record["images"], list) else [record["images"]]
        images = [Image.open(os.path.join(record["data_path"], f)).convert("RGB") for f in files]
        return {
            "images": images,
            "modality": "image",
            "conversations": _preprocess_multimodal(record["conversations"]),
        }
    return {"images": [], "modality": "text", "conversations": copy.deepcopy(record["conversations"])}


def _check_llava_item(item: dict, record: dict) -> None:
    # LLaVA-NeXT llava/model/llava_arch.py prepare_inputs_labels_for_multimodal: each <image> token of
    # the sample (IMAGE_TOKEN_INDEX after preprocess_qwen) takes the sample's next image's features.
    human, gpt = item["conversations"]
    assert item["modality"] == "image"
    assert human["value"].count(DEFAULT_IMAGE_TOKEN) == len(item["images"]) == len(record["image"])
    assert DEFAULT_IMAGE_TOKEN not in gpt["value"]
    for img, size in zip(item["images"], record["source"]["image_size"], strict=True):
        assert list(img.size) == size


def test_llava_next_loads_every_task(llava: Path):
    records = _one_per_task(llava)
    assert len(records) >= 10
    for r in records:
        _check_llava_item(llava_next_item(r, image_folder=str(llava)), r)


def test_robointer_llava_ov_loads_every_task(llava: Path):
    records = _with_registry(_one_per_task(llava), _registry(llava))
    for r in records:
        _check_llava_item(robointer_llava_item(r), r)


def test_the_previous_layout_trained_robointer_llava_ov_without_images(llava: Path):
    """What the issue found: with `image` only, every sample fell to the zero image (modality "text")."""
    (r,) = _with_registry(_one_per_task(llava)[:1], _registry(llava))
    old = {k: v for k, v in r.items() if k != "images"}
    assert robointer_llava_item(old)["modality"] == "text"
    assert llava_next_item(old, image_folder=str(llava))["modality"] == "image"


# ------------------------------------------------------------------ Qwen family


@pytest.fixture(scope="module")
def qwen_parts(tiny_qwen: Path):
    from transformers import AutoModelForImageTextToText, AutoProcessor

    processor = AutoProcessor.from_pretrained(tiny_qwen)
    model = AutoModelForImageTextToText.from_pretrained(tiny_qwen).eval()
    return processor, model


def _image_processor(processor, min_pixels: int, max_pixels: int):
    # data_qwen.py LazySupervisedDataset.__init__ (both repositories): the trainer's --min_pixels /
    # --max_pixels become the image processor's budget (its `size`; the `min_pixels`/`max_pixels`
    # attributes it also sets are the deprecated spelling of the same in this transformers).
    ip = copy.deepcopy(processor.image_processor)
    ip.size = {"shortest_edge": min_pixels, "longest_edge": max_pixels}
    return ip


def _process_image_unified(ip, path: str):
    # data_qwen.py process_image_unified: the processor's own resize, then pixel_values and image_grid_thw.
    out = ip.preprocess(Image.open(path).convert("RGB"), return_tensors="pt")
    return out["pixel_values"], out["image_grid_thw"][0]


def _preprocess_qwen_2_visual(conversations: list[dict], tokenizer, grid_thw_image) -> list[int]:
    # data_qwen.py preprocess_qwen_2_visual: in user turns each "<image>" becomes
    # <|vision_start|> + <|image_pad|> x grid_thw_image[i] + <|vision_end|>, in order; a record without
    # images passes grid_thw_image=None, which an "<image>" tag then subscripts.
    roles = {"human": "user", "gpt": "assistant"}
    tok = copy.deepcopy(tokenizer)
    tok.chat_template = QWEN_CHAT_TEMPLATE

    def encode(messages: list[dict]) -> list[int]:
        out = tok.apply_chat_template(messages, tokenize=True)
        return list(out["input_ids"] if hasattr(out, "keys") else out)

    ids = encode([{"role": "system", "content": "You are a helpful assistant."}])
    index = 0
    for conv in conversations:
        role, content = roles.get(conv["from"], conv["from"]), conv["value"]
        if role == "user" and "<image>" in content:
            parts = content.split("<image>")
            new = []
            for i in range(len(parts) - 1):
                new.append(parts[i])
                new.append("<|vision_start|>" + "<|image_pad|>" * grid_thw_image[index] + "<|vision_end|>")
                index += 1
            new.append(parts[-1])
            content = "".join(new)
        ids += encode([{"role": role, "content": content}])
    return ids


def qwen_item(record: dict, ip, tokenizer, key: str, need_len: bool) -> dict[str, Any]:
    """qwen-vl-finetune/qwenvl/data/data_qwen.py LazySupervisedDataset._get_item: QwenLM/Qwen3-VL's reads
    `image` (key="image"); wz7in/RoboInterVLM's reads `images` and also wants it non-empty
    (need_len). Paths are joined to record["data_path"]; merged grid = prod(grid_thw) // merge_size**2."""
    files = record.get(key)
    if files is not None and (not need_len or len(files)):
        files = files if isinstance(files, list) else [files]
        results = [_process_image_unified(ip, os.path.join(record["data_path"], f)) for f in files]
        pixel_values = [p for p, _ in results]
        grids = [g for _, g in results]
        merged = [int(g.prod()) // ip.merge_size**2 for g in grids]
        input_ids = _preprocess_qwen_2_visual(record["conversations"], tokenizer, merged)
        return {"input_ids": input_ids, "pixel_values": pixel_values, "image_grid_thw": grids}
    input_ids = _preprocess_qwen_2_visual(record["conversations"], tokenizer, None)
    return {"input_ids": input_ids, "pixel_values": None, "image_grid_thw": None}


def _forward(model, item: dict) -> None:
    """The model's own check: as many image tokens as image features, or it raises."""
    import torch

    with torch.no_grad():
        model(
            input_ids=torch.tensor([item["input_ids"]]),
            pixel_values=torch.cat(item["pixel_values"]),
            image_grid_thw=torch.stack(item["image_grid_thw"]),
        )


@pytest.mark.parametrize("fixture", ["qwen", "qwen_sft"])
def test_qwen_trainers_load_every_task_at_the_recorded_budget_unresized(fixture: str, request, qwen_parts):
    """Both qwen-vl-finetune loaders, given the README's registry entry and trainer flags, read the same
    sample, take every image at the size written (the grid is the JPEG's size / 14), and the model
    accepts the tokens."""
    import torch

    out: Path = request.getfixturevalue(fixture)
    processor, model = qwen_parts
    budget = json.loads((out / "export.json").read_text())["pixel_budget"]
    ip = _image_processor(processor, budget["min_pixels"], budget["max_pixels"])
    records = _with_registry(_one_per_task(out), _registry(out))
    assert len(records) >= 10
    for r in records:
        qwenlm = qwen_item(r, ip, processor.tokenizer, "image", need_len=False)
        robointer = qwen_item(r, ip, processor.tokenizer, "images", need_len=True)
        assert qwenlm["pixel_values"] is not None, r["id"]
        assert qwenlm["input_ids"] == robointer["input_ids"]
        assert all(
            torch.equal(a, b) for a, b in zip(qwenlm["pixel_values"], robointer["pixel_values"], strict=True)
        )
        for grid, (w, h) in zip(qwenlm["image_grid_thw"], r["source"]["image_size"], strict=True):
            assert grid.tolist() == [1, h // 14, w // 14], r["id"]  # the trainer's resize left it alone
        _forward(model, qwenlm)


def test_the_previous_layout_failed_in_robointers_qwen_trainer(qwen: Path, qwen_parts):
    """What the issue found: with `image` only, RoboInterVLM's loader takes the text path and fails."""
    processor, _ = qwen_parts
    ip = _image_processor(processor, 3136, 12845056)
    (r,) = _with_registry(_one_per_task(qwen)[:1], _registry(qwen))
    old = {k: v for k, v in r.items() if k != "images"}
    with pytest.raises(TypeError, match="'NoneType' object is not subscriptable"):
        qwen_item(old, ip, processor.tokenizer, "images", True)
    assert qwen_item(old, ip, processor.tokenizer, "image", False)["pixel_values"] is not None


def test_another_budget_in_the_trainer_resizes_under_the_answers(qwen: Path, qwen_parts):
    """Why the budget is recorded: trained at sft.sh's --max_pixels 50176, the default export's frames are
    shrunk, and the pixels in their answers no longer point where they did."""
    processor, _ = qwen_parts
    ip = _image_processor(processor, 3136, 50176)
    r = next(r for r in _with_registry(_records(qwen), _registry(qwen)) if r["task"] == "box_current")
    item = qwen_item(r, ip, processor.tokenizer, "image", False)
    (w, h), grid = r["source"]["image_size"][0], item["image_grid_thw"][0]
    assert (w, h) == (308, 252) and grid.tolist() == [1, 196 // 14, 224 // 14]


def test_a_missing_image_tag_is_what_the_model_refuses(qwen: Path, qwen_parts):
    """The check above can fail: one <image> tag fewer than images and the forward pass raises."""
    processor, model = qwen_parts
    ip = _image_processor(processor, 3136, 12845056)
    r = next(r for r in _with_registry(_records(qwen), _registry(qwen)) if len(r["image"]) > 1)
    human = dict(r["conversations"][0], value=r["conversations"][0]["value"].replace("<image>\n", "", 1))
    item = qwen_item(
        {**r, "conversations": [human, r["conversations"][1]]}, ip, processor.tokenizer, "image", False
    )
    with pytest.raises(ValueError, match="Image features and image tokens do not match"):
        _forward(model, item)
