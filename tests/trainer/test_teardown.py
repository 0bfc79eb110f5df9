"""A DeepSpeed run leaves no gloo worker thread to outlive the interpreter (trainer.teardown).

Such a thread can take the GIL during interpreter finalization and abort the process
("terminate called without an active exception") after the run trained and saved. Each
check runs in a fresh interpreter: the order in which DeepSpeed is first imported matters,
and the pytest process may have imported it already.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

pytest.importorskip("torch")
pytest.importorskip("deepspeed")

from tests.fixtures.truth import REPO, SMALL

RUN = """
import json, sys
from pathlib import Path
from trainer.finetune import FinetuneConfig, run
from trainer.teardown import gloo_threads

store, datasets, base, out, config = sys.argv[1:6]
cfg = FinetuneConfig(
    store=Path(store), datasets=[Path(datasets)], base_model=base, out=Path(out), lora=True, lora_r=4,
    deepspeed=Path(config), tasks=("box_current",), max_steps=3, learning_rate=2e-3,
    sample_options=json.loads(sys.argv[6]),
)
meta = run(cfg)
print("steps", meta.training.steps, "gloo threads left", gloo_threads(), flush=True)
"""


def _python(code: str, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run(
        [sys.executable, "-c", code, *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=600
    )


@pytest.mark.slow
def test_a_zero3_run_leaves_no_gloo_thread_behind(tmp_path, tiny_qwen, accepted_store, datasets_dir):
    # Three steps: ZeRO-3's parameter coordinator has recorded its trace and filled its caches.
    config = REPO / "resources" / "deepspeed" / "zero3.json"
    proc = _python(
        RUN, str(accepted_store), str(datasets_dir), str(tiny_qwen), str(tmp_path / "out"), str(config),
        json.dumps(SMALL),
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    assert "steps 3 gloo threads left 0" in proc.stdout, proc.stdout[-2000:] + proc.stderr[-2000:]


LEAK = """
import os, sys
import torch
import torch.distributed as dist
from trainer.cli import _finish

dist.init_process_group("gloo", init_method="file://" + sys.argv[1], rank=0, world_size=1)
held = dist.new_group([0])  # a library keeps a group: its threads outlive destroy_process_group
dist.all_reduce(torch.ones(4), group=held)
dist.destroy_process_group()
with open(sys.argv[2], "w") as fh:
    fh.write("checkpoint")
print("trained and saved", flush=False)
_finish(int(sys.argv[3]))
print("not reached")
"""


@pytest.mark.parametrize("status", [0, 3])
def test_threads_a_library_still_holds_cannot_turn_a_status_into_an_abort(tmp_path, status):
    proc = _python(LEAK, str(tmp_path / "rendezvous"), str(tmp_path / "ckpt"), str(status))
    assert proc.returncode == status, proc.stderr[-3000:]
    assert "trained and saved" in proc.stdout and "not reached" not in proc.stdout
    assert "gloo worker thread(s) outlived the process group" in proc.stderr
    assert (tmp_path / "ckpt").read_text() == "checkpoint"


def test_without_gloo_threads_the_status_is_returned():
    proc = _python("from trainer.cli import _finish; print('returned', _finish(0), _finish(2))")
    assert proc.returncode == 0 and "returned 0 2" in proc.stdout, proc.stderr[-3000:]
