"""Datasets named by Hugging Face Hub repo id: metadata first, an episode's files when first opened.

`resolve_dataset("lerobot/pusht")` downloads `meta/` into the standard Hugging Face
cache (HF_HOME / HF_HUB_CACHE, as every Hugging Face tool does) and returns the
snapshot folder. `Dataset` on such a folder, in this process or any other (the
backend the app starts, a batch job), sees the cache layout through `source_for`
and downloads a data or video file the first time an episode needs it; v3 files
hold many episodes, so one download serves all of them. Offline (HF_HUB_OFFLINE=1)
everything already cached works, and anything missing is a `HubError` naming the
repo id and the file.

Conventions follow lerobot's `LeRobotDatasetMetadata`: `--root DIR` is the
dataset's own folder (read as it is if it holds one, else downloaded into); with no
`--revision` the newest codebase-version ref we read (v3.0, v2.1, v2.0) is used, like
lerobot's "safe version", else `main`; a dataset recorded by lerobot under
$HF_LEROBOT_HOME/<repo_id> is found there.

A dataset's id (what the store and the backend call it) follows its folder: a
snapshot in the Hub cache is `owner--name` (the cache's own folder name, minus
`datasets--`), any other dataset is its directory name.
"""

from __future__ import annotations

import argparse
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.errors import DatasetError

# owner/name, as the Hub spells repo ids.
REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*$")
# What a dataset's first open downloads: lerobot's metadata folder.
META_PATTERNS = ["meta/*"]
# Written into a --root we downloaded into, so any process can fetch the rest of it.
MARKER = Path(".cache") / "robo-annotate" / "hub.json"
_SEP = "--"


class HubError(DatasetError):
    """A dataset named by repo id cannot be found, downloaded or read from the cache."""


def is_repo_id(text: str) -> bool:
    return bool(REPO_ID.match(text)) and ".." not in text and _SEP not in text


def cache_dir() -> Path:
    """The Hugging Face Hub cache, by huggingface_hub's own rules (HF_HUB_CACHE, HF_HOME, ~/.cache)."""
    from huggingface_hub import constants

    return Path(constants.HF_HUB_CACHE).expanduser()


def offline() -> bool:
    from huggingface_hub import constants

    return bool(constants.HF_HUB_OFFLINE)


def lerobot_home() -> Path:
    """Where lerobot records and keeps local datasets ($HF_LEROBOT_HOME, default $HF_HOME/lerobot)."""
    from huggingface_hub import constants

    return Path(os.environ.get("HF_LEROBOT_HOME") or Path(constants.HF_HOME) / "lerobot").expanduser()


def repo_folder(repo_id: str, cache: Path | None = None) -> Path:
    """The repo's folder in the Hub cache: `<cache>/datasets--owner--name`."""
    return (cache or cache_dir()) / _SEP.join(["datasets", *repo_id.split("/")])


@dataclass(frozen=True)
class HubSource:
    """Where the files of a dataset folder come from: a repo at one commit."""

    repo_id: str
    commit: str
    # The Hub cache the snapshot lives in; None for a --root download (local_dir).
    cache: Path | None = None
    # The --root folder files are downloaded into; None for the Hub cache.
    local_dir: Path | None = None

    def __str__(self) -> str:
        return f"{self.repo_id}@{self.commit[:12]}"

    @property
    def dataset_id(self) -> str:
        """`owner--name` in the Hub cache; a --root folder keeps its directory name."""
        if self.local_dir is not None:
            return self.local_dir.name
        return self.repo_id.replace("/", _SEP)

    def fetch(self, rel: str) -> Path:
        """Download `rel` into the dataset's folder (a no-op if cached); a HubError says what failed."""
        from huggingface_hub import hf_hub_download
        from huggingface_hub.errors import EntryNotFoundError, LocalEntryNotFoundError

        try:
            return Path(
                hf_hub_download(
                    self.repo_id,
                    rel,
                    repo_type="dataset",
                    revision=self.commit,
                    cache_dir=self.cache,
                    local_dir=self.local_dir,
                    local_files_only=offline(),
                )
            )
        except LocalEntryNotFoundError as exc:
            where = self.local_dir or self.cache or cache_dir()
            raise HubError(f"{self}: {rel} is not in {where}, and {_why_not_downloaded(exc)}") from None
        except EntryNotFoundError:
            raise HubError(f"{self}: the repository has no file {rel}") from None
        except _network_errors() as exc:
            raise HubError(f"{self}: cannot download {rel} ({exc})") from exc


def _network_errors() -> tuple[type[BaseException], ...]:
    """What a Hub call raises when the Hub cannot be reached or refuses (httpx's are not OSErrors)."""
    from huggingface_hub.errors import HfHubHTTPError

    errors: tuple[type[BaseException], ...] = (HfHubHTTPError, OSError)
    try:
        import httpx
    except ImportError:  # huggingface_hub < 1.0 uses requests, whose errors are OSErrors
        return errors
    return (*errors, httpx.HTTPError)


