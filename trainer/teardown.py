"""Leave torch.distributed so that no gloo worker thread outlives the interpreter.

The failure this prevents: a run trains and saves, then a rank dies at exit with
"terminate called without an active exception" (SIGABRT) and the launcher reports the
run as failed. A gloo worker thread drops each finished collective's tensors itself; when
a tensor's Python object is already gone, that drop takes the GIL. Once the interpreter
is finalizing, Python ends any other thread that asks for the GIL with pthread_exit, and
its unwinding out of the noexcept ~AsyncWork calls std::terminate. ZeRO-3's save issues
dozens of asynchronous all-gathers on Python tensors just before the end.

`destroy_process_group()` alone does not stop those threads (gloo has no shutdown): a
group's threads are joined only when its last reference goes, and DeepSpeed keeps them:
its engine, optimizer and `deepspeed.utils.groups`, every ZeRO-3 parameter; all of these
through ZeRO-3's module-level `FWD_MODULE_STACK` (the modules of the last forward pass)
and an `lru_cache` on a method of its parameter coordinator (every coordinator, module and
parameter it saw); and the world group through the default argument of deepspeed.comm's
barriers, bound when DeepSpeed is imported after the group exists (so `finetune.run`
imports it first). `release_distributed` empties the stack and the cache (no forward pass
is running then), collects the cycles and calls DeepSpeed's `destroy_process_group`,
which drops its own references too; the caller has dropped the trainer after
`free_memory()`, which destroys the engine while its groups still work. Destroying a
group's last reference joins its threads with the GIL released, so a pending drop
completes first.
"""

from __future__ import annotations

import gc
import logging
import os
import sys

log = logging.getLogger(__name__)

# The name gloo gives its worker threads (ProcessGroupGloo::runLoop).
GLOO_THREAD = "pt_gloo_runloop"


def gloo_threads() -> int:
    """Worker threads of live gloo process groups in this process (read from /proc; 0 elsewhere)."""
    try:
        tasks = os.listdir("/proc/self/task")
    except OSError:
        return 0
    n = 0
    for tid in tasks:
        try:
            with open(f"/proc/self/task/{tid}/comm") as fh:
                n += fh.read().strip() == GLOO_THREAD
        except OSError:  # the thread ended meanwhile
            continue
    return n


def _clear_method_caches(cls: type) -> None:
    """Empty the functools caches behind `cls`'s methods, also those under a decorator's closure."""
    for fn in vars(cls).values():
        candidates = [fn]
        for cell in getattr(fn, "__closure__", None) or ():
            try:
                candidates.append(cell.cell_contents)
            except ValueError:  # an empty cell
                continue
        for obj in candidates:
            clear = getattr(obj, "cache_clear", None)
            if callable(clear):
                clear()


def _forget_zero3_state() -> None:
    """Drop what ZeRO-3 keeps at module level between forward passes (none is running now)."""
    offload = sys.modules.get("deepspeed.runtime.zero.parameter_offload")
    stack = getattr(offload, "FWD_MODULE_STACK", None)
    if isinstance(stack, list):
        stack.clear()
    coordinator = sys.modules.get("deepspeed.runtime.zero.partitioned_param_coordinator")
    if coordinator is not None:
        _clear_method_caches(getattr(coordinator, "PartitionedParameterCoordinator", object))


def release_distributed() -> int:
    """Destroy the process groups and everything DeepSpeed keeps of them; gloo threads left (0)."""
    import torch.distributed as dist

    _forget_zero3_state()
    gc.collect()  # the engine, its hooks and ZeRO-3's parameters hold the groups in cycles
    if not (dist.is_available() and dist.is_initialized()):
        return gloo_threads()
    ds_comm = sys.modules.get("deepspeed.comm")
    if ds_comm is not None and ds_comm.is_initialized():
        ds_comm.destroy_process_group()  # torch's groups and DeepSpeed's references to them
    else:
        dist.destroy_process_group()
    gc.collect()
    left = gloo_threads()
    if left:
        log.warning("%d gloo worker thread(s) still running after leaving the process group", left)
    else:
        log.info("left the process group; no gloo worker thread is left")
    return left
