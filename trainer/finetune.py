"""Fine-tune a VLM on accepted annotations with the HF Trainer and DeepSpeed.

One process or many: the same code runs under `torchrun` (RANK / LOCAL_RANK /
WORLD_SIZE in the environment) and under the `deepspeed` launcher (which passes
``--local_rank``), on GPUs (NCCL, bf16, flash-attention 2 when installed) and on
CPUs (DeepSpeed's CPU accelerator with gloo, fp32), which is how the tests run
it. DeepSpeed is configured by a JSON file whose "auto" values the Trainer fills
from `TrainingArguments` (resources/deepspeed/).

The TrainingArguments are made before the model is loaded: with ZeRO-3 that is
what makes `from_pretrained` partition the weights as they load.

What comes out (`out/`) is a plain Hugging Face checkpoint (LoRA merged into the
weights; the adapter kept beside it in `out/adapter/`), the processor, and
robo_trainer.json (see trainer.checkpoint), so the transformers engine loads it
like any other model.
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.errors import RoboAnnotateError
from core.vlm.samples import TASKS
from trainer.checkpoint import CheckpointMeta, DataInfo, TrainingInfo, version_tag, write_meta
from trainer.data import TrainingData, prepare, triples
from trainer.teardown import release_distributed

log = logging.getLogger(__name__)

# LoRA goes on the language model's linear layers only; the vision tower's blocks have
# layers of the same names (gate_proj, ...), which this pattern leaves alone.
LORA_TARGETS = r".*language_model.*\.(q_proj|k_proj|v_proj|o_proj|gate_proj|up_proj|down_proj)"
# Attribute names of vision encoders and of the projector into the language model.
VISION_TOWERS = ("visual", "vision_tower", "vision_model")
PROJECTORS = ("merger", "multi_modal_projector", "mm_projector")


class FinetuneError(RoboAnnotateError):
    """The run cannot start: bad configuration or missing pieces."""


@dataclass
class FinetuneConfig:
    # The annotation store (read-only here).
    store: Path
    # Dataset directories, or folders of datasets, named as the store names them.
    datasets: list[Path]
    # Base model: a local checkpoint directory or a hub id.
    base_model: str
    # Output checkpoint directory.
    out: Path
    # Train LoRA adapters (merged at the end) instead of every weight.
    lora: bool = False
    lora_r: int = 16
    lora_alpha: int = 32
    lora_dropout: float = 0.05
    # DeepSpeed JSON config (e.g. resources/deepspeed/zero2.json); None: plain DDP / one process.
    deepspeed: Path | None = None
    # Model family (coordinate convention of the answers), tasks to train.
    family: str = "qwen2_5_vl"
    tasks: tuple[str, ...] = TASKS
    # Optimisation. max_steps > 0 overrides epochs. learning_rate None: 2e-4 for LoRA, 1e-5 full.
    epochs: float = 1.0
    max_steps: int = -1
    learning_rate: float | None = None
    batch_size: int = 1
    grad_accum: int = 1
    warmup_ratio: float = 0.03
    weight_decay: float = 0.0
    # Share of accepted episodes held out (by episode hash; see trainer.data).
    heldout_fraction: float = 0.2
    # Train the vision encoder too (the projector is always trained in full fine-tuning).
    train_vision: bool = False
    gradient_checkpointing: bool = True
    # Longest prompt + answer in tokens.
    max_length: int = 4096
    # Active-learning round this checkpoint belongs to.
    round: int = 1
    seed: int = 0
    # SampleConfig options (max_pixels, frame_side, sheet_side, rate, ...), as the engines take them.
    sample_options: dict[str, Any] = field(default_factory=dict)
    # "auto" (bf16 on a GPU that has it, else fp32), "bf16" or "fp32".
    precision: str = "auto"
    # "auto" (flash_attention_2 on GPU when installed, else sdpa), or any attn_implementation.
    attention: str = "auto"
    logging_steps: int = 1
    dataloader_workers: int = 0

    def __post_init__(self) -> None:
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
        if self.precision not in ("auto", "bf16", "fp32"):
            raise FinetuneError(f"precision = {self.precision!r}: must be auto, bf16 or fp32")
        for name in ("batch_size", "grad_accum", "max_length", "lora_r", "logging_steps"):
            if getattr(self, name) < 1:
                raise FinetuneError(f"{name} = {getattr(self, name)}: must be >= 1")
        if self.max_steps <= 0 and not self.epochs > 0:
            raise FinetuneError(f"epochs = {self.epochs}: must be > 0 when max_steps is not set")
        if not 0.0 <= self.warmup_ratio < 1.0:
            raise FinetuneError(f"warmup_ratio = {self.warmup_ratio}: must be in [0, 1)")
        if self.round < 0:
            raise FinetuneError(f"round = {self.round}: must be >= 0")
        if not 0.0 <= self.heldout_fraction < 1.0:
            raise FinetuneError(f"heldout_fraction = {self.heldout_fraction}: must be in [0, 1)")

    @property
    def lr(self) -> float:
        if self.learning_rate is not None:
            return self.learning_rate
        return 2e-4 if self.lora else 1e-5


# ---------------------------------------------------------------- environment


def prepare_environment(local_rank: int | None = None) -> None:
    """Before torch/deepspeed load: the launcher's rank, the CPU accelerator when there is no GPU.

    The `deepspeed` launcher passes ``--local_rank=N``; torchrun sets LOCAL_RANK.
    Without CUDA, DeepSpeed must be told to use its CPU accelerator (gloo for
    collectives when oneCCL is absent) or it fails to find a device.
    """
    if local_rank is not None and local_rank >= 0 and "LOCAL_RANK" not in os.environ:
        os.environ["LOCAL_RANK"] = str(local_rank)
    if "DS_ACCELERATOR" not in os.environ:
        import torch

        if not torch.cuda.is_available():
            os.environ["DS_ACCELERATOR"] = "cpu"
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def _single_process_rendezvous() -> None:
    """DeepSpeed without a launcher: a world of one on a free local port.

    Without RANK / WORLD_SIZE / MASTER_* DeepSpeed goes looking for MPI (mpi4py) and
    fails; this is the environment the torchrun and deepspeed launchers would set.
    """
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    os.environ.update(
        {
            "RANK": "0",
            "LOCAL_RANK": "0",
            "WORLD_SIZE": "1",
            "LOCAL_WORLD_SIZE": "1",
            "MASTER_ADDR": "127.0.0.1",
        }
    )
    os.environ.setdefault("MASTER_PORT", str(port))


def is_main_process() -> bool:
    return int(os.environ.get("RANK", "0")) == 0


def _precision(cfg: FinetuneConfig) -> str:
    import torch

    if cfg.precision != "auto":
        if cfg.precision == "bf16" and not (torch.cuda.is_available() and torch.cuda.is_bf16_supported()):
            raise FinetuneError("precision = bf16: needs a GPU that supports bfloat16")
        return cfg.precision
    return "bf16" if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else "fp32"


def attention_implementation(requested: str = "auto", half: bool = True) -> str:
    """flash_attention_2 on a GPU in bf16 when flash-attn is installed, else PyTorch's sdpa."""
    if requested != "auto":
        return requested
    import importlib.util

    import torch

    if half and torch.cuda.is_available() and importlib.util.find_spec("flash_attn") is not None:
        return "flash_attention_2"
    return "sdpa"


