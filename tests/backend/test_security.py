"""CURVE: allowed clients talk, others get nothing; exposed binds need keys or --insecure."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import zmq.auth

from backend.config import ServerConfig
from backend.security import keygen
from client import BackendClient, BackendTimeout, ClientKeys
from tests.fixtures.servers import free_ports, running_server


@pytest.fixture
def keys(tmp_path: Path) -> Path:
    d = tmp_path / "keys"
    keygen(d)
    keygen(d, client="alice")
    return d


def test_keygen_layout(keys):
    assert (keys / "server.key").is_file() and (keys / "server.key_secret").is_file()
    assert (keys / "authorized_clients" / "alice.key").is_file()
    assert (keys / "clients" / "alice.key_secret").stat().st_mode & 0o077 == 0
    keygen(keys)  # again: keeps the existing server key
    assert len(list(keys.glob("server.key*"))) == 2


def test_curve_allows_listed_clients_only(keys, served_root, tmp_path):
    a, b = free_ports(2)
    cfg = ServerConfig(
        datasets=[served_root],
        store=tmp_path / "s.db",
        bind=f"tcp://127.0.0.1:{a}",
        events=f"tcp://127.0.0.1:{b}",
        curve_dir=keys,
    )
    with running_server(cfg):
        alice = ClientKeys.from_files(keys / "server.key", keys / "clients" / "alice.key_secret")
        with BackendClient(cfg.bind, keys=alice, timeout=10) as c:
            assert [d.id for d in c.hello().datasets] == ["demo"]

        stranger_dir = tmp_path / "stranger"
        stranger_dir.mkdir()
        _, secret = zmq.auth.create_certificates(str(stranger_dir), "mallory")
        mallory = ClientKeys.from_files(keys / "server.key", Path(secret))
        with BackendClient(cfg.bind, keys=mallory, timeout=1.5) as c, pytest.raises(BackendTimeout):
            c.hello()
        with BackendClient(cfg.bind, timeout=1.5) as c, pytest.raises(BackendTimeout):
            c.hello()  # plain text to a CURVE server: never answered


def test_cli_refuses_exposed_bind_without_curve(served_root, tmp_path):
    exe = Path(sys.executable).with_name("robo-backend")
    out = subprocess.run(
        [
            exe,
            "serve",
            "--datasets",
            served_root,
            "--store",
            tmp_path / "s.db",
            "--bind",
            "tcp://0.0.0.0:5999",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 2
    assert "--curve" in out.stderr and "--insecure" in out.stderr
