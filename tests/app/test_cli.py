"""`robo-annotate open` / `demo`: a local backend for the session, a link, the GUI, and a clean stop.

The GUI itself is another module's (app.ui.launch.run_gui); these tests put a
stand-in `run_gui` in its place that drives the real link the way the window
does (wait for the backend, predict, load, edit), so what is checked here is the
command's own job: the backend child process, the journal, the hand-over and
the clean-up.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
import types
from pathlib import Path

import pytest

import app.ui.main_window  # noqa: F401  (the real app runs below: a broken GUI import fails, never skips)
from app import cli
from app.link.local_backend import LocalBackend, LocalBackendError, default_store, probe
from tests.fixtures.link import DATASET, ServerProcess, edit, human_revisions, serve_copy

REPO = Path(__file__).resolve().parents[2]
WAIT = 30_000


def _gone(pid: int) -> bool:
    """True once `pid` has exited (a zombie waiting for a reaper counts as gone)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return True
    return "\nState:\tZ" in status


@pytest.fixture
def data_home(tmp_path, monkeypatch) -> Path:
    home = tmp_path / "xdg"
    monkeypatch.setenv("XDG_DATA_HOME", str(home))
    return home


@pytest.fixture
def gui(monkeypatch, qtbot):
    """A stand-in for app.ui.launch.run_gui that uses the real link like the window does."""
    calls: list[dict] = []

    def run_gui(dataset_path, dataset_id, link, screenshot=None, episode=None):
        call = {
            "path": dataset_path,
            "id": dataset_id,
            "link": link,
            "screenshot": screenshot,
            "episode": episode,
        }
        calls.append(call)
        link.start()  # as the real window does, once it listens
        qtbot.waitUntil(lambda: link.state == "alive", timeout=WAIT)
        ep = episode or 0
        with qtbot.waitSignal(link.prediction_ready, timeout=WAIT):
            link.predict(dataset_id, [ep])
        with qtbot.waitSignal(link.annotation_loaded, timeout=WAIT) as loaded:
            link.request_annotation(dataset_id, ep)
        head = loaded.args[2]
        call["uuid"] = link.submit(edit(dataset_path, ep, ["reviewed"], link.user), head.revision)
        qtbot.waitUntil(lambda: link.pending == 0, timeout=WAIT)
        if screenshot is not None:
            screenshot.write_bytes(b"\x89PNG stand-in")
        return 0

    module = types.ModuleType("app.ui.launch")
    module.run_gui = run_gui
    monkeypatch.setitem(sys.modules, "app.ui.launch", module)
    return calls


def test_help_and_start_up_import_no_torch_and_no_qt():
    out = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "app.cli", "open", "--help"],
        capture_output=True,
        text=True,
        cwd=REPO,
    )
    assert out.returncode == 0 and "--backend" in out.stdout and "--screenshot" in out.stdout
    modules = {line.split("|")[-1].strip().split(".")[0] for line in out.stderr.splitlines() if "|" in line}
    assert "core" in modules  # the measurement saw our imports
    assert not modules & {"torch", "transformers", "PySide6", "zmq", "lerobot"}


def test_open_starts_a_local_backend_and_stops_it_after(gui, data_home, demo_root, tmp_path, capsys):
    root = serve_copy(demo_root, tmp_path)
    shot = tmp_path / "shot.png"
    rc = cli.main(
        ["open", str(root / DATASET), "--user", "dana", "--episode", "2", "--screenshot", str(shot)]
    )
    out = capsys.readouterr().out
    assert rc == 0
    (call,) = gui
    assert call["id"] == DATASET and call["episode"] == 2 and call["screenshot"] == shot
    assert call["link"].user == "dana" and shot.read_bytes().startswith(b"\x89PNG")
    pid = int(re.search(r"local backend pid (\d+)", out).group(1))
    assert _gone(pid), "the local backend must stop when the app returns"
    store = default_store(root / DATASET)
    assert store.is_relative_to(data_home)
    assert [r[2:] for r in human_revisions(store, 2)] == [(call["uuid"], ["reviewed"])]


