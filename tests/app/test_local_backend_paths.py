"""Where the app keeps its stores and journals, and a local backend on a Hub dataset."""

from __future__ import annotations

import sys
from pathlib import Path

import platformdirs
import pytest

from app.link import local_backend
from app.link.local_backend import DATA_DIR_ENV, LocalBackend, data_dir, default_store, journal_dir_for, probe
from tests.fixtures.hub_cache import COMMIT, write_hub_cache


@pytest.fixture
def no_override(monkeypatch):
    monkeypatch.delenv(DATA_DIR_ENV, raising=False)


def test_the_data_dir_is_the_os_user_data_dir(no_override):
    assert data_dir() == Path(platformdirs.user_data_dir("robo-annotate", appauthor=False))


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="XDG_DATA_HOME is the Linux rule")
def test_on_linux_it_is_still_xdg_data_home(no_override, monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    assert data_dir() == tmp_path / "xdg" / "robo-annotate"
    monkeypatch.delenv("XDG_DATA_HOME")
    assert data_dir() == Path.home() / ".local" / "share" / "robo-annotate"


def test_an_explicit_data_dir_wins(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    monkeypatch.setenv(DATA_DIR_ENV, str(tmp_path / "mine"))
    assert data_dir() == tmp_path / "mine"
    assert default_store(tmp_path / "ds").parent == tmp_path / "mine" / "stores"
    assert journal_dir_for("tcp://h:1", "dana").is_relative_to(tmp_path / "mine" / "journals")


def test_a_hub_datasets_store_follows_its_repo_not_its_snapshot(monkeypatch, tmp_path, demo_root):
    monkeypatch.setenv(DATA_DIR_ENV, str(tmp_path / "data"))
    cache = tmp_path / "hub"
    old = write_hub_cache(cache, "someone/demo", demo_root, commit="f" * 40)
    new = write_hub_cache(cache, "someone/demo", demo_root, commit=COMMIT)
    store = default_store(new)
    assert store == default_store(old) and store.name.startswith("someone--demo-")
    other = write_hub_cache(cache, "else/demo", demo_root)
    assert default_store(other) != store


def test_a_local_backend_serves_a_hub_snapshot_under_its_id(monkeypatch, tmp_path, demo_root):
    """The app hands the snapshot folder to a child `robo-backend serve`; it serves it as owner--name."""
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    snapshot = write_hub_cache(tmp_path / "hub", "someone/demo", demo_root)
    with LocalBackend([snapshot], tmp_path / "store.db") as backend:
        welcome = probe(backend.endpoint, 5.0)
    assert welcome is not None and [d.id for d in welcome.datasets] == ["someone--demo"]
    assert backend.proc is None and backend not in local_backend._RUNNING
