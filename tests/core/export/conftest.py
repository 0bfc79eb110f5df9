"""Export fixtures: the demo's annotations (tests.fixtures.export_truth, stored by
tests/core/conftest.py) exported in each conversation format once per session."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.fixtures.export_truth import (  # noqa: F401  (the export tests import them from here)
    NO_MOTION_EPISODE,
    OFF_GRID_EPISODE,
    UNREVIEWED_EPISODE,
    write_store,
)

# The official qwen-vl-finetune sft.sh budget (--max_pixels 50176) and RoboInterVLM's (the qwen default).
OFFICIAL_SFT = (3136, 50176)
ROBOINTER = (3136, 12845056)


def _export(fmt: str, demo_root: Path, store_path: Path, tmp_path_factory, **kw) -> Path:
    from core.export import export

    out = tmp_path_factory.mktemp(fmt) / "out"
    report = export(demo_root, store_path, fmt, out, **kw)
    assert report.samples > 0 and report.warnings == []
    return out


@pytest.fixture(scope="session")
def qwen(demo_root: Path, store_path: Path, tmp_path_factory) -> Path:
    """The qwen export at its default budget (read-only)."""
    return _export("qwen", demo_root, store_path, tmp_path_factory)


@pytest.fixture(scope="session")
def qwen_sft(demo_root: Path, store_path: Path, tmp_path_factory) -> Path:
    """The qwen export at the official sft.sh budget (read-only)."""
    lo, hi = OFFICIAL_SFT
    return _export("qwen", demo_root, store_path, tmp_path_factory, min_pixels=lo, max_pixels=hi)


@pytest.fixture(scope="session")
def llava(demo_root: Path, store_path: Path, tmp_path_factory) -> Path:
    """The llava export (read-only)."""
    return _export("llava", demo_root, store_path, tmp_path_factory)
