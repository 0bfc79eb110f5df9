"""What every request handler of the backend shares: the reply address and the refusal."""

from __future__ import annotations

# The ROUTER's routing frames of a request: where its replies go.
Envelope = list[bytes]


class RequestError(Exception):
    """A request the backend refuses; `code` is one of core.protocol's ERROR_CODES."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
