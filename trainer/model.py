"""The model a run trains: loaded in its precision, vision frozen, LoRA wrapped when asked."""

from __future__ import annotations

from typing import Any

from trainer.config import FinetuneConfig, FinetuneError

# LoRA goes on the language model's linear layers only; the vision tower's blocks have
# layers of the same names (gate_proj, ...), which this pattern leaves alone.
LORA_TARGETS = r".*language_model.*\.(q_proj|k_proj|v_proj|o_proj|gate_proj|up_proj|down_proj)"
# Attribute names of vision encoders and of the projector into the language model.
VISION_TOWERS = ("visual", "vision_tower", "vision_model")
PROJECTORS = ("merger", "multi_modal_projector", "mm_projector")


def attention_implementation(requested: str = "auto", half: bool = True) -> str:
    """flash_attention_2 on a GPU in bf16 when flash-attn is installed, else PyTorch's sdpa."""
    if requested != "auto":
        return requested
    import importlib.util

    import torch

    if half and torch.cuda.is_available() and importlib.util.find_spec("flash_attn") is not None:
        return "flash_attention_2"
    return "sdpa"


def _find(model: Any, names: tuple[str, ...]) -> Any:
    for holder in (model, getattr(model, "model", None)):
        if holder is None:
            continue
        for name in names:
            mod = getattr(holder, name, None)
            if mod is not None:
                return mod
    return None


def freeze_vision(model: Any) -> int:
    """Freeze the vision encoder but not its projector into the LM; returns parameters frozen."""
    tower = _find(model, VISION_TOWERS)
    if tower is None:
        raise FinetuneError(
            f"{type(model).__name__}: no vision tower found (looked for {', '.join(VISION_TOWERS)})"
        )
    projector_params = set()
    for name in PROJECTORS:
        sub = getattr(tower, name, None) or _find(model, (name,))
        if sub is not None:
            projector_params |= {id(p) for p in sub.parameters()}
    frozen = 0
    for p in tower.parameters():
        if id(p) not in projector_params:
            p.requires_grad_(False)
            frozen += p.numel()
    return frozen


def load_model(cfg: FinetuneConfig, precision: str) -> tuple[Any, Any]:
    """Processor and model, ready to train (frozen vision, LoRA wrapped when asked)."""
    import torch
    from transformers import AutoModelForImageTextToText, AutoProcessor

    processor = AutoProcessor.from_pretrained(cfg.base_model)
    dtype = torch.bfloat16 if precision == "bf16" else torch.float32
    model = AutoModelForImageTextToText.from_pretrained(
        cfg.base_model,
        dtype=dtype,
        attn_implementation=attention_implementation(cfg.attention, precision == "bf16"),
    )
    if not cfg.train_vision:
        freeze_vision(model)
    if cfg.lora:
        from peft import LoraConfig, get_peft_model

        lora = LoraConfig(
            r=cfg.lora_r,
            lora_alpha=cfg.lora_alpha,
            lora_dropout=cfg.lora_dropout,
            target_modules=LORA_TARGETS,
            task_type="CAUSAL_LM",
        )
        model = get_peft_model(model, lora)
    return processor, model


def trainable_parameters(model: Any) -> tuple[int, int]:
    """(trainable, total) parameter counts."""
    total = trainable = 0
    for p in model.parameters():
        n = p.ds_numel if hasattr(p, "ds_numel") else p.numel()
        total += n
        if p.requires_grad:
            trainable += n
    return trainable, total
