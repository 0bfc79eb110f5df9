"""What a fine-tuning run is (`FinetuneConfig`), and the TrainingArguments it becomes.

Each field is declared once, with its default, help and bound (core.config.setting):
`robo-trainer finetune` / `round` derive their flags from these fields (trainer.cli),
`finetune_argv` writes a config back as those flags, and `training_arguments` is the
one place the HF Trainer's arguments are made from it. Importing this module loads no
torch: the CLI builds its parser from it.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from core.config import argument_fields, setting, validate
from core.errors import RoboAnnotateError
from core.resources import deepspeed_argument
from core.vlm.samples import TASKS

PRECISIONS = ("auto", "bf16", "fp32")


class FinetuneError(RoboAnnotateError):
    """The run cannot start: bad configuration or missing pieces."""


def parse_tasks(text: str) -> tuple[str, ...]:
    """--tasks a,b: comma-separated task names, every one known (argparse `type=`)."""
    tasks = tuple(t.strip() for t in text.split(",") if t.strip())
    unknown = [t for t in tasks if t not in TASKS]
    if unknown or not tasks:
        raise argparse.ArgumentTypeError(f"unknown task(s) {unknown or text!r}; known: {', '.join(TASKS)}")
    return tasks


@dataclass
class FinetuneConfig:
    store: Path = setting(help="the annotation store (SQLite; read-only here)")
    datasets: list[Path] = setting(
        help="dataset directories or folders of datasets, named as the store names them"
    )
    base_model: str = setting(help="base model: a local checkpoint directory or a hub id")
    out: Path = setting(help="checkpoint directory to write")
    lora: bool = setting(False, help="train LoRA adapters (merged at the end) instead of every weight")
    lora_r: int = setting(16, ge=1, help="LoRA rank")
    lora_alpha: int = setting(32, help="LoRA alpha")
    lora_dropout: float = setting(0.05, help="LoRA dropout")
    deepspeed: Path | None = setting(
        None,
        parse=deepspeed_argument,
        help="DeepSpeed config: a shipped one by name (zero2, zero2_offload, zero3, zero3_offload) or a "
        "JSON file; none: plain DDP / one process",
    )
    family: str = setting("qwen2_5_vl", help="model family, i.e. the coordinate convention of the answers")
    tasks: tuple[str, ...] = setting(TASKS, parse=parse_tasks, help="tasks to train, comma-separated")
    epochs: float = setting(1.0, help="passes over the samples (when --max-steps is not set)")
    max_steps: int = setting(-1, help="optimizer steps; overrides --epochs when > 0")
    learning_rate: float | None = setting(
        None, flags=("--lr",), help="learning rate (default 2e-4 for LoRA, 1e-5 full)"
    )
    batch_size: int = setting(1, ge=1, help="samples per device per step")
    grad_accum: int = setting(1, ge=1, help="gradient accumulation steps")
    warmup_ratio: float = setting(0.03, ge=0, lt=1, help="share of the steps spent warming up")
    weight_decay: float = setting(0.0, help="AdamW weight decay")
    heldout_fraction: float = setting(
        0.2, ge=0, lt=1, help="share of accepted episodes held out, by episode hash (see trainer.data)"
    )
    train_vision: bool = setting(
        False, help="also train the vision encoder (the projector always trains in full fine-tuning)"
    )
    gradient_checkpointing: bool = setting(True, help="recompute activations to save memory")
    max_length: int = setting(4096, ge=1, help="longest prompt + answer in tokens")
    round: int = setting(1, ge=0, help="active-learning round this checkpoint belongs to (recorded)")
    seed: int = setting(0, help="random seed")
    sample_options: dict[str, Any] = setting(
        default_factory=dict,
        cli=False,
        help="SampleConfig options (max_pixels, frame_side, sheet_side, rate, ...), as the engines take them",
    )
    precision: str = setting("auto", choices=PRECISIONS, help="auto: bf16 on a GPU that has it, else fp32")
    attention: str = setting(
        "auto", help="attn_implementation (auto: flash_attention_2 on GPU when installed, else sdpa)"
    )
    logging_steps: int = setting(1, ge=1, help="log the loss every this many steps")
    dataloader_workers: int = setting(0, flags=("--workers",), help="data loader worker processes")

    def __post_init__(self) -> None:
        validate(self, error=FinetuneError)
        self.store = Path(self.store)
        self.out = Path(self.out)
        self.datasets = [Path(p) for p in self.datasets]
        if not self.store.is_file():
            raise FinetuneError(f"store = {self.store}: no such file")
        if not self.datasets:
            raise FinetuneError("datasets: give at least one dataset directory or folder of datasets")
        if self.deepspeed is not None:
            self.deepspeed = Path(self.deepspeed)
            if not self.deepspeed.is_file():
                raise FinetuneError(f"deepspeed = {self.deepspeed}: no such file")
            try:
                json.loads(self.deepspeed.read_text())
            except json.JSONDecodeError as exc:
                raise FinetuneError(f"deepspeed = {self.deepspeed}: not valid JSON ({exc})") from exc
        unknown = [t for t in self.tasks if t not in TASKS]
        if unknown:
            raise FinetuneError(f"tasks = {unknown}: unknown (known: {', '.join(TASKS)})")
        if self.max_steps <= 0 and not self.epochs > 0:
            raise FinetuneError(f"epochs = {self.epochs}: must be > 0 when max_steps is not set")

    @property
    def lr(self) -> float:
        if self.learning_rate is not None:
            return self.learning_rate
        return 2e-4 if self.lora else 1e-5


def finetune_arguments(*, exclude: tuple[str, ...] = (), defaults: dict[str, Any] | None = None) -> type:
    """FinetuneConfig's command-line fields, for HfArgumentParser (see core.config.argument_fields)."""
    return argument_fields(FinetuneConfig, exclude=exclude, defaults=defaults)


