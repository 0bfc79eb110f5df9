"""The hello/welcome handshake and the socket set-up every client of the backend shares."""

from __future__ import annotations

import zmq

from client.errors import ProtocolMismatch
from client.keys import ClientKeys
from core.protocol import PROTOCOL_VERSION, Hello, Welcome, new_id

# Largest reply a client accepts (an annotation with long trajectories fits many times over).
MAX_MESSAGE = 64 * 2**20


def hello(client: str, user: str) -> Hello:
    """A Hello with a fresh id: `client` names the program, `user` signs the corrections."""
    return Hello(id=new_id(), client=client, protocol=PROTOCOL_VERSION, user=user)


def check_welcome(welcome: Welcome, endpoint: str) -> Welcome:
    """The welcome itself, or ProtocolMismatch when the backend speaks another protocol."""
    if welcome.protocol != PROTOCOL_VERSION:
        raise ProtocolMismatch(endpoint, welcome.protocol)
    return welcome


def events_endpoint(events: str, endpoint: str) -> str:
    """The PUB endpoint a client can reach: a wildcard bind address becomes the ROUTER's host."""
    if not events.startswith("tcp://"):
        return events
    head, _, port = events.rpartition(":")
    if head in ("tcp://0.0.0.0", "tcp://*", "tcp://[::]") and endpoint.startswith("tcp://"):
        return f"{endpoint.rpartition(':')[0]}:{port}"
    return events


def socket(
    ctx: zmq.Context,
    kind: int,
    endpoint: str,
    keys: ClientKeys | None,
    *,
    immediate: bool = False,
    max_message: int = -1,
) -> zmq.Socket:
    """A connected client socket (DEALER or SUB), CURVE-keyed when `keys` are given.

    `immediate`: queue nothing for a peer that is not connected (sends fail with zmq.Again
    instead), so unsent work stays in the caller's own books (the app's link wants this; a
    blocking client wants its request queued until the connection is up).
    """
    sock = ctx.socket(kind)
    sock.linger = 0
    sock.maxmsgsize = max_message
    if immediate:
        sock.immediate = True
    if keys is not None:
        keys.apply(sock)
    sock.connect(endpoint)
    return sock
