"""Bad input over a real socket gets an Error reply with a code, and the server goes on serving."""

from __future__ import annotations

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from backend.config import ServerConfig
from backend.server import BackendServer
from client import BackendClient
from core.annotations import EpisodeAnnotation, Segment
from core.protocol import (
    ERROR_CODES,
    PROTOCOL_VERSION,
    Correction,
    Error,
    GetAnnotation,
    Hello,
    Pong,
    Predict,
    Submit,
    WireError,
    decode_request,
    encode,
)


def _raw_reply(client: BackendClient, data: bytes):
    client.send_raw(data)
    return client.recv_any(timeout=10)


def _assert_alive(client: BackendClient) -> None:
    assert isinstance(client.ping(timeout=10), Pong)


@pytest.mark.parametrize(
    ("payload", "code"),
    [
        (b"\xc1\x00garbage", "malformed"),
        (msgspec.msgpack.encode([1, 2, 3]), "malformed"),
        (msgspec.msgpack.encode({"type": "teleport", "id": "t1"}), "unknown_type"),
        (msgspec.msgpack.encode({"type": "predict", "id": "t2", "dataset": "demo"}), "invalid"),
        (
            msgspec.msgpack.encode(
                {"type": "get_annotation", "id": "t3", "dataset": "demo", "episode": "zero"}
            ),
            "invalid",
        ),
        (b"", "malformed"),
    ],
)
def test_malformed_messages_get_an_error_and_the_server_goes_on(client, payload, code):
    reply = _raw_reply(client, payload)
    assert isinstance(reply, Error) and reply.code == code, reply
    assert reply.message
    _assert_alive(client)


def test_unknown_type_echoes_the_request_id(client):
    reply = _raw_reply(client, msgspec.msgpack.encode({"type": "teleport", "id": "abc"}))
    assert reply.id == "abc" and "teleport" in reply.message


def test_oversized_message(server, client):
    limit = server.config.max_message_bytes
    blob = msgspec.msgpack.encode({"type": "ping", "id": "big", "pad": "x" * (limit + 10)})
    reply = _raw_reply(client, blob)
    assert isinstance(reply, Error) and reply.code == "too_large"
    assert str(limit) in reply.message
    _assert_alive(client)


def test_wrong_protocol_version(client):
    reply = client.recv(client.send(Hello(client="old", protocol=PROTOCOL_VERSION + 7)))
    assert isinstance(reply, Error) and reply.code == "version"
    assert str(PROTOCOL_VERSION) in reply.message
    _assert_alive(client)


@pytest.mark.parametrize(
    ("dataset", "episode", "code"),
    [
        ("nope", 0, "not_found"),
        ("demo", 999, "not_found"),
        ("../demo", 0, "forbidden"),
        ("..", 0, "forbidden"),
        ("/etc/passwd", 0, "forbidden"),
        ("demo/../../etc", 0, "forbidden"),
        ("", 0, "forbidden"),
    ],
)
def test_unknown_or_escaping_datasets(client, dataset, episode, code):
    reply = client.recv(client.send(GetAnnotation(dataset=dataset, episode=episode)))
    assert isinstance(reply, Error) and reply.code == code, reply
    reply = client.recv(client.send(Predict(dataset=dataset, episodes=[episode])))
    assert isinstance(reply, Error) and reply.code == code, reply
    _assert_alive(client)


def test_symlink_out_of_the_roots_is_not_served(served_root, demo_root, tmp_path, server_config):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret").symlink_to(demo_root, target_is_directory=True)
    (served_root / "escape").symlink_to(outside / "secret", target_is_directory=True)
    server = BackendServer(server_config)
    try:
        assert "escape" not in server.registry.ids
        assert "demo" in server.registry.ids
    finally:
        server.ctx.term()