def test_open_with_backend_uses_it_and_starts_none(gui, data_home, demo_root, tmp_path, capsys):
    root = serve_copy(demo_root, tmp_path)
    server = ServerProcess(root, tmp_path / "remote.db").start()
    try:
        rc = cli.main(["open", str(root / DATASET), "--backend", server.bind, "--user", "erin"])
    finally:
        server.stop()
    assert rc == 0
    assert "local backend" not in capsys.readouterr().out
    (call,) = gui
    assert call["link"].endpoint == server.bind
    assert [r[2:] for r in human_revisions(tmp_path / "remote.db", 0)] == [(call["uuid"], ["reviewed"])]
    assert not default_store(root / DATASET).exists()


def test_demo_opens_an_existing_demo_dataset(gui, data_home, demo_root, tmp_path):
    data = tmp_path / "demo"
    shutil.copytree(demo_root, data)
    assert cli.main(["demo", "--data", str(data), "--user", "fay"]) == 0
    assert gui[0]["path"] == data.resolve()


@pytest.mark.slow
def test_demo_generates_the_dataset_when_missing(gui, data_home, tmp_path):
    pytest.importorskip("lerobot", reason="the demo writer needs the 'lerobot' extra")
    data = tmp_path / "made" / "demo"
    assert cli.main(["demo", "--data", str(data), "--episodes", "1", "--size", "64x48", "--user", "gus"]) == 0
    assert (data / "meta" / "info.json").is_file() and (data / "ground_truth.json").is_file()
    assert not list(data.parent.glob(".demo.partial-*"))


def test_bad_dataset_and_missing_gui_are_clear_errors(data_home, tmp_path, demo_root, monkeypatch, capsys):
    assert cli.main(["open", str(tmp_path / "nope")]) == 1
    assert "nope: no such dataset directory" in capsys.readouterr().err
    monkeypatch.setitem(sys.modules, "app.ui.launch", None)
    assert cli.main(["open", str(demo_root)]) == 1
    assert "no GUI" in capsys.readouterr().err
    assert not (data_home / "robo-annotate" / "stores").exists()  # no backend was started


def test_local_backend_failing_to_start_says_why(tmp_path, demo_root):
    backend = LocalBackend([demo_root], tmp_path / "store.db", engine="no-such-engine")
    with pytest.raises(LocalBackendError) as err:
        backend.start(timeout=60)
    assert "no-such-engine" in str(err.value) and str(backend.log) in str(err.value)
    assert backend.proc is None


CHILD = """
import sys, time
from pathlib import Path
from app.link.local_backend import LocalBackend
b = LocalBackend([Path(sys.argv[1])], Path(sys.argv[2])).start()
print(b.pid, b.endpoint, flush=True)
time.sleep(600)
"""


def test_local_backend_dies_with_the_app_even_on_sigkill(tmp_path, demo_root):
    app = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(demo_root), str(tmp_path / "store.db")],
        stdout=subprocess.PIPE,
        text=True,
        cwd=REPO,
    )
    try:
        pid, endpoint = app.stdout.readline().split()
        assert probe(endpoint, 10) is not None
    finally:
        app.send_signal(signal.SIGKILL)
        app.wait(10)
    deadline = time.monotonic() + 20
    while not _gone(int(pid)) and time.monotonic() < deadline:
        time.sleep(0.1)
    if not _gone(int(pid)):
        os.kill(int(pid), signal.SIGKILL)
        pytest.fail("the local backend outlived the app")


def test_sigterm_closes_the_real_app_and_its_backend(data_home, demo_root, tmp_path):
    root = serve_copy(demo_root, tmp_path)
    env = dict(
        os.environ,
        XDG_DATA_HOME=str(data_home),
        XDG_CONFIG_HOME=str(tmp_path / "config"),
        ROBO_ANNOTATE_SETTINGS=str(tmp_path / "settings.ini"),  # the window's dock layout: not the user's
        QT_QPA_PLATFORM="offscreen",
    )
    app = subprocess.Popen(
        [sys.executable, "-m", "app.cli", "open", str(root / DATASET), "--user", "hal"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO,
        env=env,
    )
    try:
        pid = None
        for line in app.stdout:
            if m := re.search(r"local backend pid (\d+)", line):
                pid = int(m.group(1))
                break
        assert pid is not None, app.stderr.read()
        time.sleep(1.0)  # let the window come up (a SIGTERM before that is handled too)
        app.send_signal(signal.SIGTERM)
        _, err = app.communicate(timeout=60)
    finally:
        if app.poll() is None:
            app.kill()
    assert app.returncode == 0, err
    assert "Traceback" not in err
    assert _gone(pid)
