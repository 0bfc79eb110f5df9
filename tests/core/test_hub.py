"""Datasets by Hub repo id, offline, from a cache laid out the way huggingface_hub lays one out."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from huggingface_hub import constants, scan_cache_dir

from backend.registry import DatasetRegistry
from core.dataset import Dataset
from core.hub import MARKER, HubError, resolve_dataset, source_for
from tests.fixtures.hub_cache import COMMIT, meta_only, write_hub_cache
from tests.fixtures.hub_server import FakeHub

REPO_ID = "someone/demo"
OTHER = "fedcba9876543210fedcba9876543210fedcba98"


@pytest.fixture
def cache(tmp_path, monkeypatch) -> Path:
    """An empty Hub cache that huggingface_hub uses in this process, offline."""
    path = tmp_path / "hf" / "hub"
    path.mkdir(parents=True)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(path))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setenv("HF_LEROBOT_HOME", str(tmp_path / "lerobot-home"))
    return path


@pytest.fixture
def cached(cache, demo_root) -> Path:
    """The demo dataset, whole, as revision COMMIT (refs main and v3.0) of REPO_ID; its snapshot."""
    return write_hub_cache(cache, REPO_ID, demo_root, refs=("main", "v3.0"))


def test_the_test_cache_is_one_huggingface_hub_reads(cache, cached):
    (repo,) = scan_cache_dir(cache).repos
    assert (repo.repo_id, repo.repo_type) == (REPO_ID, "dataset")
    assert set(repo.refs) == {"main", "v3.0"} and repo.refs["main"].commit_hash == COMMIT
    assert not scan_cache_dir(cache).warnings
    assert (cached / "meta" / "info.json").is_symlink()


def test_a_repo_id_opens_offline_from_the_cache(cached, demo_root):
    root = resolve_dataset(REPO_ID)
    assert root == cached
    ds = Dataset(root)
    assert ds.name == "someone--demo", "a Hub dataset's id is owner--name, the cache folder's name"
    assert ds.hub is not None and (ds.hub.repo_id, ds.hub.commit) == (REPO_ID, COMMIT)
    local = Dataset(demo_root)
    assert list(ds.episodes) == list(local.episodes)
    got, want = ds.signals(3), local.signals(3)
    np.testing.assert_array_equal(got.channels["action"], want.channels["action"])
    ref = ds.video(3, ds.cameras[0])
    assert ref.path.is_relative_to(cached) and ref.path.resolve().parent.name == "blobs"


def test_metadata_only_opens_and_a_missing_episode_file_names_repo_and_file(cache, demo_root):
    snapshot = write_hub_cache(cache, REPO_ID, demo_root, include=meta_only)
    ds = Dataset(resolve_dataset(REPO_ID))
    assert len(ds) == 6 and "someone--demo" in ds.summary()
    with pytest.raises(HubError) as exc:
        ds.signals(0)
    msg = str(exc.value)
    assert REPO_ID in msg and "data/chunk-000/file-000.parquet" in msg and "HF_HUB_OFFLINE" in msg
    with pytest.raises(
        HubError, match=r"someone/demo.*videos/observation\.images\.front/chunk-000/file-000\.mp4"
    ):
        ds.video(0, "observation.images.front")
    assert not (snapshot / "data").exists(), "a failed fetch leaves nothing behind"


def test_missing_repo_or_metadata_offline_names_the_repo_and_what_is_missing(cache, demo_root):
    with pytest.raises(HubError, match=r"someone/demo: revision 'main' is not in .*HF_HUB_OFFLINE=1"):
        resolve_dataset(REPO_ID)
    write_hub_cache(cache, REPO_ID, demo_root, include=lambda rel: rel != "meta/info.json")
    with pytest.raises(
        HubError, match=r"someone/demo@0123456789ab: meta/info\.json is not in .*HF_HUB_OFFLINE"
    ):
        resolve_dataset(REPO_ID)
    write_hub_cache(
        cache, "someone/other", demo_root, include=lambda rel: meta_only(rel) and "episodes" not in rel
    )
    with pytest.raises(HubError, match=r"someone/other@.*meta/episodes/chunk-\*/file-\*\.parquet is not in"):
        resolve_dataset("someone/other")


def test_the_default_revision_is_the_codebase_version_like_lerobot(cache, demo_root):
    write_hub_cache(cache, REPO_ID, demo_root, commit=OTHER, refs=("main",))
    tagged = write_hub_cache(cache, REPO_ID, demo_root, commit=COMMIT, refs=("v3.0",))
    assert resolve_dataset(REPO_ID) == tagged
    assert resolve_dataset(REPO_ID, revision="main").name == OTHER
    assert resolve_dataset(REPO_ID, revision=OTHER).name == OTHER
    with pytest.raises(HubError, match=r"revision 'v2\.1' is not in"):
        resolve_dataset(REPO_ID, revision="v2.1")


def test_a_directory_is_read_as_it_is_and_refuses_hub_options(cache, demo_root, tmp_path, monkeypatch):
    assert resolve_dataset(str(demo_root)) == demo_root
    with pytest.raises(HubError, match="--root and --revision go with a Hub repo id"):
        resolve_dataset(str(demo_root), revision="main")
    # A directory spelled like a repo id wins over the repo (as a path always has).
    monkeypatch.chdir(tmp_path)
    shutil.copytree(demo_root, tmp_path / "someone" / "demo")
    assert Dataset(resolve_dataset(REPO_ID)).name == "demo"


def test_root_is_the_datasets_folder_like_lerobot(cache, demo_root, tmp_path):
    root = tmp_path / "mine" / "demo"
    with pytest.raises(HubError, match=rf"someone/demo: {root} holds no dataset yet, and HF_HUB_OFFLINE=1"):
        resolve_dataset(REPO_ID, root=root)
    shutil.copytree(demo_root, root)
    assert resolve_dataset(REPO_ID, root=root) == root
    assert Dataset(root).name == "demo" and Dataset(root).hub is None


def test_a_root_downloaded_into_fetches_the_rest_and_keeps_its_name(cache, demo_root, tmp_path):
    """What a --root download leaves (meta/ and our record of the repo) fetches episodes like the cache."""
    root = tmp_path / "partial"
    shutil.copytree(demo_root / "meta", root / "meta")
    (root / MARKER).parent.mkdir(parents=True)
    (root / MARKER).write_text(json.dumps({"repo_id": REPO_ID, "revision": "v3.0", "commit": COMMIT}))
    ds = Dataset(resolve_dataset(REPO_ID, root=root))
    assert ds.name == "partial" and ds.hub is not None and ds.hub.local_dir == root
    with pytest.raises(
        HubError, match=rf"someone/demo@0123456789ab: data/chunk-000/file-000\.parquet is not in {root}"
    ):
        ds.signals(0)


def test_a_dataset_lerobot_recorded_is_found_in_its_home(cache, demo_root, tmp_path):
    home = Path(os.environ["HF_LEROBOT_HOME"])
    shutil.copytree(demo_root, home / REPO_ID)
    assert resolve_dataset(REPO_ID) == home / REPO_ID


def test_the_backend_serves_a_snapshot_by_owner_name(cached):
    registry = DatasetRegistry([cached])
    assert registry.ids == ["someone--demo"]
    assert registry.get("someone--demo").root == cached
    assert source_for(cached).cache == cached.parents[2]


def _offline_env(tmp_path: Path, hf_home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"))}
    return {**env, "HF_HOME": str(hf_home), "HF_HUB_OFFLINE": "1", "HF_LEROBOT_HOME": str(tmp_path / "none")}


@pytest.mark.slow
def test_commands_take_a_repo_id_from_the_cache_under_hf_home(tmp_path, demo_root):
    """The standard cache rule: $HF_HOME/hub when HF_HUB_CACHE is not set."""
    hf_home = tmp_path / "hf-home"
    write_hub_cache(hf_home / "hub", REPO_ID, demo_root, refs=("v3.0",))
    env = _offline_env(tmp_path, hf_home)
    info = subprocess.run(
        [sys.executable, "-m", "app.cli", "info", REPO_ID],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
    )
    assert info.returncode == 0, info.stderr
    assert info.stdout.startswith("dataset   someone--demo") and "episodes  6" in info.stdout
    out = tmp_path / "eval.json"
    ev = subprocess.run(
        [sys.executable, "-m", "backend.cli", "evaluate", REPO_ID, "--episodes", "0", "--json", str(out)],
        cwd=tmp_path, env=env, capture_output=True, text=True,
    )  # fmt: skip
    assert ev.returncode == 0, ev.stderr
    assert [r["episode"] for r in json.loads(out.read_text())["episodes"]] == [0]
    missing = subprocess.run(
        [sys.executable, "-m", "app.cli", "info", "someone/absent"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
    )
    assert missing.returncode == 1
    assert (
        "error: someone/absent: revision 'main' is not in" in missing.stderr
        and "HF_HUB_OFFLINE=1" in missing.stderr
    )


OPEN = """
import sys
from core.dataset import Dataset
from core.hub import resolve_dataset
ds = Dataset(resolve_dataset("someone/demo"))
for step in sys.argv[1:]:
    kind, ep, *camera = step.split(":")
    ds.signals(int(ep)) if kind == "signals" else ds.video(int(ep), camera[0])
