"""Trainer fixtures: a store of accepted corrections made from the demo's ground truth
(tests.fixtures.truth builds them). Tests keep images tiny (`SMALL`) and steps few, and share DeepSpeed's compiled ops through
TORCH_EXTENSIONS_DIR so only the first run ever compiles them.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from core.annotations import EpisodeAnnotation
from tests.fixtures.truth import DATASET, REPO, gt_annotation, submit_all

TORCH_EXTENSIONS = REPO / ".cache" / "torch_extensions"


@pytest.fixture(scope="session", autouse=True)
def _cpu_deepspeed() -> None:
    """DeepSpeed on CPU (gloo), its compiled ops cached across runs; inherited by child processes."""
    os.environ.setdefault("TORCH_EXTENSIONS_DIR", str(TORCH_EXTENSIONS))
    os.environ.setdefault("DS_ACCELERATOR", "cpu")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(scope="session")
def ground_truth(demo_root: Path) -> dict:
    return json.loads((demo_root / "ground_truth.json").read_text())


@pytest.fixture(scope="session")
def truth(ground_truth: dict) -> dict[int, EpisodeAnnotation]:
    """Accepted annotations of every demo episode, by episode index."""
    return {int(ep["episode_index"]): gt_annotation(ground_truth, ep) for ep in ground_truth["episodes"]}


@pytest.fixture(scope="session")
def datasets_dir(demo_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder holding the demo as dataset 'demo' (read-only for tests)."""
    root = tmp_path_factory.mktemp("datasets")
    shutil.copytree(demo_root, root / DATASET)
    return root


@pytest.fixture(scope="session")
def accepted_store(tmp_path_factory: pytest.TempPathFactory, truth: dict[int, EpisodeAnnotation]) -> Path:
    """A store where every demo episode is accepted (read-only for tests)."""
    path = tmp_path_factory.mktemp("store") / "annotations.db"
    submit_all(path, list(truth.values()))
    return path
