"""Fine-tune a VLM on accepted annotations with the HF Trainer and DeepSpeed: the run itself.

The pieces live by concern: what a run is (trainer.config: FinetuneConfig and the
TrainingArguments made from it), the processes (trainer.distributed), the model
(trainer.model), what is written at the end (trainer.saving). DeepSpeed is
configured by a JSON file whose "auto" values the Trainer fills from
`TrainingArguments` (resources/deepspeed/).

The TrainingArguments are made before the model is loaded: with ZeRO-3 that is
what makes `from_pretrained` partition the weights as they load.

What comes out (`out/`) is a plain Hugging Face checkpoint, the processor, and
robo_trainer.json (see trainer.saving and trainer.checkpoint), so the transformers
engine loads it like any other model.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from trainer.checkpoint import CheckpointMeta, write_meta
from trainer.config import FinetuneConfig, FinetuneError, training_arguments
from trainer.data import TrainingData, prepare
from trainer.distributed import (
    barrier,
    before_process_group,
    is_main_process,
    join_deepspeed,
    precision,
    prepare_environment,
    zero_stage,
)
from trainer.model import attention_implementation, freeze_vision, load_model, trainable_parameters
from trainer.saving import describe, restore_use_cache, save_weights
from trainer.teardown import release_distributed

# Names other code imports from here (the module was all of these once).
__all__ = [
    "FinetuneConfig",
    "FinetuneError",
    "attention_implementation",
    "freeze_vision",
    "is_main_process",
    "prepare_environment",
    "run",
    "training_arguments",
    "zero_stage",
]

log = logging.getLogger(__name__)


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


def _training_data(cfg: FinetuneConfig, data: TrainingData | None) -> TrainingData:
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
    return data


def run(cfg: FinetuneConfig, data: TrainingData | None = None) -> CheckpointMeta | None:
    """Train and write the checkpoint; returns its metadata on the main process, None elsewhere."""
    prepare_environment()
    from transformers import Trainer

    before_process_group(cfg)
    dtype = precision(cfg)
    data = _training_data(cfg, data)
    # Arguments before the model, and the process group up (args.device does it): with ZeRO-3,
    # from_pretrained then partitions the weights across ranks as they load.
    args = training_arguments(cfg, dtype)
    _ = args.device
    join_deepspeed(cfg)
    from trainer.collate import AnswerOnlyCollator
    from trainer.data import SampleSet

    processor, model = load_model(cfg, dtype)
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

    save_weights(cfg, trainer, dtype)
    meta = None
    if trainer.is_world_process_zero():
        processor.save_pretrained(str(cfg.out))
        restore_use_cache(cfg.out)
        meta = describe(cfg, data, args, result, trainer, dtype, (trainable, total), collator, seconds)
        meta.training.step_seconds = timer.durations
        write_meta(cfg.out, meta)
    barrier()  # every rank waits for the checkpoint
    # Tear down while the interpreter is whole (see trainer.teardown): the engine first, while
    # its process groups still work, then every reference to them, then the groups themselves.
    trainer.accelerator.free_memory()
    del trainer, model, collator, timer
    release_distributed()
    return meta
