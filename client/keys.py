"""CURVE client keys for talking to a backend started with `robo-backend serve --curve`.

`robo-backend keygen DIR --client NAME` writes `DIR/server.key` (the server's
public key) and `DIR/clients/NAME.key_secret` (the client's pair). A client (the
app, the trainer, a script) is given that DIR, or a copy holding those two files,
and the person's name; `ClientKeys.from_dir` is the one way they are looked up.
The server's side (keygen, the ZAP authenticator) stays in backend.security.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import zmq
import zmq.auth

from core.errors import RoboAnnotateError

SERVER_PUBLIC = "server.key"
SERVER_SECRET = "server.key_secret"
CLIENTS = "clients"


class CurveKeyError(RoboAnnotateError):
    """Keys missing or unreadable; the message names the file."""


def _load(path: Path, *, secret: bool) -> tuple[bytes, bytes | None]:
    try:
        public, secret_key = zmq.auth.load_certificate(str(path))
    except (OSError, ValueError) as exc:
        raise CurveKeyError(f"{path}: unreadable key ({exc})") from exc
    if secret and secret_key is None:
        raise CurveKeyError(f"{path}: holds no secret key")
    return public, secret_key


def _client_secret(directory: Path, user: str) -> Path:
    """`clients/USER.key_secret` or `USER.key_secret`, else the only client key there is."""
    for candidate in (directory / CLIENTS / f"{user}.key_secret", directory / f"{user}.key_secret"):
        if candidate.is_file():
            return candidate
    found = [
        p
        for d in (directory / CLIENTS, directory)
        if d.is_dir()
        for p in sorted(d.glob("*.key_secret"))
        if p.name != SERVER_SECRET
    ]
    if len(found) == 1:
        return found[0]
    if not found:
        raise CurveKeyError(
            f"{directory}: no client key ({CLIENTS}/{user}.key_secret); make one with "
            f"`robo-backend keygen {directory} --client {user}`"
        )
    names = ", ".join(p.name for p in found)
    raise CurveKeyError(f"{directory}: several client keys ({names}) and none named {user}.key_secret")


@dataclass(frozen=True)
class ClientKeys:
    """What a client needs to talk to a CURVE server: its public key and our own pair."""

    server_public: bytes
    public: bytes
    secret: bytes

    @classmethod
    def from_files(cls, server_public_file: Path, client_secret_file: Path) -> ClientKeys:
        if not Path(server_public_file).is_file():
            raise CurveKeyError(
                f"{server_public_file}: missing; copy the backend's public key (server.key) here"
            )
        server_public, _ = _load(Path(server_public_file), secret=False)
        public, secret = _load(Path(client_secret_file), secret=True)
        assert secret is not None  # _load(secret=True) raised otherwise
        return cls(server_public, public, secret)

    @classmethod
    def from_dir(cls, directory: str | Path, user: str) -> ClientKeys:
        """The keys a `keygen` directory (or a copy of its two files) holds for `user`."""
        directory = Path(directory).expanduser()
        server = directory / SERVER_PUBLIC
        if not server.is_file():
            raise CurveKeyError(f"{server}: missing; copy the backend's public key (server.key) here")
        return cls.from_files(server, _client_secret(directory, user))

    def apply(self, sock: zmq.Socket) -> None:
        sock.curve_serverkey = self.server_public
        sock.curve_publickey = self.public
        sock.curve_secretkey = self.secret


def load_client_keys(directory: str | Path, user: str) -> ClientKeys:
    return ClientKeys.from_dir(directory, user)
