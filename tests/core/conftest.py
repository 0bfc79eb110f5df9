"""Core test fixtures: a small LeRobot v3 dataset written by our own writer, no lerobot needed.

Tests that check our reader against lerobot use the lerobot-written demo (`demo_root`,
tests/conftest.py); the rest only need a small dataset, and take `small_root` or
`small_copy` so they run where the 'lerobot' extra is not installed.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from core.annotations import EpisodeAnnotation
from tests.fixtures.export_truth import UNREVIEWED_EPISODE, gt_annotation, write_store
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


# The export and import tests' store of demo annotations (every kind; episode 5 unreviewed).
@pytest.fixture(scope="session")
def ground_truth(demo_root: Path) -> dict:
    return json.loads((demo_root / "ground_truth.json").read_text())


@pytest.fixture(scope="session")
def annotations(demo_root: Path, ground_truth: dict) -> dict[int, EpisodeAnnotation]:
    return {
        ep["episode_index"]: gt_annotation(
            ground_truth,
            ep,
            demo_root.name,
            "unreviewed" if ep["episode_index"] == UNREVIEWED_EPISODE else "accepted",
        )
        for ep in ground_truth["episodes"]
    }


@pytest.fixture(scope="session")
def store_path(tmp_path_factory: pytest.TempPathFactory, annotations: dict[int, EpisodeAnnotation]) -> Path:
    return write_store(tmp_path_factory.mktemp("store") / "annotations.db", list(annotations.values()))
