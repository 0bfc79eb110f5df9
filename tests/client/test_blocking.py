"""The client checks every reply's type: a wrong one is a typed error naming request and reply.

The real server never answers with the wrong type, so the peer here is a ROUTER socket of
the test's own that answers each request with a reply chosen by the test (a server of
another protocol version, or a buggy one), over a real loopback socket.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import msgspec
import pytest
import zmq

from client import BackendClient, BackendError, ProtocolMismatch, UnexpectedReply
from core.errors import ProtocolError
from core.protocol import (
    PROTOCOL_VERSION,
    Accepted,
    DatasetInfo,
    Error,
    GetQueue,
    Hello,
    ModelInfo,
    Ping,
    Pong,
    Predict,
    Progress,
    QueueReply,
    Welcome,
    decode_request,
    encode,
)

Answer = Callable[[msgspec.Struct], list[msgspec.Struct]]


@contextmanager
def peer(answer: Answer) -> Iterator[str]:
    """A ROUTER on a free loopback port answering every request with `answer(request)`."""
    ctx = zmq.Context.instance()
    sock = ctx.socket(zmq.ROUTER)
    sock.linger = 0
    port = sock.bind_to_random_port("tcp://127.0.0.1")
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            if not sock.poll(50):
                continue
            ident, data = sock.recv_multipart()
            req = decode_request(data)
            for reply in answer(req):
                reply.id = req.id
                sock.send_multipart([ident, encode(reply)])

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield f"tcp://127.0.0.1:{port}"
    finally:
        stop.set()
        thread.join(5)
        sock.close(linger=0)


def test_a_reply_of_the_wrong_type_names_the_request_and_the_reply():
    with (
        peer(lambda req: [Pong(time=0.0, busy=0)]) as endpoint,
        BackendClient(endpoint, timeout=10) as client,
    ):
        with pytest.raises(UnexpectedReply) as info:
            client.hello()
        assert isinstance(info.value, ProtocolError)
        message = str(info.value)
        assert "Hello" in message and "Pong" in message and "Welcome" in message
        with pytest.raises(UnexpectedReply, match=r"GetQueue .* got a Pong reply, expected QueueReply"):
            client.queue()
        # The client stays usable: the right reply type goes through.
        assert isinstance(client.ping(), Pong)


def test_an_error_reply_is_a_backend_error_not_an_unexpected_reply():
    def answer(req: msgspec.Struct) -> list[msgspec.Struct]:
        return [Error(code="not_found", message="no dataset 'x'")]

    with peer(answer) as endpoint, BackendClient(endpoint, timeout=10) as client:
        with pytest.raises(BackendError, match="not_found: no dataset 'x'") as info:
            client.queue("x")
        assert info.value.code == "not_found"


def test_a_predict_stream_with_a_foreign_reply_is_an_error_not_a_hang():
    def answer(req: msgspec.Struct) -> list[msgspec.Struct]:
        if isinstance(req, Predict):
            return [Accepted(total=1), Progress(done=0, total=1), QueueReply(items=[])]
        if isinstance(req, (Ping, Hello, GetQueue)):
            return [Pong(time=0.0, busy=0)]
        return []

    with (
        peer(answer) as endpoint,
        BackendClient(endpoint, timeout=10) as client,
        pytest.raises(UnexpectedReply, match=r"Predict .* got a QueueReply reply"),
    ):
        client.predict("demo", [0], timeout=10)


def test_a_welcome_of_another_protocol_is_a_mismatch_naming_both_versions():
    def answer(req: msgspec.Struct) -> list[msgspec.Struct]:
        model = ModelInfo(engine="kinematic", name="k", version="1")
        demo = DatasetInfo(id="demo", episodes=1, fps=30.0, cameras=["top"])
        return [
            Welcome(protocol=PROTOCOL_VERSION + 1, server="x", model=model, datasets=[demo], heartbeat_s=1)
        ]

    with peer(answer) as endpoint, BackendClient(endpoint, timeout=10) as client:
        with pytest.raises(
            ProtocolMismatch, match=f"protocol {PROTOCOL_VERSION + 1}, this client {PROTOCOL_VERSION}"
        ):
            client.hello()
        assert client.welcome is None
