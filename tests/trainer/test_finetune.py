"""Real fine-tuning runs on CPU: DeepSpeed ZeRO-2 over two processes, and LoRA in one."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")

from tests.fixtures.truth import DATASET, REPO, SMALL
from trainer.checkpoint import read_meta
from trainer.data import prepare

pytestmark = pytest.mark.slow

TASKS = "box_current"


def _weights(path: Path) -> dict:
    from safetensors.torch import load_file

    out = {}
    for f in sorted(path.glob("*.safetensors")):
        out.update(load_file(f))
    return out


def _decreasing(loss: list[tuple[int, float]]) -> bool:
    values = [v for _, v in loss]
    return len(values) >= 6 and sum(values[-3:]) / 3 < sum(values[:3]) / 3


def _changed(a: dict, b: dict, part: str) -> list[bool]:
    keys = [k for k in a if part in k]
    assert keys, f"no weights named *{part}*"
    return [not (a[k] == b[k]).all().item() for k in keys]


def _torchrun(out: Path, config: str, base: Path, store: Path, datasets: Path, *extra: str) -> None:
    """`robo-trainer finetune` on two CPU processes under torchrun (gloo), with a DeepSpeed config."""
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
        "-m", "trainer.cli", "-v", "finetune",
        "--store", str(store), "--datasets", str(datasets), "--base-model", str(base), "--out", str(out),
        "--deepspeed", str(REPO / "resources" / "deepspeed" / config), "--tasks", TASKS, "--lr", "2e-3",
        *[a for k, v in SMALL.items() for a in (f"--{k.replace('_', '-')}", str(v))], *extra,
    ]  # fmt: skip
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=500, env=os.environ.copy())
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]


def test_zero2_two_processes_then_the_transformers_engine_loads_it(
    tmp_path, tiny_qwen, accepted_store, datasets_dir
):
    out = tmp_path / "zero2"
    _torchrun(out, "zero2.json", tiny_qwen, accepted_store, datasets_dir, "--max-steps", "10", "--round", "3")

    meta = read_meta(out)
    t = meta.training
    assert (t.method, t.zero_stage, t.world_size, t.steps, t.precision) == ("full", 2, 2, 10, "fp32")
    assert t.vision_frozen and 0 < t.trainable_parameters < t.total_parameters
    assert _decreasing(t.loss), t.loss
    # Self-describing: the base, the round, and exactly which episodes and revisions.
    data = prepare(accepted_store, [datasets_dir], tasks=(TASKS,), sample_options=SMALL)
    assert meta.base_model == str(tiny_qwen.resolve()) and meta.round == 3
    assert meta.data.fingerprint == data.fingerprint and meta.version == f"r3-{data.fingerprint[:8]}"
    assert [tuple(x) for x in meta.data.train] == [
        (a.dataset, a.episode, a.revision) for a in data.split.train
    ]
    assert meta.data.heldout and meta.data.sample_options == SMALL
    assert meta.data.samples == {TASKS: len(data.samples)}

    base, tuned = _weights(tiny_qwen), _weights(out)
    assert base.keys() == tuned.keys()
    assert all(_changed(base, tuned, "model.layers."))
    assert not any(_changed(base, tuned, "visual.blocks"))  # the frozen vision tower
    assert any(_changed(base, tuned, "visual.merger"))  # its projector trains

    from backend.engines import EpisodeJob, make_engine
    from core.dataset import Dataset

    engine = make_engine(
        "transformers", model=str(out), version=meta.version, describe=False, context="none",
        max_new_tokens=24, **SMALL,
    )  # fmt: skip
    try:
        assert engine.info().version == meta.version
        (pred,) = engine.predict([EpisodeJob(DATASET, Dataset(datasets_dir / DATASET), 0, kinds=("boxes",))])
    finally:
        engine.close()
    assert pred.status in ("ok", "unparseable"), pred.error
    if pred.annotation is not None:
        assert pred.annotation.model == f"zero2@{meta.version}"


def test_lora_in_one_process_is_merged_into_a_plain_checkpoint(
    tmp_path, tiny_qwen, accepted_store, datasets_dir
):
    from trainer.finetune import FinetuneConfig, run

    out = tmp_path / "lora"
    cfg = FinetuneConfig(
        store=accepted_store,
        datasets=[datasets_dir],
        base_model=str(tiny_qwen),
        out=out,
        lora=True,
        lora_r=4,
        lora_alpha=8,
        tasks=(TASKS,),
        max_steps=8,
        learning_rate=5e-3,
        sample_options=SMALL,
    )
    meta = run(cfg)
    assert meta is not None
    t = meta.training
    assert (t.method, t.world_size, t.zero_stage) == ("lora", 1, 0)
    assert t.trainable_parameters < t.total_parameters / 5
    assert _decreasing(t.loss), t.loss
    assert (out / "adapter" / "adapter_model.safetensors").is_file()

    base, merged = _weights(tiny_qwen), _weights(out)
    assert base.keys() == merged.keys()  # merged: no lora_A / lora_B left, loads like the base
    assert all(_changed(base, merged, "self_attn.q_proj.weight"))
    assert not any(_changed(base, merged, "embed_tokens"))
    assert not any(_changed(base, merged, "visual."))  # LoRA targets the language model only

    from transformers import AutoModelForImageTextToText, AutoProcessor

    AutoProcessor.from_pretrained(out)
    AutoModelForImageTextToText.from_pretrained(out)
    assert '"use_cache": false' not in (out / "config.json").read_text()  # it generates with a KV cache


@pytest.mark.parametrize("method", ["full", "lora"])
def test_zero3_partitions_while_loading_and_writes_the_base_layout(
    method, tmp_path, tiny_qwen, accepted_store, datasets_dir
):
    """ZeRO-3 loads the weights partitioned across ranks and gathers them to save; what comes
    out is laid out like the base checkpoint (LoRA merged), whichever way it was trained."""
    out = tmp_path / f"zero3-{method}"
    extra = ["--max-steps", "6"] + (["--lora", "--lora-r", "4"] if method == "lora" else [])
    _torchrun(out, "zero3.json", tiny_qwen, accepted_store, datasets_dir, *extra)
    t = read_meta(out).training
    assert (t.method, t.zero_stage, t.world_size, t.steps) == (method, 3, 2, 6)
    base, tuned = _weights(tiny_qwen), _weights(out)
    assert base.keys() == tuned.keys()
    assert all(_changed(base, tuned, "self_attn.q_proj.weight"))
    assert not any(_changed(base, tuned, "visual.blocks"))