print(ds.name, ds.root)
"""


@pytest.mark.slow
def test_online_metadata_comes_first_and_each_episode_file_when_first_needed(tmp_path, demo_root):
    """Against a local server speaking the Hub's download API (huggingface_hub is the real client)."""
    cache = tmp_path / "hub"
    env = {**_offline_env(tmp_path, tmp_path / "hf"), "HF_HUB_CACHE": str(cache), "HF_HUB_OFFLINE": "0"}
    env["HF_HUB_DISABLE_PROGRESS_BARS"] = "1"
    front, top = "observation.images.front", "observation.images.top"

    def run(*steps: str, **extra: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-c", OPEN, *steps],
            cwd=tmp_path,
            env={**env, **extra},
            capture_output=True,
            text=True,
        )

    with FakeHub(REPO_ID, demo_root) as hub:
        env["HF_ENDPOINT"] = hub.url
        first = run()
        assert first.returncode == 0, first.stderr
        assert hub.sent and all(p.startswith("meta/") for p in hub.sent), hub.sent
        meta = len(hub.sent)
        assert run("signals:2", "signals:4").returncode == 0
        assert hub.sent[meta:] == ["data/chunk-000/file-000.parquet"], "one v3 data file serves every episode"
        assert run(f"video:1:{front}", f"video:5:{front}").returncode == 0
        assert hub.sent[meta + 1 :] == [f"videos/{front}/chunk-000/file-000.mp4"]
    assert first.stdout.split() == [
        "someone--demo",
        str(cache / "datasets--someone--demo" / "snapshots" / COMMIT),
    ]
    (repo,) = scan_cache_dir(cache).repos
    assert "v3.0" in repo.refs, "the default revision is the codebase-version tag"
    # The server is gone: what was fetched works offline, the rest says what is missing.
    again = run("signals:3", f"video:0:{front}", HF_HUB_OFFLINE="1")
    assert again.returncode == 0, again.stderr
    missing = run(f"video:0:{top}", HF_HUB_OFFLINE="1")
    assert missing.returncode == 1
    assert f"someone/demo@{COMMIT[:12]}: videos/{top}/chunk-000/file-000.mp4 is not in" in missing.stderr


