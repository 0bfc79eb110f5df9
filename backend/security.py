"""CURVE encryption with an allow-list of client keys (pyzmq's ZAP authenticator).

`robo-backend keygen DIR` writes the server's key pair and an empty
`authorized_clients/`; `--client NAME` adds a client key pair under `clients/`
and puts its public key on the allow-list. A client needs the server's public
key (`server.key`) and its own key pair; it loads them with client.keys.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import zmq
import zmq.auth
from zmq.auth.thread import ThreadAuthenticator

SERVER_NAME = "server"
ALLOWED = "authorized_clients"
CLIENTS = "clients"


def keygen(directory: Path, client: str | None = None) -> list[Path]:
    """Create the server key pair (once) and optionally a client pair; returns the files written."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / ALLOWED).mkdir(exist_ok=True)
    written: list[Path] = []
    if not (directory / f"{SERVER_NAME}.key_secret").is_file():
        pub, sec = zmq.auth.create_certificates(str(directory), SERVER_NAME)
        written += [Path(pub), Path(sec)]
        Path(sec).chmod(0o600)
    if client:
        if not client.replace("-", "").replace("_", "").isalnum():
            raise ValueError(f"client name {client!r}: use letters, digits, '-' and '_'")
        cdir = directory / CLIENTS
        cdir.mkdir(exist_ok=True)
        pub, sec = zmq.auth.create_certificates(str(cdir), client)
        Path(sec).chmod(0o600)
        allowed = directory / ALLOWED / f"{client}.key"
        shutil.copy(pub, allowed)
        written += [Path(pub), Path(sec), allowed]
    return written


def load_pair(secret_file: Path) -> tuple[bytes, bytes]:
    public, secret = zmq.auth.load_certificate(str(secret_file))
    if secret is None:
        raise ValueError(f"{secret_file}: holds no secret key")
    return public, secret


class CurveServer:
    """Starts the ZAP authenticator and makes sockets CURVE servers."""

    def __init__(self, ctx: zmq.Context, directory: Path) -> None:
        self.public, self.secret = load_pair(directory / f"{SERVER_NAME}.key_secret")
        self.auth = ThreadAuthenticator(ctx)
        self.auth.start()
        # Only clients whose public key is in authorized_clients/ may connect.
        self.auth.configure_curve(domain="*", location=str(directory / ALLOWED))

    def apply(self, sock: zmq.Socket) -> None:
        sock.curve_secretkey = self.secret
        sock.curve_publickey = self.public
        sock.curve_server = True

    def stop(self) -> None:
        self.auth.stop()