def test_invalid_corrections_are_refused_with_reasons(client, demo_dataset):
    info = demo_dataset.episode(0)
    good = EpisodeAnnotation(
        dataset="demo",
        episode=0,
        duration=info.duration,
        fps=demo_dataset.fps,
        segments=[Segment(name="reach", start=0, end=info.duration)],
    )
    wrong_length = msgspec.structs.replace(
        good, duration=info.duration + 3, segments=[Segment(name="x", start=0, end=info.duration + 3)]
    )
    reply = client.recv(
        client.send(
            Submit(
                correction=Correction(
                    uuid="w1", dataset="demo", episode=0, base_revision=0, user="a", annotation=wrong_length
                )
            )
        )
    )
    assert isinstance(reply, Error) and reply.code == "invalid" and "duration" in reply.message
    reply = client.recv(
        client.send(
            Submit(
                correction=Correction(
                    uuid="w2",
                    dataset="demo",
                    episode=0,
                    base_revision=0,
                    user="a",
                    patch={"review": "accepted"},
                )
            )
        )
    )
    assert isinstance(reply, Error) and reply.code == "not_found"
    ack = client.submit(
        Correction(uuid="w3", dataset="demo", episode=0, base_revision=0, user="a", annotation=good)
    )
    bad_patch = {"segments": [{"name": "reach", "start": 0.0, "end": 1.0}]}  # no longer covers the episode
    reply = client.recv(
        client.send(
            Submit(
                correction=Correction(
                    uuid="w4",
                    dataset="demo",
                    episode=0,
                    base_revision=ack.revision,
                    user="a",
                    patch=bad_patch,
                )
            )
        )
    )
    assert isinstance(reply, Error) and reply.code == "invalid" and "segments" in reply.message
    _assert_alive(client)


# ------------------------------------------------------------ fuzzing the decoder

_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats(allow_nan=True)
    | st.text(max_size=20)
    | st.binary(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=20,
)
_types = st.sampled_from(
    ["hello", "ping", "predict", "submit", "get_annotation", "get_queue", "reload_model", "x", ""]
)


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.one_of(
        st.binary(max_size=200),
        _values.map(msgspec.msgpack.encode),
        st.builds(
            lambda t, body: msgspec.msgpack.encode({**body, "type": t, "id": "f"}),
            _types,
            st.dictionaries(
                st.sampled_from(
                    ["dataset", "episode", "episodes", "correction", "protocol", "client", "kinds"]
                ),
                _values,
                max_size=5,
            ),
        ),
    )
)
def test_decoder_never_crashes(data):
    try:
        decode_request(data, limit=4096)
    except WireError as exc:
        assert exc.code in ERROR_CODES
        assert str(exc)


def test_fuzzed_messages_over_the_socket(client):
    """A burst of random garbage, then the server still answers."""
    rng = __import__("random").Random(7)
    for i in range(200):
        blob = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 64)))
        if i % 3 == 0:
            blob = msgspec.msgpack.encode(
                {"type": rng.choice(["submit", "predict", "hello"]), "id": str(i), "episode": blob}
            )
        reply = _raw_reply(client, blob)
        assert isinstance(reply, Error)
    _assert_alive(client)


def test_config_refuses_exposed_bind_without_curve(tmp_path, served_root):
    with pytest.raises(ValueError, match="--curve"):
        ServerConfig(datasets=[served_root], store=tmp_path / "s.db", bind="tcp://0.0.0.0:5555")
    with pytest.raises(ValueError, match="--curve"):
        ServerConfig(
            datasets=[served_root],
            store=tmp_path / "s.db",
            bind="tcp://127.0.0.1:5555",
            events="tcp://10.1.2.3:5556",
        )
    ServerConfig(datasets=[served_root], store=tmp_path / "s.db", bind="tcp://0.0.0.0:5555", insecure=True)
    ServerConfig(datasets=[served_root], store=tmp_path / "s.db", bind="tcp://[::1]:5555")
    ServerConfig(datasets=[served_root], store=tmp_path / "s.db", bind="ipc:///tmp/robo.sock")


def test_encoded_requests_round_trip():
    msg = Predict(id="p", dataset="demo", episodes=[1, 2], kinds=["segments"], options={"fps": 2})
    assert decode_request(encode(msg)) == msg
