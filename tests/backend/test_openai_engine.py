"""The OpenAI-compatible engine against small local chat-completions servers (the real `openai` client).

Each server speaks just enough of the protocol (POST /v1/chat/completions, GET
/v1/models) and can be told to fail: a 429 with Retry-After, a 500, a 400, or
an answer slower than the client's timeout.
"""

from __future__ import annotations

import base64
import io
import json
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("openai")

from PIL import Image

from backend.engines import make_engine
from backend.engines.base import EpisodeJob
from backend.engines.openai_engine import OpenAIEngine, guess_family
from backend.engines.vlm import GenRequest
from core.dataset import Dataset
from core.vlm.samples import SampleConfig, build_inference_requests, render_images

SMALL = {"rate": 1.0, "sheet_frames": 4, "sheets_per_window": 1, "frame_side": 112, "sheet_side": 224}
LOGPROB = -0.2


def answer_for(body: dict) -> str:
    """A plausible model: describe, then segments over the asked window."""
    prompt = body["messages"][0]["content"][-1]["text"]
    if prompt.startswith("These images are contact sheets") and "Describe" in prompt:
        return "The arm reaches and grasps the object."
    if "Split" in prompt:
        import re

        a, b = (float(x) for x in re.search(r"Split ([\d.]+) s to ([\d.]+) s", prompt).groups())
        m = (a + b) / 2
        return f'```json\n[{{"name": "reach", "start": {a}, "end": {m}}}, {{"name": "grasp", "start": {m}, "end": {b}}}]\n```'
    return '[{"bbox_2d": [10, 10, 40, 40], "label": "cube"}]'


class ChatServer:
    """A chat-completions server on loopback; `plan` holds failures to serve before answering."""

    def __init__(self, answer: Callable[[dict], str] = answer_for, delay: float = 0.0) -> None:
        self.answer, self.delay = answer, delay
        self.plan: deque[tuple[str, Any]] = deque()
        self.bodies: list[dict] = []
        self.lock = threading.Lock()
        self.in_flight = 0
        self.max_in_flight = 0
        srv = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _send(self, code: int, payload: dict, headers: dict | None = None) -> None:
                data = json.dumps(payload).encode()
                try:
                    self.send_response(code)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    for k, v in (headers or {}).items():
                        self.send_header(k, v)
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (a timeout test)

            def do_GET(self) -> None:
                if self.path.endswith("/models"):
                    self._send(
                        200,
                        {
                            "object": "list",
                            "data": [
                                {
                                    "id": "Qwen/Qwen2.5-VL-3B-Instruct",
                                    "object": "model",
                                    "created": 0,
                                    "owned_by": "test",
                                }
                            ],
                        },
                    )
                else:
                    self._send(404, {"error": {"message": "not found"}})

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with srv.lock:
                    srv.bodies.append(body)
                    step = srv.plan.popleft() if srv.plan else ("ok", None)
                    srv.in_flight += 1
                    srv.max_in_flight = max(srv.max_in_flight, srv.in_flight)
                try:
                    kind, arg = step
                    if kind == "sleep":
                        time.sleep(arg)
                    elif kind == "status":
                        code, headers = arg
                        self._send(code, {"error": {"message": f"scripted {code}", "type": "test"}}, headers)
                        return
                    if srv.delay:
                        time.sleep(srv.delay)
                    text = srv.answer(body)
                    toks = [{"token": "x", "logprob": LOGPROB, "bytes": [120], "top_logprobs": []}] * 5
                    self._send(
                        200,
                        {
                            "id": "chatcmpl-1",
                            "object": "chat.completion",
                            "created": 0,
                            "model": body["model"],
                            "choices": [
                                {
                                    "index": 0,
                                    "message": {"role": "assistant", "content": text},
                                    "finish_reason": "stop",
                                    "logprobs": {"content": toks},
                                }
                            ],
                            "usage": {"prompt_tokens": 1, "completion_tokens": 5, "total_tokens": 6},
                        },
                    )
                finally:
                    with srv.lock:
                        srv.in_flight -= 1

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> ChatServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@contextmanager
def servers(n: int = 1, **kw: Any) -> Iterator[list[ChatServer]]:
    made = [ChatServer(**kw) for _ in range(n)]
    for s in made:
        s.__enter__()
    try:
        yield made
    finally:
        for s in made:
            s.__exit__()


def engine(urls: list[str], **kw: Any) -> OpenAIEngine:
    opts = {"model": "qwen2.5-vl-3b", "timeout_s": 5.0, "retries": 3, **SMALL, **kw}
    return make_engine("openai", base_urls=urls, **opts)  # type: ignore[return-value]


def requests(demo_root: Path, n: int = 1) -> list[GenRequest]:
    ds = Dataset(demo_root)
    cfg = SampleConfig(**SMALL)
    samples = build_inference_requests(ds, 0, "qwen2_5_vl", ["box_current", "gripper"], config=cfg)
    return [GenRequest(s, render_images(s, ds), 32) for s in (samples * n)[:n]]


