"""The OpenAI-compatible engine: any chat-completions server (vllm serve, SGLang), no torch here.

Images go as base64 PNG data URLs, already at the size the model sees, so a Qwen
server's own resize is the identity and pixel coordinates mean what the prompt
said. Requests run on a bounded thread pool (`concurrency`), spread round-robin
over several `base_urls`. Transient failures (a timeout, a connection failure,
408, 409, 429, 5xx) are retried `retries` times by the openai client itself, with
its exponential backoff and jitter, honouring Retry-After; when a server still
fails, the request moves on to the next server (each in turn, once). Other
errors (400, 401, 404) are final for that request. Token log-probabilities come
back with `logprobs: true`.
"""

from __future__ import annotations

import base64
import io
import itertools
import logging
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from backend.engines.vlm import Generation, GenRequest, VLMEngine
from core.errors import MissingExtraError

log = logging.getLogger(__name__)

# Model names that tell the family when none is given.
_FAMILY_HINTS = (
    ("qwen3-vl", "qwen3_vl"),
    ("qwen3_vl", "qwen3_vl"),
    ("qwen2.5-vl", "qwen2_5_vl"),
    ("qwen2_5_vl", "qwen2_5_vl"),
    ("qwen2-vl", "qwen2_vl"),
    ("qwen2_vl", "qwen2_vl"),
    ("llava-onevision", "llava_onevision"),
    ("llava_onevision", "llava_onevision"),
)


def guess_family(model: str) -> str | None:
    low = model.lower()
    return next((fam for hint, fam in _FAMILY_HINTS if hint in low), None)


def image_url(img: Any) -> str:
    """A PIL image as a data URL (PNG: lossless, the time labels stay sharp)."""
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def chat_request(req: GenRequest, model: str) -> dict[str, Any]:
    """The chat-completions body for one request (images first, then the prompt)."""
    content: list[dict[str, Any]] = [
        {"type": "image_url", "image_url": {"url": image_url(i)}} for i in req.images
    ]
    content.append({"type": "text", "text": req.sample.prompt})
    return {
        "model": model,
        "messages": [{"role": "user", "content": content}],
        "max_tokens": req.max_new_tokens,
        "temperature": 0.0,
        "logprobs": True,
    }


def read_choice(response: Any) -> Generation:
    """Text, per-token log-probabilities and finish reason from a ChatCompletion."""
    if not getattr(response, "choices", None):
        return Generation(error="the server answered without choices")
    choice = response.choices[0]
    text = (choice.message.content if choice.message else "") or ""
    lps: list[float] = []
    content = getattr(getattr(choice, "logprobs", None), "content", None) or []
    for tok in content:
        lp = getattr(tok, "logprob", None)
        if lp is not None:
            lps.append(float(lp))
    return Generation(text=text, logprobs=lps, finish=choice.finish_reason or "")


class OpenAIEngine(VLMEngine):
    """A VLM behind one or more OpenAI-compatible servers."""

    engine_name = "openai"

    def __init__(
        self,
        model: str | None = None,
        *,
        base_urls: Sequence[str] | str = ("http://127.0.0.1:8000/v1",),
        api_key: str | None = None,
        concurrency: int = 8,
        timeout_s: float = 120.0,
        retries: int = 4,
        family: str | None = None,
        version: str = "",
        **options: Any,
    ) -> None:
        try:
            import openai
        except ImportError:
            raise MissingExtraError("openai", "openai", "the openai engine") from None
        urls = [base_urls] if isinstance(base_urls, str) else list(base_urls)
        if not urls:
            raise ValueError("base_urls: give at least one server URL, e.g. http://127.0.0.1:8000/v1")
        for name, v in (("concurrency", concurrency), ("retries", retries + 1)):
            if v < 1:
                raise ValueError(f"{name} = {v}: must be >= 1")
        if timeout_s <= 0:
            raise ValueError(f"timeout_s = {timeout_s}: must be > 0")
        self._openai = openai
        # Each server's client retries its own transient failures (backoff, Retry-After).
        self.clients = [
            openai.OpenAI(base_url=u, api_key=api_key or "EMPTY", timeout=timeout_s, max_retries=retries)
            for u in urls
        ]
        self.base_urls = urls
        self.concurrency, self.retries = concurrency, retries
        self._next = itertools.count()
        self._rr_lock = threading.Lock()
        self.model = model or self._served_model()
        fam = family or guess_family(self.model) or "qwen2_5_vl"
        super().__init__(family=fam, version=version or "served", **options)
        self.name = self.model.rsplit("/", 1)[-1]
        self.device = "remote:" + ",".join(urls)

    def _served_model(self) -> str:
        """The first model the first reachable server lists (when no --model is given)."""
        errors = []
        for client, url in zip(self.clients, self.base_urls, strict=True):
            try:
                models = client.with_options(max_retries=0).models.list()
                if models.data:
                    return models.data[0].id
            except self._openai.OpenAIError as exc:
                errors.append(f"{url}: {exc}")
        raise ValueError(
            "openai engine: no --model given and no server listed one (" + "; ".join(errors) + ")"
        )

    def _first(self) -> int:
        """The server a new request starts at (round-robin)."""
        with self._rr_lock:
            return next(self._next) % len(self.clients)

    def _transient(self, exc: Exception) -> bool:
        """A failure the client retries (and gave up on): worth another server."""
        o = self._openai
        if isinstance(exc, o.APIConnectionError):  # timeouts too
            return True
        return isinstance(exc, o.APIStatusError) and (
            exc.status_code in (408, 409, 429) or exc.status_code >= 500
        )

    def _one(self, req: GenRequest) -> Generation:
        body = chat_request(req, self.model)
        first, n = self._first(), len(self.clients)
        last = ""
        for k in range(n):
            i = (first + k) % n
            try:
                return read_choice(self.clients[i].chat.completions.create(**body))
            except self._openai.OpenAIError as exc:
                last = f"{self.base_urls[i]}: {type(exc).__name__}: {exc}"
                if not self._transient(exc):
                    break
                if k + 1 < n:
                    log.warning("%s after %d retries; trying the next server", last, self.retries)
        return Generation(error=last)

    def generate(self, requests: Sequence[GenRequest]) -> list[Generation]:
        if not requests:
            return []
        with ThreadPoolExecutor(max_workers=min(self.concurrency, len(requests))) as pool:
            return list(pool.map(self._one, requests))

    def close(self) -> None:
        super().close()
        for c in self.clients:
            c.close()