def _why_not_downloaded(exc: BaseException | None = None) -> str:
    if offline():
        return "HF_HUB_OFFLINE=1 forbids downloading it (run once online, or unset HF_HUB_OFFLINE)"
    return f"the Hub could not be reached ({exc.__cause__ or exc if exc else 'offline'})"


def source_for(root: Path) -> HubSource | None:
    """The Hub source of a dataset folder: a Hub-cache snapshot, or a --root we downloaded into."""
    snapshots = root.parent
    repo = snapshots.parent
    if snapshots.name == "snapshots" and repo.name.startswith("datasets" + _SEP):
        repo_id = "/".join(repo.name.split(_SEP)[1:])
        if is_repo_id(repo_id):
            return HubSource(repo_id, root.name, cache=repo.parent)
    marker = root / MARKER
    if marker.is_file():
        try:
            record = json.loads(marker.read_text())
            return HubSource(str(record["repo_id"]), str(record["commit"]), local_dir=root)
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise HubError(f"{marker}: not a valid record of where this dataset came from ({exc})") from None
    return None


def dataset_name(root: Path) -> str:
    """A dataset's id: `owner--name` for a Hub-cache snapshot, else its directory's name."""
    source = source_for(root)
    return source.dataset_id if source is not None else root.name


# ---------------------------------------------------------------- resolving a name


def resolve_dataset(spec: str | Path, root: str | Path | None = None, revision: str | None = None) -> Path:
    """The local folder of a dataset given as a directory or a Hub repo id (`owner/name`).

    A directory that exists wins over a repo id of the same spelling, unless --root or
    --revision is given. A repo id downloads its metadata only; `Dataset` fetches the rest.
    """
    text = str(spec)
    path = Path(text).expanduser()
    hub_only = root is not None or revision is not None
    if not is_repo_id(text) or (not hub_only and path.is_dir()):
        if hub_only:
            raise HubError(
                f"{text}: --root and --revision go with a Hub repo id (owner/name), not a directory"
            )
        return path  # Dataset() says what is wrong with a directory that is not a dataset
    if root is not None:
        return _into_root(text, Path(root).expanduser().resolve(), revision)
    recorded = lerobot_home() / text
    if revision is None and _is_dataset(recorded) and not (recorded / ".cache" / "huggingface").exists():
        return recorded  # recorded with lerobot (lerobot reads it from here too)
    return _snapshot(text, revision or _default_revision(text))


def _is_dataset(folder: Path) -> bool:
    return (folder / "meta" / "info.json").is_file()


def _codebase_revisions() -> list[str]:
    from core.dataset import SUPPORTED_VERSIONS

    return sorted(SUPPORTED_VERSIONS, key=lambda v: tuple(int(x) for x in v[1:].split(".")), reverse=True)


def _default_revision(repo_id: str) -> str:
    """The newest codebase-version branch or tag we read, else `main` (lerobot tags its datasets so)."""
    names: set[str] | None = None
    if not offline():
        from huggingface_hub import HfApi
        from huggingface_hub.errors import RepositoryNotFoundError

        try:
            refs = HfApi().list_repo_refs(repo_id, repo_type="dataset")
            names = {r.name for r in [*refs.branches, *refs.tags]}
        except RepositoryNotFoundError:
            raise HubError(
                f"{repo_id}: no such dataset on the Hub (or it is private or gated: log in with `hf auth login`)"
            ) from None
        except _network_errors():
            names = None  # unreachable: what the cache knows, as huggingface_hub does
    if names is None:
        refs_dir = repo_folder(repo_id) / "refs"
        names = {p.name for p in refs_dir.iterdir()} if refs_dir.is_dir() else set()
    return next((v for v in _codebase_revisions() if v in names), "main")


