"""Backend fixtures: real servers on loopback, in-process or as child processes."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from backend.config import ServerConfig
from backend.server import BackendServer
from client import BackendClient, BackendTimeout
from core.dataset import Dataset

REPO = Path(__file__).resolve().parents[2]


def free_ports(n: int = 2) -> list[int]:
    """n free, consecutive-or-not loopback ports (closed right away; a race is unlikely on loopback)."""
    socks, ports = [], []
    for _ in range(n):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        socks.append(s)
        ports.append(s.getsockname()[1])
    for s in socks:
        s.close()
    return ports


@pytest.fixture
def served_root(demo_root: Path, tmp_path: Path) -> Path:
    """A folder holding one dataset named 'demo' (a copy: links out of a root are never served)."""
    root = tmp_path / "datasets"
    root.mkdir()
    shutil.copytree(demo_root, root / "demo")
    return root


@pytest.fixture
def demo_dataset(demo_root: Path) -> Dataset:
    return Dataset(demo_root)


@contextmanager
def running_server(config: ServerConfig, engine=None) -> Iterator[BackendServer]:
    server = BackendServer(config, engine=engine)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def server_config(served_root: Path, tmp_path: Path) -> ServerConfig:
    a, b = free_ports(2)
    return ServerConfig(
        datasets=[served_root],
        store=tmp_path / "store.db",
        bind=f"tcp://127.0.0.1:{a}",
        events=f"tcp://127.0.0.1:{b}",
        heartbeat_s=0.2,
    )


@pytest.fixture
def server(server_config: ServerConfig) -> Iterator[BackendServer]:
    with running_server(server_config) as srv:
        yield srv


@pytest.fixture
def client(server: BackendServer) -> Iterator[BackendClient]:
    c = BackendClient(server.config.bind, user="alice", timeout=20)
    c.hello()
    yield c
    c.close()


class ServerProcess:
    """`robo-backend serve` as a child process, killable like a real crash."""

    def __init__(self, datasets: Path, store: Path, extra: list[str] | None = None) -> None:
        self.datasets, self.store, self.extra = datasets, store, extra or []
        a, b = free_ports(2)
        self.bind, self.events = f"tcp://127.0.0.1:{a}", f"tcp://127.0.0.1:{b}"
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 60) -> ServerProcess:
        exe = shutil.which("robo-backend", path=os.path.dirname(sys.executable)) or "robo-backend"
        self.proc = subprocess.Popen(
            [
                exe,
                "serve",
                "--datasets",
                str(self.datasets),
                "--store",
                str(self.store),
                "--bind",
                self.bind,
                "--events",
                self.events,
                "--heartbeat",
                "0.2",
                *self.extra,
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        deadline = time.monotonic() + timeout
        with BackendClient(self.bind, timeout=0.5) as probe:
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"backend exited: {self.proc.stdout.read()}")
                try:
                    probe.hello()
                    return self
                except BackendTimeout:
                    continue
        raise RuntimeError("backend did not start")

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()
