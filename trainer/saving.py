"""What a finished run writes: a plain Hugging Face checkpoint and robo_trainer.json.

LoRA is merged into the weights (the adapter kept beside it in `out/adapter/`); a
ZeRO-3 checkpoint is rewritten in the base model's own layout; the saved config
generates with a KV cache again. So the transformers engine (and vLLM) load it like
any other model. The metadata is described in trainer.checkpoint.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from trainer.checkpoint import CheckpointMeta, DataInfo, TrainingInfo, version_tag
from trainer.config import FinetuneConfig
from trainer.data import TrainingData, triples
from trainer.distributed import barrier, zero_stage
from trainer.model import LORA_TARGETS


def save_weights(cfg: FinetuneConfig, trainer: Any, precision: str) -> None:
    """The trained weights into cfg.out, merged / re-laid out on the main process."""
    cfg.out.mkdir(parents=True, exist_ok=True)
    if cfg.lora:
        adapter = cfg.out / "adapter"
        trainer.save_model(str(adapter))  # gathers ZeRO-3 shards; writes on the main process
        barrier()
        if trainer.is_world_process_zero():
            merge_lora(cfg.base_model, adapter, cfg.out, precision)
    else:
        trainer.save_model(str(cfg.out))
        if zero_stage(cfg.deepspeed) == 3:
            barrier()
            if trainer.is_world_process_zero():
                resave_in_base_layout(cfg.out, cfg.base_model, precision)


def _lone_load_dtype(precision: str) -> Any:
    """Training is over: a ZeRO-3 config left registered would make a lone load a collective
    (partitioned across ranks that are not loading) and hang; unset it first."""
    import torch
    from transformers.integrations.deepspeed import unset_hf_deepspeed_config

    unset_hf_deepspeed_config()
    return torch.bfloat16 if precision == "bf16" else torch.float32


def merge_lora(base_model: str, adapter: Path, out: Path, precision: str) -> None:
    """Base weights + saved adapter -> merged plain checkpoint (on the main process, on CPU)."""
    from peft import PeftModel
    from transformers import AutoModelForImageTextToText

    dtype = _lone_load_dtype(precision)
    base = AutoModelForImageTextToText.from_pretrained(base_model, dtype=dtype)
    merged = PeftModel.from_pretrained(base, str(adapter)).merge_and_unload()
    merged.save_pretrained(str(out))


def resave_in_base_layout(out: Path, base_model: str, precision: str) -> None:
    """Rewrite a ZeRO-3 checkpoint in the base model's own layout (on the main process).

    ZeRO-3's gathered state dict is saved under the model's internal parameter names
    (e.g. ``model.model.layers.*`` for Qwen2.5-VL), which transformers reads back but
    other loaders (vLLM) may not. Loading the base and saving it with the tuned
    weights writes the layout the base checkpoint came in.
    """
    from transformers import AutoModelForImageTextToText

    dtype = _lone_load_dtype(precision)
    tuned = AutoModelForImageTextToText.from_pretrained(str(out), dtype=dtype)
    model = AutoModelForImageTextToText.from_pretrained(base_model, dtype=dtype)
    model.load_state_dict(tuned.state_dict())
    del tuned
    for f in out.glob("model*.safetensors*"):
        f.unlink()
    model.save_pretrained(str(out))


def restore_use_cache(out: Path) -> None:
    """The saved config should generate with a KV cache, as the base model did."""
    path = out / "config.json"
    if not path.is_file():
        return
    conf = json.loads(path.read_text())
    changed = False
    for holder in (conf, conf.get("text_config") or {}):
        if holder.get("use_cache") is False:
            holder["use_cache"] = True
            changed = True
    if changed:
        path.write_text(json.dumps(conf, indent=2) + "\n")


def loss_curve(log_history: list[dict[str, Any]]) -> list[tuple[int, float]]:
    return [(int(h["step"]), float(h["loss"])) for h in log_history if "loss" in h and "step" in h]


def describe(
    cfg: FinetuneConfig,
    data: TrainingData,
    args: Any,
    result: Any,
    trainer: Any,
    precision: str,
    params: tuple[int, int],
    collator: Any,
    seconds: float,
) -> CheckpointMeta:
    """robo_trainer.json's content for a finished run."""
    trainable, total = params
    base = Path(cfg.base_model)
    return CheckpointMeta(
        base_model=str(base.resolve()) if base.exists() else cfg.base_model,
        round=cfg.round,
        version=version_tag(cfg.round, data.fingerprint),
        data=DataInfo(
            fingerprint=data.fingerprint,
            train=triples(data.split.train),
            heldout=triples(data.split.heldout),
            samples=data.counts(),
            family=data.family,
            heldout_fraction=data.heldout_fraction,
            sample_options=data.sample_options,
        ),
        training=TrainingInfo(
            method="lora" if cfg.lora else "full",
            deepspeed=str(cfg.deepspeed or ""),
            zero_stage=zero_stage(cfg.deepspeed),
            world_size=args.world_size,
            steps=int(result.global_step),
            epochs=float(trainer.state.epoch or 0.0),
            learning_rate=cfg.lr,
            per_device_batch_size=cfg.batch_size,
            gradient_accumulation=cfg.grad_accum,
            precision=precision,
            vision_frozen=not cfg.train_vision,
            lora={
                "r": cfg.lora_r,
                "alpha": cfg.lora_alpha,
                "dropout": cfg.lora_dropout,
                "targets": LORA_TARGETS,
            }
            if cfg.lora
            else {},
            loss=loss_curve(trainer.state.log_history),
            seconds=seconds,
            samples_per_second=float(result.metrics.get("train_samples_per_second", math.nan)),
            trainable_parameters=trainable,
            total_parameters=total,
            answers_truncated=collator.truncated,
        ),
    )