def test_request_body_and_answer(demo_root: Path) -> None:
    with servers(1) as (srv,):
        eng = engine([srv.url])
        (req,) = requests(demo_root, 1)
        (gen,) = eng.generate([req])
        assert not gen.error
        assert gen.text.startswith('[{"bbox_2d"') and gen.logprobs == [LOGPROB] * 5 and gen.finish == "stop"
        (body,) = srv.bodies
        assert body["model"] == "qwen2.5-vl-3b"
        assert body["max_tokens"] == 32 and body["temperature"] == 0 and body["logprobs"] is True
        content = body["messages"][0]["content"]
        assert [c["type"] for c in content] == ["image_url", "text"]
        assert content[1]["text"] == req.sample.prompt
        url = content[0]["image_url"]["url"]
        assert url.startswith("data:image/png;base64,")
        img = Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1])))
        assert img.size == req.sample.images[0].size  # already what the model sees
        eng.close()


def test_predict_end_to_end_with_uncertainty_from_logprobs(demo_root: Path) -> None:
    with servers(1) as (srv,):
        eng = engine([srv.url])
        assert eng.family == "qwen2_5_vl"
        (p,) = eng.predict([EpisodeJob("demo", Dataset(demo_root), 1, ("segments",))])
        assert p.status == "ok", p.error
        assert [s.name for s in p.annotation.segments] == ["reach", "grasp"]
        import math

        assert p.annotation.uncertainty == pytest.approx(1 - math.exp(LOGPROB), abs=1e-3)
        seg_prompt = srv.bodies[-1]["messages"][0]["content"][-1]["text"]
        assert "The arm reaches and grasps the object." in seg_prompt  # describe, then segment
        assert p.annotation.model == "qwen2.5-vl-3b@served"


@pytest.mark.parametrize(
    "failure",
    [("status", (429, {"Retry-After": "0"})), ("status", (500, {})), ("status", (503, {})), ("sleep", 1.5)],
    ids=["429", "500", "503", "timeout"],
)
def test_transient_failures_are_retried(demo_root: Path, failure) -> None:
    with servers(1) as (srv,):
        srv.plan.extend([failure, failure])
        eng = engine([srv.url], timeout_s=0.5)
        (gen,) = eng.generate(requests(demo_root, 1))
        assert not gen.error and gen.text
        assert len(srv.bodies) == 3  # two failures, then the answer


def test_client_errors_are_not_retried_and_end_as_errors(demo_root: Path) -> None:
    with servers(1) as (srv,):
        srv.plan.extend([("status", (400, {}))] * 10)
        eng = engine([srv.url])
        (gen,) = eng.generate(requests(demo_root, 1))
        assert "400" in gen.error and srv.url in gen.error
        assert len(srv.bodies) == 1
        (p,) = eng.predict([EpisodeJob("demo", Dataset(demo_root), 0, ("boxes",))])
        assert p.status == "error" and "BadRequestError" in p.error


def test_retries_run_out_with_a_clear_error(demo_root: Path) -> None:
    with servers(1) as (srv,):
        srv.plan.extend([("status", (500, {}))] * 10)
        eng = engine([srv.url], retries=2)
        (gen,) = eng.generate(requests(demo_root, 1))
        assert "InternalServerError" in gen.error
        assert len(srv.bodies) == 3


def test_round_robin_moves_past_a_failing_server(demo_root: Path) -> None:
    with servers(2) as (a, b):
        a.plan.extend([("status", (503, {}))] * 100)  # a is down for the whole test
        eng = engine([a.url, b.url], concurrency=1)
        gens = eng.generate(requests(demo_root, 4))
        assert all(not g.error for g in gens)
        assert len(b.bodies) == 4 and len(a.bodies) >= 1


def test_concurrency_is_bounded(demo_root: Path) -> None:
    with servers(1, delay=0.1) as (srv,):
        eng = engine([srv.url], concurrency=2)
        gens = eng.generate(requests(demo_root, 6))
        assert all(not g.error for g in gens)
        assert srv.max_in_flight == 2


def test_model_name_from_the_server_and_unreachable_servers(demo_root: Path) -> None:
    with servers(1) as (srv,):
        eng = make_engine("openai", base_urls=[srv.url], **SMALL)
        assert eng.model == "Qwen/Qwen2.5-VL-3B-Instruct" and eng.family == "qwen2_5_vl"
        assert eng.info().name == "Qwen2.5-VL-3B-Instruct"
    with pytest.raises(ValueError, match="no server listed"):
        make_engine("openai", base_urls=["http://127.0.0.1:9/v1"], timeout_s=0.5)
    with pytest.raises(ValueError, match="base_urls"):
        make_engine("openai", model="m", base_urls=[])


def test_family_from_model_names() -> None:
    assert guess_family("Qwen/Qwen3-VL-8B-Instruct") == "qwen3_vl"
    assert guess_family("qwen2-vl-7b") == "qwen2_vl"
    assert guess_family("llava-hf/llava-onevision-qwen2-7b-ov-hf") == "llava_onevision"
    assert guess_family("gpt-4o") is None
