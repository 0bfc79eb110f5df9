"""Core test fixtures: a small LeRobot v3 dataset written by our own writer, no lerobot needed.

Tests that check our reader against lerobot use the lerobot-written demo (`demo_root`,
tests/conftest.py); the rest only need a small dataset, and take `small_root` or
`small_copy` so they run where the 'lerobot' extra is not installed.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.fixtures.lerobot_v3 import SmallDataset, write_small_dataset


@pytest.fixture(scope="session")
def small_spec() -> SmallDataset:
    return SmallDataset()


@pytest.fixture(scope="session")
def small_root(tmp_path_factory: pytest.TempPathFactory, small_spec: SmallDataset) -> Path:
    """A 4-episode, two-camera, 96x64 AV1 LeRobot v3 dataset (read-only: copy before changing)."""
    return write_small_dataset(tmp_path_factory.mktemp("small") / "small", small_spec)


@pytest.fixture
def small_copy(small_root: Path, tmp_path: Path) -> Path:
    """A private copy of the small dataset that a test may damage."""
    dst = tmp_path / "small"
    shutil.copytree(small_root, dst)
    return dst
