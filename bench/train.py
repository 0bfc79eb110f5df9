"""Fine-tuning throughput: `robo-trainer finetune` (HF Trainer + DeepSpeed) against a plain PyTorch loop.

Both sides train the same model on the same samples (accepted demo annotations
turned into prompts by core.vlm.samples, batched by trainer.collate), with the
vision tower frozen and gradient checkpointing on. The peer is the loop people
write by hand: one process, torch AdamW on the model's own weights, forward,
backward, clip, step; no Trainer, no DeepSpeed. Ours runs as the CLI runs it (a
child process per configuration, torchrun over every GPU), for ZeRO-2 and ZeRO-3,
full fine-tuning and LoRA. Throughput is steady-state samples per second (median
step time after `--warmup` steps); model FLOP utilisation counts 6 FLOPs per
trained LM parameter per token (4 for LoRA: no weight gradients for the frozen
base), 2 per vision parameter per patch (frozen: forward only), and no attention
or recomputation FLOPs, against the GPU's dense bf16 peak.

On a CUDA device the model is a random-weight Qwen2.5-VL with the real
Qwen2.5-VL-3B configuration, built from the config in code (no download), bf16.
Without one, the tiny random test checkpoint trains on the CPU (DeepSpeed's CPU
accelerator) and the row is a smoke figure: it shows the harness works, not what
a GPU would do.

    .venv/bin/python bench/train.py [--steps 20] [--warmup 5] [--batch-size 2] [--frame-side 448]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("SVT_LOG", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("TORCH_EXTENSIONS_DIR", str(REPO / ".cache" / "torch_extensions"))

import torch  # noqa: E402

if not torch.cuda.is_available():
    os.environ.setdefault("DS_ACCELERATOR", "cpu")

from core.demo.writer import cached_demo  # noqa: E402
from tests.fixtures.tiny_qwen import (  # noqa: E402
    QWEN25_VL_3B_TEXT,
    QWEN25_VL_3B_VISION,
    cached_tiny_qwen,
    qwen25_vl_3b_config,
)
from tests.fixtures.truth import gt_annotation, submit_all  # noqa: E402
from trainer.checkpoint import read_meta  # noqa: E402
from trainer.collate import AnswerOnlyCollator  # noqa: E402
from trainer.data import SampleSet, prepare  # noqa: E402
from trainer.finetune import attention_implementation, freeze_vision  # noqa: E402

CACHE = REPO / ".cache" / "bench-data"
TASKS = ("box_current",)  # one frame and a short answer: every sample costs the same

# Dense bf16 tensor-core peaks (FLOP/s) by device name, most specific first.
PEAK_BF16 = (
    ("H100 PCIe", 756e12),
    ("H100", 989e12),
    ("H200", 989e12),
    ("A100", 312e12),
    ("L40S", 362e12),
)


def peak_flops() -> float:
    if not torch.cuda.is_available():
        return math.nan
    name = torch.cuda.get_device_name(0)
    return next((p for key, p in PEAK_BF16 if key in name), math.nan)


# ---------------------------------------------------------------- data and model


def accepted_store(work: Path) -> tuple[Path, Path]:
    """A store of accepted demo annotations and the folder holding the demo as 'demo'."""
    import json as _json

    demo = cached_demo(CACHE, "train-demo", episodes=6, seed=0, width=320, height=240, fps=30)
    root = work / "datasets"
    root.mkdir()
    shutil.copytree(demo, root / "demo")
    gt = _json.loads((demo / "ground_truth.json").read_text())
    store = work / "store.db"
    submit_all(store, [gt_annotation(gt, ep) for ep in gt["episodes"]])
    return store, root


def random_3b_checkpoint() -> Path:
    """A random-weight Qwen2.5-VL-3B checkpoint directory (bf16), saved once, with the test processor."""
    from transformers import AutoProcessor, Qwen2_5_VLForConditionalGeneration

    tiny = cached_tiny_qwen(REPO / ".cache" / "test-data")
    key = hashlib.sha256(
        json.dumps([QWEN25_VL_3B_TEXT, QWEN25_VL_3B_VISION, tiny.name]).encode()
    ).hexdigest()[:10]
    out = CACHE / f"random-qwen2_5_vl-3b-{key}"
    if (out / "config.json").is_file():
        return out
    processor = AutoProcessor.from_pretrained(tiny)
    tok = processor.tokenizer
    config = qwen25_vl_3b_config(tok)
    torch.manual_seed(0)
    with torch.device("cuda"):
        model = Qwen2_5_VLForConditionalGeneration(config).to(torch.bfloat16)
    tmp = Path(tempfile.mkdtemp(dir=CACHE, prefix=".building-"))
    model.save_pretrained(tmp)
    processor.save_pretrained(tmp)
    del model
    torch.cuda.empty_cache()
    tmp.rename(out)
    return out


# ---------------------------------------------------------------- FLOPs


def parameter_counts(model) -> dict[str, int]:
    """Language model (matmul weights: no embedding table), vision blocks, projector."""
    counts = {"lm": 0, "vision": 0, "merger": 0}
    for name, p in model.named_parameters():
        if "embed_tokens" in name:
            continue
        if "visual" in name or "vision_tower" in name:
            counts["merger" if "merger" in name else "vision"] += p.numel()
        else:
            counts["lm"] += p.numel()
    if getattr(model.config, "tie_word_embeddings", False):
        counts["lm"] += model.get_output_embeddings().weight.numel()  # the tied head still multiplies
    return counts


def sample_shape(samples, datasets, processor, n: int = 16) -> tuple[float, float]:
    """Mean tokens (prompt + answer) and vision patches per sample."""
    coll = AnswerOnlyCollator(processor)
    items = SampleSet(samples[:n], datasets)
    tokens, patches = [], []
    for i in range(len(items)):
        enc = coll.encode(items[i]["sample"], items[i]["images"])
        tokens.append(len(enc["input_ids"]))
        patches.append(enc["pixel_values"].shape[0])
    return statistics.mean(tokens), statistics.mean(patches)


def flops_per_sample(counts: dict[str, int], tokens: float, patches: float, lora: bool) -> float:
    lm = (4 if lora else 6) * counts["lm"] * tokens
    merger = 6 * counts["merger"] * patches / 4  # the projector trains, on merged patches
    return lm + 2 * counts["vision"] * patches + merger


# ---------------------------------------------------------------- the two sides


def plain_loop(model_dir: Path, data, batch: int, steps: int, warmup: int, workers: int) -> float:
    """The peer: a hand-written loop in this process. Returns steady samples per second."""
    from torch.utils.data import DataLoader
    from transformers import AutoModelForImageTextToText, AutoProcessor

    cuda = torch.cuda.is_available()
    device = "cuda" if cuda else "cpu"
    processor = AutoProcessor.from_pretrained(model_dir)
    model = AutoModelForImageTextToText.from_pretrained(
        model_dir,
        dtype=torch.bfloat16 if cuda else torch.float32,
        attn_implementation=attention_implementation(),
    ).to(device)
    freeze_vision(model)
    if hasattr(model, "activation_checkpointing_enable"):  # transformers 5's name
        model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
    else:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-5, fused=cuda)
    loader = DataLoader(
        SampleSet(data.samples, data.datasets),
        batch_size=batch,
        shuffle=True,
        collate_fn=AnswerOnlyCollator(processor),
        num_workers=workers,
        generator=torch.Generator().manual_seed(0),
    )
    times: list[float] = []
    it = iter(loader)
    last = time.perf_counter()
    for _ in range(warmup + steps):
        try:
            b = next(it)
        except StopIteration:
            it = iter(loader)
            b = next(it)
        b = {k: v.to(device) for k, v in b.items()}
        loss = model(**b).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        if cuda:
            torch.cuda.synchronize()
        now = time.perf_counter()
        times.append(now - last)
        last = now
    del model, opt
    if cuda:
        torch.cuda.empty_cache()
    return batch / statistics.median(times[warmup:])


def robo_trainer(
    model_dir: Path, store: Path, root: Path, work: Path, config: str, lora: bool, args: argparse.Namespace
) -> tuple[float, int]:
    """Ours, as the CLI runs it. Returns steady samples per second and the world size."""
    gpus = torch.cuda.device_count()
    out = work / f"{config}-{'lora' if lora else 'full'}"
    launcher = [sys.executable]
    if gpus > 1:
        launcher += ["-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={gpus}"]
    cmd = [
        *launcher, "-m", "trainer.cli", "finetune", "--store", str(store), "--datasets", str(root),
        "--base-model", str(model_dir), "--out", str(out), "--deepspeed", config,
        "--tasks", ",".join(TASKS), "--max-steps", str(args.warmup + args.steps), "--batch-size", str(args.batch_size),
        "--frame-side", str(args.frame_side), "--heldout-fraction", "0", "--workers", str(args.workers),
        *(["--lora"] if lora else []),
    ]  # fmt: skip
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"{config} {'lora' if lora else 'full'} failed:\n{proc.stderr[-4000:]}")
    t = read_meta(out).training
    shutil.rmtree(out, ignore_errors=True)  # a 3B checkpoint per row is not what we measure
    global_batch = args.batch_size * t.gradient_accumulation * t.world_size
    return global_batch / statistics.median(t.step_seconds[args.warmup :]), t.world_size


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=20, help="measured optimizer steps per row")
    ap.add_argument("--warmup", type=int, default=5, help="steps before measuring")
    ap.add_argument("--batch-size", type=int, default=2, help="per device")
    ap.add_argument(
        "--frame-side", type=int, default=448, help="longest image side (GPU); the CPU smoke uses 56"
    )
    ap.add_argument(
        "--workers", type=int, default=None, help="data loader workers (default 2 on GPU, 0 on CPU)"
    )
    args = ap.parse_args()

    cuda = torch.cuda.is_available()
    if cuda:
        device = f"{torch.cuda.device_count()} x {torch.cuda.get_device_name(0)}"
        model_dir, model_desc = random_3b_checkpoint(), "random Qwen2.5-VL-3B config, bf16"
        configs = [("zero2", False), ("zero2", True), ("zero3", False), ("zero3", True)]
        args.workers = 2 if args.workers is None else args.workers
    else:
        device = "CPU (no CUDA device): SMOKE FIGURE with the tiny random test model, not a GPU number"
        model_dir, model_desc = (
            cached_tiny_qwen(REPO / ".cache" / "test-data"),
            "tiny random Qwen2.5-VL, fp32",
        )
        configs = [("zero2", False), ("zero2", True)]
        args.frame_side = 56
        args.workers = 0 if args.workers is None else args.workers
    print(f"device: {device}\nmodel:  {model_desc}\n")

    from transformers import AutoConfig, AutoModelForImageTextToText, AutoProcessor

    with tempfile.TemporaryDirectory(prefix="bench-train-") as tmp:
        work = Path(tmp)
        store, root = accepted_store(work)
        data = prepare(
            store, [root], tasks=TASKS, heldout_fraction=0.0, sample_options={"frame_side": args.frame_side}
        )
        processor = AutoProcessor.from_pretrained(model_dir)
        with torch.device("meta"):  # shapes only, no memory
            counts = parameter_counts(
                AutoModelForImageTextToText.from_config(AutoConfig.from_pretrained(model_dir))
            )
        tokens, patches = sample_shape(data.samples, data.datasets, processor)
        print(
            f"samples: {len(data.samples)} ({', '.join(TASKS)}), {tokens:.0f} tokens and {patches:.0f} patches each"
        )

        peer = plain_loop(model_dir, data, args.batch_size, args.steps, args.warmup, args.workers)
        peak = peak_flops()
        rows = [("plain PyTorch loop (peer)", "full", 1, peer)]
        for config, lora in configs:
            sps, world = robo_trainer(model_dir, store, root, work, config, lora, args)
            rows.append((f"robo-trainer {config}", "lora" if lora else "full", world, sps))

    print(f"\n{'run':<28} {'method':<6} {'procs':>5} {'samples/s':>10} {'MFU':>7} {'vs peer':>8}")
    for name, method, world, sps in rows:
        achieved = sps * flops_per_sample(counts, tokens, patches, method == "lora")
        mfu = achieved / (peak * world) if not math.isnan(peak) else math.nan
        mfu_text = f"{100 * mfu:6.1f}%" if not math.isnan(mfu) else "    n/a"
        print(f"{name:<28} {method:<6} {world:>5} {sps:>10.2f} {mfu_text:>7} {sps / peer:>8.2f}")
    print(
        f"\nsteady state: median of {args.steps} steps after {args.warmup}, batch {args.batch_size} per process; "
        "peer: one process, torch AdamW on the model's own weights."
    )


if __name__ == "__main__":
    main()
