"""Shared fixtures: the demo datasets, written once by our generator through lerobot.

The datasets are cached under .cache/test-data keyed by a hash of the generator's
source, so re-runs reuse them and a change to the generator rebuilds them.
`demo_root` is the single-ee pick-and-place most tests read; `single_joint_root`
(an SO-100 in joint space) and `bimanual_root` (two ALOHA arms) are small, and
`demo_variant_root` runs a test once per robot.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("SVT_LOG", "1")

from tests.fixtures.paths import CACHE

# The test command is deterministic: property tests draw the same examples on every run, so CI
# cannot go red by the luck of a draw, nor by a slow machine (no deadlines: tests are not timed
# assertions). `pytest --hypothesis-profile explore` searches afresh
# (and a case it finds belongs in the test as an @example).
_UNTIMED = {"deadline": None, "suppress_health_check": [HealthCheck.too_slow]}
settings.register_profile("repeatable", derandomize=True, print_blob=True, **_UNTIMED)
settings.register_profile("explore", max_examples=500, **_UNTIMED)
settings.load_profile("repeatable")

DEMO_PARAMS = {"episodes": 6, "seed": 0, "width": 320, "height": 240, "fps": 30}
# Four episodes: each of the variant's two tasks twice. Small frames keep them quick to write.
VARIANT_PARAMS = {"episodes": 4, "seed": 0, "width": 256, "height": 192, "fps": 30}


def build_cached_demo(params: dict, name: str) -> Path:
    pytest.importorskip("lerobot", reason="the demo writer needs the 'lerobot' extra")
    from core.demo.writer import cached_demo

    return cached_demo(CACHE, name, **params)


@pytest.fixture(scope="session")
def demo_root() -> Path:
    """A 6-episode, two-camera LeRobot v3 demo dataset (read-only: copy before changing)."""
    return build_cached_demo(DEMO_PARAMS, "demo")


@pytest.fixture(scope="session")
def single_joint_root() -> Path:
    """A 4-episode SO-100 joint-space demo (pick-and-place and push), read-only."""
    return build_cached_demo({**VARIANT_PARAMS, "robot": "single-joint"}, "demo-single-joint")


@pytest.fixture(scope="session")
def bimanual_root() -> Path:
    """A 4-episode two-arm ALOHA demo (handover and peg insertion), read-only."""
    return build_cached_demo({**VARIANT_PARAMS, "robot": "bimanual"}, "demo-bimanual")


@pytest.fixture(params=["single-ee", "single-joint", "bimanual"])
def demo_variant_root(request: pytest.FixtureRequest) -> tuple[str, Path]:
    """(robot, dataset root) for each demo variant; single-ee is `demo_root`."""
    fixture = {"single-ee": "demo_root", "single-joint": "single_joint_root", "bimanual": "bimanual_root"}
    return request.param, request.getfixturevalue(fixture[request.param])


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
