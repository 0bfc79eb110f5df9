"""The process side of a run: launcher environment, DeepSpeed's comm layer, precision, barriers.

One process or many: the same code runs under `torchrun` (RANK / LOCAL_RANK /
WORLD_SIZE in the environment) and under the `deepspeed` launcher (which passes
``--local_rank``), on GPUs (NCCL, bf16) and on CPUs (DeepSpeed's CPU accelerator
with gloo, fp32), which is how the tests run it.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from trainer.config import FinetuneConfig, FinetuneError


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


def single_process_rendezvous() -> None:
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


def before_process_group(cfg: FinetuneConfig) -> None:
    """What must happen before any process group exists, when DeepSpeed is used."""
    if cfg.deepspeed is None:
        return
    # deepspeed.comm binds `GroupMember.WORLD` as the default `group` of its barriers when it is
    # imported, which would keep the world group and its gloo threads alive past
    # destroy_process_group (see trainer.teardown): import it first.
    import deepspeed.comm  # noqa: F401

    if "WORLD_SIZE" not in os.environ:
        single_process_rendezvous()


def join_deepspeed(cfg: FinetuneConfig) -> None:
    """Tell DeepSpeed's comm layer about the process group accelerate started (after args.device).

    On CPU, accelerate starts torch.distributed itself (gloo) and DeepSpeed's comm layer does not
    know yet: without this, ZeRO-3's partitioned loading sees a world of one and fails.
    """
    if cfg.deepspeed is None or not is_distributed():
        return
    import deepspeed
    from deepspeed.accelerator import get_accelerator

    deepspeed.init_distributed(dist_backend=get_accelerator().communication_backend_name())


def is_distributed() -> bool:
    import torch.distributed as dist

    return dist.is_available() and dist.is_initialized()


def barrier() -> None:
    """Every rank waits here (nothing without a process group)."""
    if is_distributed():
        import torch.distributed as dist

        dist.barrier()


def is_main_process() -> bool:
    return int(os.environ.get("RANK", "0")) == 0


def precision(cfg: FinetuneConfig) -> str:
    """bf16 or fp32: what was asked, or (auto) bf16 where the GPU has it."""
    import torch

    bf16 = torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    if cfg.precision != "auto":
        if cfg.precision == "bf16" and not bf16:
            raise FinetuneError("precision = bf16: needs a GPU that supports bfloat16")
        return cfg.precision
    return "bf16" if bf16 else "fp32"


def zero_stage(config_path: Path | None) -> int:
    if config_path is None:
        return 0
    return int(json.loads(Path(config_path).read_text()).get("zero_optimization", {}).get("stage", 0))
