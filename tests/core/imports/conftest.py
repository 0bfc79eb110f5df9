"""Import fixtures: the export fixtures' store of demo annotations, exported in both LeRobot formats.

The annotations (tests.fixtures.export_truth, stored by tests/core/conftest.py) carry every kind the store holds;
episodes 0-4 are accepted and exported, episode 5 is not. Each export is made
once per session and read-only: a test that damages one copies it first.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.fixtures.export_truth import UNREVIEWED_EPISODE

EXPORTED = tuple(e for e in range(6) if e != UNREVIEWED_EPISODE)


def _export(fmt: str, demo_root: Path, store: Path, tmp_path_factory) -> Path:
    from core.export import export

    out = tmp_path_factory.mktemp(fmt) / "out"
    report = export(demo_root, store, fmt, out)
    assert report.episodes == len(EXPORTED) and report.warnings == []
    return out


@pytest.fixture(scope="session")
def subtasks_export(demo_root: Path, store_path: Path, tmp_path_factory) -> Path:
    """The lerobot-subtasks export of the accepted demo annotations (read-only)."""
    return _export("lerobot-subtasks", demo_root, store_path, tmp_path_factory)


@pytest.fixture(scope="session")
def language_export(demo_root: Path, store_path: Path, tmp_path_factory) -> Path:
    """The lerobot-language export of the accepted demo annotations (read-only)."""
    return _export("lerobot-language", demo_root, store_path, tmp_path_factory)
