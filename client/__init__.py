"""The one client of the backend's protocol, without Qt: keys, handshake, request/reply, resend.

`client.blocking` is the blocking client of scripts, the trainer's rounds, the
benchmarks and the tests; `client.session` is the protocol's state without sockets
(what is in flight, what to send again, when the backend counts as dead) and
`client.loop` the non-blocking socket loop over it that the app's link runs on
a worker thread. It imports core only (import-linter holds it to that).
"""

from client.blocking import BackendClient, EventListener
from client.errors import BackendError, BackendTimeout, ProtocolMismatch, UnexpectedReply
from client.keys import ClientKeys, CurveKeyError, load_client_keys

__all__ = [
    "BackendClient",
    "BackendError",
    "BackendTimeout",
    "ClientKeys",
    "CurveKeyError",
    "EventListener",
    "ProtocolMismatch",
    "UnexpectedReply",
    "load_client_keys",
]