def finetune_argv(cfg: FinetuneConfig) -> list[str]:
    """The `robo-trainer finetune` arguments that reproduce `cfg` (one per command-line field)."""
    argv = ["finetune"]
    for f in fields(finetune_arguments()):
        value = getattr(cfg, f.name)
        if value is None:
            continue
        flag = f"--{f.name}"
        if isinstance(value, bool):
            argv += [flag, str(value).lower()]
        elif isinstance(value, list):
            argv += [flag, *map(str, value)]
        elif isinstance(value, tuple):  # tasks: comma-separated, as parse_tasks reads them
            argv += [flag, ",".join(value)]
        else:
            argv += [flag, repr(value) if isinstance(value, float) else str(value)]
    for key, value in sorted(cfg.sample_options.items()):
        argv += ["--sample-option", f"{key}={json.dumps(value)}"]
    return argv


def training_arguments(cfg: FinetuneConfig, precision: str) -> Any:
    """The HF Trainer's arguments for `cfg`, the one place they are made."""
    import torch
    from transformers import TrainingArguments

    # Non-reentrant checkpointing works with frozen inputs (LoRA, frozen vision) without hooks.
    # transformers 5 renamed gradient_checkpointing to activation_checkpointing.
    name = (
        "activation_checkpointing"
        if "activation_checkpointing" in TrainingArguments.__dataclass_fields__
        else "gradient_checkpointing"
    )
    checkpointing = {name: cfg.gradient_checkpointing, f"{name}_kwargs": {"use_reentrant": False}}
    return TrainingArguments(
        output_dir=str(cfg.out),
        deepspeed=str(cfg.deepspeed) if cfg.deepspeed else None,
        per_device_train_batch_size=cfg.batch_size,
        gradient_accumulation_steps=cfg.grad_accum,
        num_train_epochs=cfg.epochs,
        max_steps=cfg.max_steps,
        learning_rate=cfg.lr,
        weight_decay=cfg.weight_decay,
        # transformers 5: a float in [0, 1) is a ratio of the total steps.
        warmup_steps=cfg.warmup_ratio,
        lr_scheduler_type="cosine",
        bf16=precision == "bf16",
        **checkpointing,
        logging_steps=cfg.logging_steps,
        save_strategy="no",
        report_to=[],
        remove_unused_columns=False,
        label_names=["labels"],
        dataloader_num_workers=cfg.dataloader_workers,
        ddp_find_unused_parameters=False,
        seed=cfg.seed,
        use_cpu=not torch.cuda.is_available(),
        disable_tqdm=True,
    )