def zero_stage(config_path: Path | None) -> int:
    if config_path is None:
        return 0
    return int(json.loads(Path(config_path).read_text()).get("zero_optimization", {}).get("stage", 0))


# ---------------------------------------------------------------- model


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


# ---------------------------------------------------------------- training


def training_arguments(cfg: FinetuneConfig, precision: str) -> Any:
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


def _step_timer() -> Any:
    """A Trainer callback keeping each optimizer step's wall time (steady-state throughput)."""
    from transformers import TrainerCallback

    class StepTimer(TrainerCallback):
        def __init__(self) -> None:
            self.durations: list[float] = []
            self._last = 0.0

        def on_step_begin(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
            if not self._last:
                self._last = time.perf_counter()

        def on_step_end(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
            now = time.perf_counter()
            self.durations.append(now - self._last)
            self._last = now

    return StepTimer()


def _loss_curve(log_history: list[dict[str, Any]]) -> list[tuple[int, float]]:
    return [(int(h["step"]), float(h["loss"])) for h in log_history if "loss" in h and "step" in h]


def _merge_lora(base_model: str, adapter: Path, out: Path, precision: str) -> None:
    """Base weights + saved adapter -> merged plain checkpoint (on the main process, on CPU)."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForImageTextToText

    # Training is over: a ZeRO-3 config left registered would make this lone load a collective
    # (partitioned across ranks that are not loading) and hang.
    from transformers.integrations.deepspeed import unset_hf_deepspeed_config

    unset_hf_deepspeed_config()
    dtype = torch.bfloat16 if precision == "bf16" else torch.float32
    base = AutoModelForImageTextToText.from_pretrained(base_model, dtype=dtype)
    merged = PeftModel.from_pretrained(base, str(adapter)).merge_and_unload()
    merged.save_pretrained(str(out))


def run(cfg: FinetuneConfig, data: TrainingData | None = None) -> CheckpointMeta | None:
    """Train and write the checkpoint; returns its metadata on the main process, None elsewhere."""
    prepare_environment()
    import torch.distributed as dist
    from transformers import Trainer

    if cfg.deepspeed is not None:
        # Before any process group exists: deepspeed.comm binds `GroupMember.WORLD` as the
        # default `group` of its barriers when it is imported, which would keep the world group
        # and its gloo threads alive past destroy_process_group (see trainer.teardown).
        import deepspeed.comm

        if "WORLD_SIZE" not in os.environ:
            _single_process_rendezvous()
    precision = _precision(cfg)
    data = data or prepare(
        cfg.store,
        cfg.datasets,
        family=cfg.family,
        tasks=cfg.tasks,
        heldout_fraction=cfg.heldout_fraction,
        sample_options=cfg.sample_options,
    )
    if not data.samples:
        raise FinetuneError(
            f"{cfg.store}: {len(data.split.train)} accepted training episode(s) gave no samples for tasks "
            f"{', '.join(cfg.tasks)} ({len(data.split.heldout)} held out)"
        )
    # Arguments before the model, and the process group up (args.device does it): with ZeRO-3,
    # from_pretrained then partitions the weights across ranks as they load.
    args = training_arguments(cfg, precision)
    _ = args.device
    if cfg.deepspeed is not None and dist.is_available() and dist.is_initialized():
        # On CPU, accelerate starts torch.distributed itself (gloo) and DeepSpeed's comm layer does not
        # know yet: without this, ZeRO-3's partitioned loading sees a world of one and fails.
        import deepspeed
        from deepspeed.accelerator import get_accelerator

        deepspeed.init_distributed(dist_backend=get_accelerator().communication_backend_name())
    from trainer.collate import AnswerOnlyCollator
    from trainer.data import SampleSet

    processor, model = load_model(cfg, precision)
    trainable, total = trainable_parameters(model)
    log.info(
        "training %d samples from %d episodes (%d held out); %d of %d parameters trainable",
        len(data.samples),
        len(data.split.train),
        len(data.split.heldout),
        trainable,
        total,
    )
    collator = AnswerOnlyCollator(processor, max_length=cfg.max_length)
    timer = _step_timer()
    trainer = Trainer(
        model=model,
        args=args,
        train_dataset=SampleSet(data.samples, data.datasets),
        data_collator=collator,
        callbacks=[timer],
    )
    started = time.perf_counter()
    result = trainer.train()
    seconds = time.perf_counter() - started

    cfg.out.mkdir(parents=True, exist_ok=True)
    if cfg.lora:
        adapter = cfg.out / "adapter"
        trainer.save_model(str(adapter))  # gathers ZeRO-3 shards; writes on the main process
        if dist.is_available() and dist.is_initialized():
            dist.barrier()
        if trainer.is_world_process_zero():
            _merge_lora(cfg.base_model, adapter, cfg.out, precision)
    else:
        trainer.save_model(str(cfg.out))
        if zero_stage(cfg.deepspeed) == 3:
            if dist.is_available() and dist.is_initialized():
                dist.barrier()
            if trainer.is_world_process_zero():
                _resave(cfg.out, cfg.base_model, precision)
    meta = None
    if trainer.is_world_process_zero():
        processor.save_pretrained(str(cfg.out))
        _restore_use_cache(cfg.out)
        meta = _describe(cfg, data, args, result, trainer, precision, (trainable, total), collator, seconds)
        meta.training.step_seconds = timer.durations
        write_meta(cfg.out, meta)
    if dist.is_available() and dist.is_initialized():
        dist.barrier()  # every rank waits for the checkpoint
    # Tear down while the interpreter is whole (see trainer.teardown): the engine first, while
    # its process groups still work, then every reference to them, then the groups themselves.
    trainer.accelerator.free_memory()
    del trainer, model, collator, timer
    release_distributed()
    return meta


def _describe(
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
    meta = CheckpointMeta(
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
            loss=_loss_curve(trainer.state.log_history),
            seconds=seconds,
            samples_per_second=float(result.metrics.get("train_samples_per_second", math.nan)),
            trainable_parameters=trainable,
            total_parameters=total,
            answers_truncated=collator.truncated,
        ),
    )
    return meta


def _resave(out: Path, base_model: str, precision: str) -> None:
    """Rewrite a ZeRO-3 checkpoint in the base model's own layout (on the main process).

    ZeRO-3's gathered state dict is saved under the model's internal parameter names
    (e.g. ``model.model.layers.*`` for Qwen2.5-VL), which transformers reads back but
    other loaders (vLLM) may not. Loading the base and saving it with the tuned
    weights writes the layout the base checkpoint came in.
    """
    import torch
    from transformers import AutoModelForImageTextToText
    from transformers.integrations.deepspeed import unset_hf_deepspeed_config

    unset_hf_deepspeed_config()  # training is over; a lone load must not be partitioned
    dtype = torch.bfloat16 if precision == "bf16" else torch.float32
    tuned = AutoModelForImageTextToText.from_pretrained(str(out), dtype=dtype)
    model = AutoModelForImageTextToText.from_pretrained(base_model, dtype=dtype)
    model.load_state_dict(tuned.state_dict())
    del tuned
    for f in out.glob("model*.safetensors*"):
        f.unlink()
    model.save_pretrained(str(out))


def _restore_use_cache(out: Path) -> None:
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
