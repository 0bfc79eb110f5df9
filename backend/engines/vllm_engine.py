"""The vLLM engine: in-process `vllm.LLM`, whole batches at once so continuous batching does the work.

Every prompt of every episode of a batch goes to one `LLM.generate` call as a
``{"prompt": text, "multi_modal_data": {"image": [PIL images]}}`` dict with its
own `SamplingParams` (greedy, the task's token budget, `logprobs=1` so the
chosen token's log-probability comes back). The prompt text is the checkpoint's
own chat template, applied by its transformers processor, exactly as the
transformers engine does. Images are already at the size the model sees; the
processor's pixel budget is passed as `mm_processor_kwargs` so vLLM keeps them.
Tensor parallelism is `tensor_parallel_size`.
"""

from __future__ import annotations

import importlib.util
import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from backend.engines.vlm import Generation, GenRequest, VLMEngine
from core.errors import MissingExtraError
from core.protocol import ModelInfo
from core.vlm.coords import FAMILIES, family_of_model_type
from core.vlm.samples import chat_messages

log = logging.getLogger(__name__)


def sampling_kwargs(req: GenRequest) -> dict[str, Any]:
    """SamplingParams for one request: greedy, its budget, the chosen token's log-prob."""
    return {"temperature": 0.0, "max_tokens": req.max_new_tokens, "logprobs": 1, "seed": 0}


def vllm_prompt(req: GenRequest, template: Any) -> dict[str, Any]:
    """The vLLM prompt dict: chat-templated text plus the images in order."""
    text = template(chat_messages(req.sample))
    prompt: dict[str, Any] = {"prompt": text}
    if req.images:
        prompt["multi_modal_data"] = {"image": list(req.images)}
    return prompt


def read_output(output: Any) -> Generation:
    """Text, the chosen tokens' log-probs and finish reason from a vLLM RequestOutput."""
    if not getattr(output, "outputs", None):
        return Generation(error="vLLM returned no completion")
    comp = output.outputs[0]
    lps: list[float] = []
    for tok, entry in zip(comp.token_ids or [], comp.logprobs or [], strict=False):
        lp = entry.get(tok) if isinstance(entry, dict) else None
        if lp is not None:
            lps.append(float(getattr(lp, "logprob", lp)))
    return Generation(text=comp.text or "", logprobs=lps, finish=comp.finish_reason or "")


def engine_kwargs(
    model: str,
    family: str,
    *,
    tensor_parallel_size: int,
    max_model_len: int,
    gpu_memory_utilization: float,
    max_images: int,
    max_pixels: int | None,
    dtype: str,
    extra: dict[str, Any],
) -> dict[str, Any]:
    """Keyword arguments for `vllm.LLM`."""
    fam = FAMILIES[family]
    kw: dict[str, Any] = {
        "model": model,
        "tensor_parallel_size": tensor_parallel_size,
        "max_model_len": max_model_len,
        "gpu_memory_utilization": gpu_memory_utilization,
        "limit_mm_per_prompt": {"image": max_images},
        "dtype": dtype,
        "seed": 0,
    }
    if fam.factor > 1:
        kw["mm_processor_kwargs"] = {"min_pixels": fam.min_pixels, "max_pixels": max_pixels or fam.max_pixels}
    kw.update(extra)
    return kw


def read_family(model: str) -> str | None:
    """The family from a local checkpoint's config.json (None for a hub id: vLLM fetches it)."""
    cfg = Path(model) / "config.json"
    if not cfg.is_file():
        return None
    try:
        return family_of_model_type(json.loads(cfg.read_text())["model_type"])
    except (KeyError, ValueError, OSError):
        return None


class VLLMEngine(VLMEngine):
    """vLLM in this process."""

    engine_name = "vllm"

    def __init__(
        self,
        model: str,
        *,
        tensor_parallel_size: int = 1,
        max_model_len: int = 16384,
        gpu_memory_utilization: float = 0.85,
        dtype: str = "bfloat16",
        family: str | None = None,
        version: str = "",
        vllm_args: dict[str, Any] | None = None,
        **options: Any,
    ) -> None:
        if importlib.util.find_spec("vllm") is None:
            raise MissingExtraError("vllm", "vllm", "the vllm engine")
        if tensor_parallel_size < 1:
            raise ValueError(f"tensor_parallel_size = {tensor_parallel_size}: must be >= 1")
        super().__init__(family=family or read_family(model) or "qwen2_5_vl", version=version, **options)
        self._family_opt = family
        self._settings = {
            "tensor_parallel_size": tensor_parallel_size,
            "max_model_len": max_model_len,
            "gpu_memory_utilization": gpu_memory_utilization,
            "dtype": dtype,
            "extra": dict(vllm_args or {}),
        }
        self.device = f"cuda x{tensor_parallel_size}"
        self.llm = None
        self._load(model, version)

    def _max_images(self) -> int:
        c = self.sample_config
        return max(c.sheets_per_window, c.trajectory_frames, 1)

    def _load(self, path: str, version: str) -> None:
        from transformers import AutoProcessor
        from vllm import LLM

        fam = self._family_opt or read_family(path) or self.family
        kw = engine_kwargs(
            path,
            fam,
            max_images=self._max_images(),
            max_pixels=self.sample_config.max_pixels,
            **self._settings,
        )
        if self.llm is not None:  # one engine per process: free the GPU first
            self.llm = None
            import gc

            gc.collect()
        self.llm = LLM(**kw)
        self.processor = AutoProcessor.from_pretrained(path)
        self.family = fam
        self.identify(path, version)
        log.info("vllm engine: %s (%s), %s", path, fam, kw)

    def reload(self, path: str, version: str = "") -> ModelInfo:
        self._load(path, version)
        return self.info()

    def template(self, messages: list[dict[str, Any]]) -> str:
        return self.processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)

    def generate(self, requests: Sequence[GenRequest]) -> list[Generation]:
        from vllm import SamplingParams

        if not requests:
            return []
        prompts = [vllm_prompt(r, self.template) for r in requests]
        params = [SamplingParams(**sampling_kwargs(r)) for r in requests]
        outputs = self.llm.generate(prompts, sampling_params=params, use_tqdm=False)
        return [read_output(o) for o in outputs]

    def close(self) -> None:
        super().close()
        self.llm = None
