"""Backend fixtures: a real server on loopback, in-process (tests.fixtures.servers has the helpers)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from backend.config import ServerConfig
from backend.server import BackendServer
from client import BackendClient
from core.dataset import Dataset
from tests.fixtures.servers import free_ports, running_server


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
