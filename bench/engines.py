"""Episodes per hour: our transformers engine (batched across episodes) against the naive way.

The peer is how reference annotation scripts run a VLM: one episode at a time,
one prompt at a time, a plain `model.generate` per prompt. Both paths use the
same model object, the same prompts and frames (core.vlm.samples), the same
fixed token budget (generation is forced to exactly `--tokens` new tokens, so a
random model's early end-of-text cannot flatter either side) and the same
parser; both include frame decoding. Tasks per episode: segmentation (one
contact sheet of `--frames` frames) and the four box tasks (one frame each).

On a CUDA device the model is a random-weight Qwen2.5-VL with the real
Qwen2.5-VL-3B configuration, built from the config in code (no download), bf16.
Without one, the tiny random test checkpoint runs on the CPU and the figure is
only a smoke figure: it shows the harness works, not what a GPU would do.

    .venv/bin/python bench/engines.py [--episodes N] [--batch-size B] [--tokens T] [--frames F] [--repeat R]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("SVT_LOG", "1")

from backend.engines.base import EpisodeJob  # noqa: E402
from backend.engines.transformers_engine import TransformersEngine, pick_attention  # noqa: E402
from core.dataset import Dataset  # noqa: E402
from core.video import FrameReader  # noqa: E402
from core.vlm.parse import parse_answer  # noqa: E402
from core.vlm.samples import SampleConfig, build_inference_requests, chat_messages, render_images  # noqa: E402

CACHE = REPO / ".cache" / "test-data"
KINDS = ("segments", "boxes")
TASKS = ("segmentation", "box_current", "box_final", "box_contact", "gripper")


def random_3b(tokenizer, device: str):
    """A random-weight Qwen2.5-VL-3B (bf16) on `device`, with the test tokenizer's special-token ids."""
    import torch
    from transformers import Qwen2_5_VLForConditionalGeneration

    from tests.fixtures.tiny_qwen import qwen25_vl_3b_config

    config = qwen25_vl_3b_config(tokenizer)
    config._attn_implementation = pick_attention(device)
    torch.manual_seed(0)
    default = torch.get_default_dtype()
    torch.set_default_dtype(torch.bfloat16)
    try:
        with torch.device(device):
            model = Qwen2_5_VLForConditionalGeneration(config)
    finally:
        torch.set_default_dtype(default)
    return model.eval()


def naive(
    engine: TransformersEngine, ds: Dataset, episodes: list[int], cfg: SampleConfig, tokens: int
) -> int:
    """One episode, one prompt, one plain generate at a time. Returns the prompts answered."""
    import torch

    model, processor = engine.model, engine.processor
    reader = FrameReader(cache_bytes=128 * 2**20)
    n = 0
    for ep in episodes:
        for s in build_inference_requests(ds, ep, engine.family, TASKS, config=cfg, dataset_id="bench"):
            images = render_images(s, ds, reader)
            text = processor.apply_chat_template(chat_messages(s), add_generation_prompt=True, tokenize=False)
            inputs = processor(text=[text], images=images, return_tensors="pt").to(model.device)
            with torch.inference_mode():
                out = model.generate(**inputs, max_new_tokens=tokens, do_sample=False)
            answer = processor.batch_decode(out[:, inputs["input_ids"].shape[1] :], skip_special_tokens=True)[
                0
            ]
            parse_answer(s.task, answer, s.meta)
            n += 1
    reader.close()
    return n


def main() -> None:
    import torch

    cuda = torch.cuda.is_available()
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--episodes", type=int, default=32 if cuda else 6)
    ap.add_argument(
        "--batch-size", type=int, default=32 if cuda else 16, help="prompts per generate call (ours)"
    )
    ap.add_argument("--tokens", type=int, default=128 if cuda else 24, help="new tokens per prompt (fixed)")
    ap.add_argument("--frames", type=int, default=8 if cuda else 4, help="frames on the segmentation sheet")
    ap.add_argument(
        "--repeat", type=int, default=3, help="alternating runs of each path; medians are reported"
    )
    args = ap.parse_args()

    from core.demo.writer import cached_demo
    from tests.fixtures.tiny_qwen import cached_tiny_qwen

    root = cached_demo(CACHE, "demo", episodes=6, seed=0, width=320, height=240, fps=30)
    ds = Dataset(root)
    available = sorted(ds.episodes)
    episodes = [available[i % len(available)] for i in range(args.episodes)]
    small = not cuda
    options = {
        "max_new_tokens": args.tokens,
        "describe": False,
        "context": "none",
        "rate": 100.0,  # as many frames as the sheet holds, spread over the episode
        "sheet_frames": args.frames,
        "sheets_per_window": 1,
        "box_frames": 1,
        "frame_side": 224 if small else 448,
        "sheet_side": 448 if small else 896,
    }
    engine = TransformersEngine(str(cached_tiny_qwen(CACHE)), batch_size=args.batch_size, **options)
    if cuda:
        engine.attach(random_3b(engine.processor.tokenizer, "cuda"), "random-Qwen2.5-VL-3B", "bench")
        model_desc = "random Qwen2.5-VL-3B config, bf16"
        device = torch.cuda.get_device_name(0)
    else:
        model_desc = "tiny random Qwen2.5-VL (test fixture), fp32"
        device = "CPU"
    # A fixed token budget for both: no early stop at a random end-of-text.
    engine.model.generation_config.min_new_tokens = args.tokens
    cfg = engine.sample_config
    jobs = [EpisodeJob("bench", ds, ep, KINDS) for ep in episodes]

    engine.predict(jobs[:1])  # warm-up (kernels, caches) for both paths
    naive(engine, ds, episodes[:1], cfg, args.tokens)

    def sync() -> None:
        if cuda:
            torch.cuda.synchronize()

    ours_runs, naive_runs = [], []
    prompts = 0
    for _ in range(args.repeat):  # alternate, so a busy moment of a shared machine hits both
        sync()
        t0 = time.perf_counter()
        preds = engine.predict(jobs)
        sync()
        ours_runs.append(time.perf_counter() - t0)
        assert len(preds) == len(jobs)
        t0 = time.perf_counter()
        prompts = naive(engine, ds, episodes, cfg, args.tokens)
        sync()
        naive_runs.append(time.perf_counter() - t0)
    ours_s, naive_s = statistics.median(ours_runs), statistics.median(naive_runs)

    ours_eph = len(jobs) / ours_s * 3600
    naive_eph = len(jobs) / naive_s * 3600
    print(f"device: {device}; model: {model_desc}")
    print(
        f"{len(jobs)} episodes x {prompts // len(jobs)} prompts (segmentation sheet of {args.frames} frames + 4 box frames), "
        f"{args.tokens} new tokens each; ours batches {args.batch_size} prompts per generate; "
        f"median of {args.repeat} alternating runs"
    )
    if not cuda:
        print(
            "CPU SMOKE FIGURE: tiny random model on a CPU; not a throughput claim (run on a CUDA device for that)"
        )
    print()
    print("| path | seconds | episodes/hour | ratio |")
    print("|---|---|---|---|")
    print(f"| naive: one episode, one prompt, plain generate | {naive_s:.2f} | {naive_eph:,.0f} | 1.00 |")
    print(
        f"| ours: transformers engine, batched across episodes | {ours_s:.2f} | {ours_eph:,.0f} | {ours_eph / naive_eph:.2f}x |"
    )


if __name__ == "__main__":
    main()
