"""A non-editable install works: the wheel carries resources/, and the commands run from anywhere.

The wheel is built from the checkout's files, installed without dependencies into a
fresh virtual environment that borrows this test environment's packages (a .pth
file: the dependencies, not our code), and used from a folder outside the repository.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


def _source_copy(dst: Path) -> Path:
    """The files a clone of this checkout would have (tracked and new, nothing ignored)."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=REPO, capture_output=True, check=True,
    ).stdout.decode().split("\0")  # fmt: skip
    for rel in filter(None, listed):
        src = REPO / rel
        if src.is_file():
            (dst / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dst / rel)
    return dst


def _run(cmd: list[str], **kwargs) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, capture_output=True, text=True, **kwargs)
    assert proc.returncode == 0, f"{cmd} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
    return proc


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> tuple[Path, dict[str, str]]:
    """(the fresh venv, the environment to run it with) with our wheel installed in it."""
    pytest.importorskip("setuptools", reason="building the wheel offline uses this environment's setuptools")
    if shutil.which("git") is None or not (REPO / ".git").exists():
        pytest.skip("needs a git checkout to know which files a clone has")
    work = tmp_path_factory.mktemp("packaging")
    src = _source_copy(work / "src")
    _run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(work / "dist"),
            str(src),
        ]
    )
    (wheel,) = (work / "dist").glob("robo_annotate-*.whl")
    venv = work / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", str(venv)])
    python = venv / "bin" / "python"
    purelib = _run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"]
    ).stdout.strip()
    borrowed = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    Path(purelib, "test-environment.pth").write_text("".join(f"{p}\n" for p in sorted(borrowed)))
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["QT_QPA_PLATFORM"] = "offscreen"
    # pip comes from the borrowed packages; --ignore-installed leaves the test environment's own alone.
    _run(
        [
            str(python),
            "-m",
            "pip",
            "install",
            "-q",
            "--no-deps",
            "--no-index",
            "--ignore-installed",
            str(wheel),
        ],
        env=env,
    )
    return venv, env


def test_the_wheel_carries_prompts_themes_and_deepspeed_configs(installed, tmp_path):
    venv, env = installed
    check = textwrap.dedent(
        """
        import json, sys
        from pathlib import Path
        import core
        from core import resources
        from core.vlm.prompts import load_template, prompts_dir
        from PySide6.QtWidgets import QApplication
        from app.ui.theme import apply_theme
        from trainer.cli import build_parser

        app = QApplication([])
        apply_theme(app, "dark")
        args = build_parser().parse_args(["finetune", "--store", "s", "--datasets", "d", "--base-model", "m",
                                          "--out", "o", "--deepspeed", "zero3"])
        print(json.dumps({
            "core": core.__file__,
            "resources": str(resources.root()),
            "prompts": str(prompts_dir()),
            "segmentation": load_template("segmentation"),
            "sheet": len(app.styleSheet()),
            "zero2": str(resources.deepspeed_config("zero2.json")),
            "zero3": str(args.deepspeed),
            "stage": json.loads(args.deepspeed.read_text())["zero_optimization"]["stage"],
        }))
        """
    )
    out = _run([str(venv / "bin" / "python"), "-c", check], cwd=tmp_path, env=env).stdout
    got = json.loads(out.strip().splitlines()[-1])
    site = venv.resolve()
    for key in ("core", "resources", "prompts", "zero2", "zero3"):
        assert Path(got[key]).resolve().is_relative_to(site), f"{key} comes from {got[key]}, not the install"
    assert (
        got["segmentation"]
        == (REPO / "resources" / "prompts" / "segmentation.txt").read_text().strip() + "\n"
    )
    assert got["sheet"] == len((REPO / "resources" / "themes" / "dark.qss").read_text())
    assert Path(got["zero2"]).name == "zero2.json" and got["stage"] == 3


def test_the_installed_backend_evaluates_a_dataset_from_anywhere(installed, demo_root, tmp_path):
    venv, env = installed
    out = tmp_path / "result.json"
    _run(
        [str(venv / "bin" / "robo-backend"), "evaluate", str(demo_root), "--episodes", "0", "1", "--json", str(out)],
        cwd=tmp_path, env=env,
    )  # fmt: skip
    result = json.loads(out.read_text())
    assert [r["episode"] for r in result["episodes"]] == [0, 1] and not result["errors"]
    assert result["mean"]["f1@1.0"] > 0
