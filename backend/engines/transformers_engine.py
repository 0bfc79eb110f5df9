"""The transformers engine: AutoModelForImageTextToText + AutoProcessor, batched across episodes.

Loads a local checkpoint directory or a hub id through the same
`from_pretrained` path either way; bf16 on a GPU, fp32 on the CPU; sdpa
attention, or flash-attention 2 when it is installed and a GPU is there. Prompts
of all episodes of a batch are generated together (left padding, greedy), and
the scores of each generated token become its log-probability, which the shared
VLM layer turns into the prediction's uncertainty. `reload` swaps in a new
checkpoint (the trainer's active-learning round calls it) and keeps the old one
if the new one does not load.
"""

from __future__ import annotations

import importlib.util
import logging
import threading
from collections.abc import Sequence
from typing import Any

from backend.engines.vlm import Generation, GenRequest, VLMEngine
from core.errors import MissingExtraError
from core.protocol import ModelInfo
from core.vlm.coords import family_of_model_type
from core.vlm.samples import chat_messages

log = logging.getLogger(__name__)


def _require() -> None:
    for mod in ("torch", "transformers"):
        if importlib.util.find_spec(mod) is None:
            raise MissingExtraError(mod, "vlm", "the transformers engine")


def pick_attention(device: str) -> str:
    """flash_attention_2 on a GPU when flash-attn is installed, else sdpa."""
    if device.startswith("cuda") and importlib.util.find_spec("flash_attn") is not None:
        return "flash_attention_2"
    return "sdpa"


def _length(req: GenRequest) -> int:
    """A prompt's rough length in tokens: image patches (28 px, merged) plus text."""
    return sum(img.width * img.height // 784 for img in req.images) + len(req.sample.prompt) // 4


class TransformersEngine(VLMEngine):
    """A Hugging Face VLM in this process."""

    engine_name = "transformers"

    def __init__(
        self,
        model: str,
        *,
        device: str | None = None,
        dtype: str | None = None,
        attn_implementation: str | None = None,
        batch_size: int = 8,
        family: str | None = None,
        version: str = "",
        **options: Any,
    ) -> None:
        _require()
        if batch_size < 1:
            raise ValueError(f"batch_size = {batch_size}: must be >= 1")
        super().__init__(family=family or "qwen2_5_vl", version=version, **options)
        self.batch_size = batch_size
        self._device_opt, self._dtype_opt, self._attn_opt = device, dtype, attn_implementation
        self._family_opt = family
        self._lock = threading.Lock()
        self.model = self.processor = None
        self._load(model, version)

    # ------------------------------------------------------------ loading

    def _load(self, path: str, version: str) -> None:
        import torch
        from transformers import AutoConfig, AutoModelForImageTextToText, AutoProcessor

        device = self._device_opt or ("cuda" if torch.cuda.is_available() else "cpu")
        if self._dtype_opt:
            dtype = getattr(torch, self._dtype_opt)
        else:
            dtype = torch.bfloat16 if device.startswith("cuda") else torch.float32
        attn = self._attn_opt or pick_attention(device)
        config = AutoConfig.from_pretrained(path)
        fam = self._family_opt or family_of_model_type(config.model_type)
        processor = AutoProcessor.from_pretrained(path)
        tok = getattr(processor, "tokenizer", processor)
        tok.padding_side = "left"
        if tok.pad_token_id is None:
            tok.pad_token = tok.eos_token
        model = AutoModelForImageTextToText.from_pretrained(path, dtype=dtype, attn_implementation=attn)
        model.to(device).eval()
        eos = model.generation_config.eos_token_id
        eos_ids = set(eos if isinstance(eos, list) else [eos] if eos is not None else [])
        eos_ids.add(tok.eos_token_id)
        with self._lock:
            old = self.model
            self.model, self.processor, self.family = model, processor, fam
            self._eos = {i for i in eos_ids if i is not None}
            self._pad = tok.pad_token_id
            self.device = device
            self.identify(path, version)
            self.dtype, self.attn = str(dtype).removeprefix("torch."), attn
        del old
        if device.startswith("cuda"):
            torch.cuda.empty_cache()
        log.info("transformers engine: %s (%s) on %s, %s, %s", path, fam, device, self.dtype, attn)

    def attach(self, model: Any, name: str, version: str) -> ModelInfo:
        """Use an already-built model of the same family with the current processor (benchmarks
        build a random model from a config; nothing is read from disk)."""
        with self._lock:
            self.model = model.eval()
            self.device = str(model.device)
            self.dtype = str(model.dtype).removeprefix("torch.")
            self.name, self.version = name, version
            self.round, self.metrics = None, {}
        return self.info()

    def reload(self, path: str, version: str = "") -> ModelInfo:
        """Load a new checkpoint; on failure the current model stays and the error is raised."""
        self._load(path, version)
        return self.info()

    # ------------------------------------------------------------ generation

    def encode(self, batch: Sequence[GenRequest]) -> Any:
        """The processor's tensors for a batch (left-padded)."""
        texts = [
            self.processor.apply_chat_template(
                chat_messages(r.sample), add_generation_prompt=True, tokenize=False
            )
            for r in batch
        ]
        images = [img for r in batch for img in r.images]
        return self.processor(text=texts, images=images or None, return_tensors="pt", padding=True)

    def generate(self, requests: Sequence[GenRequest]) -> list[Generation]:
        out: list[Generation | None] = [None] * len(requests)
        # Similar budgets and prompt lengths together: less padding, fewer wasted steps.
        order = sorted(range(len(requests)), key=lambda i: (requests[i].max_new_tokens, _length(requests[i])))
        for start in range(0, len(order), self.batch_size):
            idx = order[start : start + self.batch_size]
            batch = [requests[i] for i in idx]
            try:
                gens = self._generate_batch(batch)
            except Exception as exc:  # e.g. out of memory: one batch fails, not the run
                log.exception("transformers generate failed")
                gens = [Generation(error=f"{type(exc).__name__}: {exc}") for _ in batch]
            for i, g in zip(idx, gens, strict=True):
                out[i] = g
        return [g if g is not None else Generation(error="not generated") for g in out]

    def _generate_batch(self, batch: Sequence[GenRequest]) -> list[Generation]:
        import torch

        with self._lock:
            model, processor = self.model, self.processor
            eos, pad = self._eos, self._pad
        inputs = self.encode(batch).to(model.device)
        budget = max(r.max_new_tokens for r in batch)
        with torch.inference_mode():
            out = model.generate(
                **inputs,
                max_new_tokens=budget,
                do_sample=False,
                output_scores=True,
                return_dict_in_generate=True,
                pad_token_id=pad,
            )
            scores = model.compute_transition_scores(out.sequences, out.scores, normalize_logits=True)
        n_in = inputs["input_ids"].shape[1]
        new = out.sequences[:, n_in:].tolist()
        lps = scores.float().cpu().tolist()
        gens = []
        for r, ids, lp in zip(batch, new, lps, strict=True):
            stop = next((k for k, t in enumerate(ids) if t in eos), None)
            n = len(ids) if stop is None else stop + 1
            n = min(n, r.max_new_tokens)
            text = processor.batch_decode([ids[: stop if stop is not None else n]], skip_special_tokens=True)[
                0
            ]
            finish = "stop" if stop is not None and stop < r.max_new_tokens else "length"
            gens.append(Generation(text=text, logprobs=lp[:n], finish=finish))
        return gens

    def close(self) -> None:
        super().close()
        with self._lock:
            self.model = self.processor = None