def _hub_call_error(repo_id: str, revision: str, exc: BaseException, where: Path) -> HubError:
    from huggingface_hub.errors import (
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    if isinstance(exc, RevisionNotFoundError):
        return HubError(f"{repo_id}: the Hub has no revision '{revision}'")
    if isinstance(exc, RepositoryNotFoundError):
        return HubError(
            f"{repo_id}: no such dataset on the Hub (or it is private or gated: log in with `hf auth login`)"
        )
    if isinstance(exc, LocalEntryNotFoundError):
        return HubError(f"{repo_id}: revision '{revision}' is not in {where}, and {_why_not_downloaded(exc)}")
    return HubError(f"{repo_id}: cannot fetch its metadata (revision '{revision}'): {exc}")


def _snapshot(repo_id: str, revision: str) -> Path:
    """meta/ of `repo_id` at `revision` in the Hub cache; the snapshot folder."""
    from huggingface_hub import snapshot_download

    try:
        folder = Path(
            snapshot_download(
                repo_id,
                repo_type="dataset",
                revision=revision,
                allow_patterns=META_PATTERNS,
                # Said outright: given a commit hash, huggingface_hub would still ask the Hub for its tree.
                local_files_only=offline(),
            )
        )
    except _network_errors() as exc:  # LocalEntryNotFoundError is a FileNotFoundError
        raise _hub_call_error(repo_id, revision, exc, repo_folder(repo_id)) from None
    _check_metadata(HubSource(repo_id, folder.name, cache=folder.parents[2]), folder)
    return folder


def _into_root(repo_id: str, root: Path, revision: str | None) -> Path:
    """lerobot's `root`: read as it is if it holds the dataset, else meta/ is downloaded into it."""
    if _is_dataset(root):
        return root
    if offline():
        raise HubError(
            f"{repo_id}: {root} holds no dataset yet, and HF_HUB_OFFLINE=1 forbids downloading it into there"
        )
    from huggingface_hub import HfApi, snapshot_download

    rev = revision or _default_revision(repo_id)
    try:
        commit = HfApi().dataset_info(repo_id, revision=rev).sha
        if not commit:
            raise HubError(f"{repo_id}: the Hub named no commit for revision '{rev}'")
        root.mkdir(parents=True, exist_ok=True)
        snapshot_download(
            repo_id, repo_type="dataset", revision=commit, allow_patterns=META_PATTERNS, local_dir=root
        )
    except _network_errors() as exc:
        raise _hub_call_error(repo_id, rev, exc, root) from None
    marker = root / MARKER
    marker.parent.mkdir(parents=True, exist_ok=True)
    marker.write_text(json.dumps({"repo_id": repo_id, "revision": rev, "commit": commit}) + "\n")
    _check_metadata(HubSource(repo_id, commit, local_dir=root), root)
    return root


def _check_metadata(source: HubSource, folder: Path) -> None:
    """What `Dataset` must find before it can open: info.json, and v3's episode tables."""
    info = folder / "meta" / "info.json"
    if not info.is_file():
        source.fetch("meta/info.json")  # says why it is missing (offline, or not in the repo)
    try:
        version = json.loads(info.read_text()).get("codebase_version")
    except (OSError, ValueError, AttributeError):
        return  # Dataset reports a bad info.json with its own message
    episodes = folder / "meta" / "episodes"
    if version == "v3.0" and not any(episodes.glob("chunk-*/file-*.parquet")):
        why = (
            f"is not in {episodes}, and {_why_not_downloaded()}" if offline() else "is not in the repository"
        )
        raise HubError(f"{source}: meta/episodes/chunk-*/file-*.parquet {why}")


def prefetch(dataset: Any) -> None:
    """Download every episode's data and video files of a Hub dataset (exports that copy it whole)."""
    if getattr(dataset, "hub", None) is None:
        return
    for ep in dataset.episodes:
        dataset.data_file(ep)
        for camera in dataset.cameras:
            dataset.video(ep, camera)


# ---------------------------------------------------------------- command lines

DATASET_HELP = "a LeRobot dataset: a directory, or a Hugging Face Hub repo id (owner/name)"


def add_dataset_argument(
    parser: argparse.ArgumentParser, name: str = "dataset", *, many: bool = False, help: str | None = None
) -> None:
    """The dataset argument (`REPO_ID` or a path) with lerobot's `--root` and `--revision`."""
    kwargs: dict[str, Any] = {"nargs": "+"} if many else {}
    if name.startswith("-"):
        kwargs["required"] = True
    parser.add_argument(name, metavar="DATASET", help=help or DATASET_HELP, **kwargs)
    parser.add_argument(
        "--root",
        type=Path,
        default=None,
        help="with a repo id: the dataset's local folder (read as it is, or downloaded into); "
        "default: the Hugging Face cache ($HF_HUB_CACHE)",
    )
    parser.add_argument(
        "--revision",
        default=None,
        help="with a repo id: branch, tag or commit (default: the newest codebase version tag, else main)",
    )


def resolve_args(args: argparse.Namespace, name: str = "dataset") -> Path | list[Path]:
    """The folder(s) of the dataset argument added by `add_dataset_argument`."""
    value = getattr(args, name.lstrip("-").replace("-", "_"))
    root, revision = getattr(args, "root", None), getattr(args, "revision", None)
    if isinstance(value, list):
        if root is not None and len(value) > 1:
            raise HubError("--root names one dataset's folder: give it with a single repo id")
        # --revision applies to each repo id among them; directories are read as they are.
        return [resolve_dataset(v, root, revision if is_repo_id(v) else None) for v in value]
    return resolve_dataset(value, root, revision)
