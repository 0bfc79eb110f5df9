"""Layering holds at run time, not only in import-linter's static view."""

from __future__ import annotations

import subprocess
import sys

import pytest

CORE_MODULES = ["core.annotations", "core.dataset", "core.video", "core.errors", "core.demo.scene"]


def _loaded_after(imports: list[str]) -> set[str]:
    code = "import sys\n" + "".join(f"import {m}\n" for m in imports) + "print(' '.join(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return set(out.stdout.split())


def test_core_pulls_in_no_heavy_or_gui_modules():
    loaded = _loaded_after(CORE_MODULES)
    for heavy in ("torch", "PySide6", "zmq", "transformers", "lerobot", "pyqtgraph"):
        assert heavy not in loaded, f"importing core loads {heavy}"


def test_the_client_pulls_in_no_qt_torch_or_lerobot():
    loaded = _loaded_after(["client", "client.session", "client.loop", "client.blocking"])
    for heavy in ("torch", "PySide6", "transformers", "lerobot", "pyqtgraph", "app", "backend", "trainer"):
        assert heavy not in loaded, f"importing client loads {heavy}"


@pytest.mark.parametrize("cli", ["app.cli", "backend.cli", "trainer.cli"])
def test_command_lines_start_without_torch(cli):
    assert "torch" not in _loaded_after([cli])


@pytest.mark.parametrize("prog", ["robo-annotate", "robo-backend", "robo-trainer"])
def test_console_scripts_answer_help(prog):
    exe = sys.executable.rsplit("/", 1)[0] + "/" + prog
    out = subprocess.run([exe, "--help"], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "usage:" in out.stdout
