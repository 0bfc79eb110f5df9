"""Typed errors of a backend's replies, shared by the blocking client and the app's link."""

from __future__ import annotations

import msgspec

from core.errors import ProtocolError
from core.protocol import PROTOCOL_VERSION, Error

# Error codes that mean "this correction will never be accepted": stop sending it.
REJECT_CODES = frozenset({"invalid", "not_found", "forbidden", "too_large"})


class BackendError(ProtocolError):
    """The backend answered with an Error."""

    def __init__(self, error: Error) -> None:
        super().__init__(f"{error.code}: {error.message}")
        self.code = error.code


class BackendTimeout(ProtocolError):
    """No reply within the time given; the message names the endpoint and the request."""


class ProtocolMismatch(ProtocolError):
    """The backend's Welcome names another protocol version than ours."""

    def __init__(self, endpoint: str, theirs: int) -> None:
        super().__init__(
            f"The backend at {endpoint} speaks protocol {theirs}, this client {PROTOCOL_VERSION}: "
            "upgrade the older side."
        )
        self.theirs = theirs


class UnexpectedReply(ProtocolError):
    """The backend answered a request with a reply of the wrong type (a server of another version?)."""

    def __init__(self, request: msgspec.Struct, reply: msgspec.Struct, expected: tuple[type, ...]) -> None:
        wanted = " or ".join(t.__name__ for t in expected)
        super().__init__(
            f"{type(request).__name__} (id {request.id}) got a {type(reply).__name__} reply, "
            f"expected {wanted}: is the backend at this endpoint of protocol {PROTOCOL_VERSION}?"
        )
        self.request = request
        self.reply = reply
        self.expected = expected
