"""Shared fixtures: the demo dataset, written once by our generator through lerobot.

The dataset is cached under .cache/test-data keyed by a hash of the generator's
source, so re-runs reuse it and a change to the generator rebuilds it.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("SVT_LOG", "1")

REPO = Path(__file__).resolve().parents[1]
# ROBO_TEST_CACHE moves the cache (e.g. one per worktree or parallel developer).
CACHE = Path(os.environ.get("ROBO_TEST_CACHE") or REPO / ".cache" / "test-data")
DEMO_PARAMS = {"episodes": 6, "seed": 0, "width": 320, "height": 240, "fps": 30}


def build_cached_demo(params: dict, name: str) -> Path:
    pytest.importorskip("lerobot", reason="the demo writer needs the 'lerobot' extra")
    from core.demo.writer import cached_demo

    return cached_demo(CACHE, name, **params)


@pytest.fixture(scope="session")
def demo_root() -> Path:
    """A 6-episode, two-camera LeRobot v3 demo dataset (read-only: copy before changing)."""
    return build_cached_demo(DEMO_PARAMS, "demo")


@pytest.fixture
def demo_copy(demo_root: Path, tmp_path: Path) -> Path:
    """A private copy of the demo dataset that a test may damage."""
    dst = tmp_path / "demo"
    shutil.copytree(demo_root, dst)
    return dst


@pytest.fixture(scope="session")
def tiny_qwen() -> Path:
    """A tiny random-weight Qwen2.5-VL checkpoint directory (read-only), built offline and cached.

    Loads with AutoProcessor / AutoModelForImageTextToText.from_pretrained(path) like a real one.
    """
    pytest.importorskip("torch", reason="the tiny Qwen checkpoint needs the 'vlm' extra")
    pytest.importorskip("transformers", reason="the tiny Qwen checkpoint needs the 'vlm' extra")
    from tests.fixtures.tiny_qwen import cached_tiny_qwen

    return cached_tiny_qwen(CACHE)