def test_export_of_a_repo_id_downloads_what_it_copies_or_says_what_is_missing(
    cache, demo_root, tmp_path, capsys
):
    from core.export.cli import main as export_main
    from tests.fixtures.export_truth import gt_annotation, write_store

    truth = json.loads((demo_root / "ground_truth.json").read_text())
    anns = [gt_annotation(truth, ep, "someone--demo", "accepted") for ep in truth["episodes"][:2]]
    store = write_store(tmp_path / "store.db", anns)
    args = [REPO_ID, "--store", str(store), "--format", "lerobot-language", "--quiet", "--out"]
    write_hub_cache(cache, REPO_ID, demo_root, include=meta_only)
    assert export_main([*args, str(tmp_path / "partial")]) == 1
    err = capsys.readouterr().err
    assert "someone/demo@" in err and "data/chunk-000/file-000.parquet is not in" in err
    assert not (tmp_path / "partial").exists()
    write_hub_cache(cache, "someone/whole", demo_root)
    store = write_store(
        tmp_path / "whole.db", [gt_annotation(truth, truth["episodes"][0], "someone--whole", "accepted")]
    )
    out = tmp_path / "whole"
    args[0], args[2] = "someone/whole", str(store)
    assert export_main([*args, str(out)]) == 0, capsys.readouterr().err
    video = out / "videos" / "observation.images.top" / "chunk-000" / "file-000.mp4"
    assert video.is_file() and not video.is_symlink(), "the export stands alone, not on the cache's links"


def test_an_unreachable_hub_falls_back_to_the_cache_and_says_so(cached, monkeypatch):
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "ENDPOINT", "http://127.0.0.1:9")  # nothing listens on the discard port
    assert resolve_dataset(REPO_ID) == cached
    with pytest.raises(
        HubError, match=r"someone/absent: revision 'main' is not in .*the Hub could not be reached"
    ):
        resolve_dataset("someone/absent")


@pytest.mark.slow
def test_online_root_is_downloaded_into_and_fetches_episodes_there(tmp_path, demo_root):
    root = tmp_path / "mine" / "demo"
    env = {
        **_offline_env(tmp_path, tmp_path / "hf"),
        "HF_HUB_OFFLINE": "0",
        "HF_HUB_DISABLE_PROGRESS_BARS": "1",
    }
    script = (
        "import sys; from core.dataset import Dataset; from core.hub import resolve_dataset; "
        f"ds = Dataset(resolve_dataset('{REPO_ID}', root=sys.argv[1])); ds.signals(1); print(ds.name)"
    )
    with FakeHub(REPO_ID, demo_root) as hub:
        env["HF_ENDPOINT"] = hub.url
        proc = subprocess.run(
            [sys.executable, "-c", script, str(root)], cwd=tmp_path, env=env, capture_output=True, text=True
        )
        assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["demo"], "a --root dataset keeps its directory's name"
    assert sorted(p for p in hub.sent if not p.startswith("meta/")) == ["data/chunk-000/file-000.parquet"]
    assert (root / "data" / "chunk-000" / "file-000.parquet").is_file() and not (root / "videos").exists()
    assert json.loads((root / MARKER).read_text())["commit"] == COMMIT
    assert not (tmp_path / "hf" / "hub").exists(), "nothing went into the Hub cache"
