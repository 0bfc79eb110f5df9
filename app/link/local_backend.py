"""A `robo-backend serve` child process for people who have no backend running.

Started on free loopback ports with the CPU kinematic engine, stopped when the
app exits: by `stop()`, at interpreter exit (atexit), and, on Linux, by the
kernel when the app dies any other way (SIGTERM, SIGKILL, a crash), through
PR_SET_PDEATHSIG. If it fails to start, the error carries the tail of its log.
"""

from __future__ import annotations

import atexit
import ctypes
import hashlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import weakref
from pathlib import Path

import platformdirs

from client import BackendClient, handshake
from client.errors import ProtocolError
from core.errors import RoboAnnotateError
from core.hub import source_for
from core.protocol import Welcome, WireError

APP_NAME = "robo-annotate"
# Set to a folder to keep the stores, journals and logs there instead.
DATA_DIR_ENV = "ROBO_ANNOTATE_DATA_DIR"


class LocalBackendError(RoboAnnotateError):
    """The local backend could not start; the message holds its log's last lines."""


def data_dir() -> Path:
    """Where the app keeps its stores, journals and logs: $ROBO_ANNOTATE_DATA_DIR, else the OS's
    user data folder (Linux $XDG_DATA_HOME/robo-annotate, macOS ~/Library/Application Support/...)."""
    override = os.environ.get(DATA_DIR_ENV)
    if override:
        return Path(override).expanduser()
    return Path(platformdirs.user_data_dir(APP_NAME, appauthor=False))


def _key(text: str) -> str:
    return hashlib.sha1(text.encode()).hexdigest()[:12]


def default_store(dataset: Path) -> Path:
    """One store per dataset: `<data dir>/stores/<id>-<hash of its path>.db`; a dataset in the Hub
    cache is keyed by its repo id, so a new snapshot of it keeps its annotations."""
    dataset = Path(dataset).expanduser().resolve()
    source = source_for(dataset)
    if source is not None and source.cache is not None:
        return data_dir() / "stores" / f"{source.dataset_id}-{_key('hub:' + source.repo_id)}.db"
    return data_dir() / "stores" / f"{dataset.name}-{_key(str(dataset))}.db"


def journal_dir_for(backend: str, user: str) -> Path:
    """A journal per backend (its endpoint, or a local backend's store) and person."""
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in user)[:40] or "user"
    return data_dir() / "journals" / _key(backend) / safe


def free_ports(n: int = 2) -> list[int]:
    """n free loopback ports (closed right away; a race is unlikely on loopback)."""
    socks, ports = [], []
    for _ in range(n):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        socks.append(s)
        ports.append(s.getsockname()[1])
    for s in socks:
        s.close()
    return ports


def _die_with_parent() -> None:
    """In the child before exec: the kernel sends SIGTERM when the app's process goes away."""
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def _backend_command() -> list[str]:
    exe = shutil.which("robo-backend", path=os.path.dirname(sys.executable))
    if exe:
        return [exe]
    return [sys.executable, "-m", "backend.cli"]


def probe(endpoint: str, timeout: float = 1.0) -> Welcome | None:
    """One hello; the Welcome (of whatever protocol), or None if nothing answered it in time."""
    try:
        with BackendClient(endpoint, user="robo-annotate-probe", timeout=timeout) as c:
            return c.expect(handshake.hello("robo-annotate-probe", c.user), Welcome)
    except (ProtocolError, WireError):
        return None


class LocalBackend:
    """`robo-backend serve --engine ENGINE` on free loopback ports, for the app's lifetime."""

    def __init__(
        self,
        datasets: list[Path],
        store: Path,
        engine: str = "kinematic",
        *,
        log: Path | None = None,
        heartbeat_s: float = 1.0,
        extra_args: list[str] | None = None,
    ) -> None:
        if not datasets:
            raise ValueError("datasets: give at least one dataset directory")
        self.datasets = [Path(d).expanduser().resolve() for d in datasets]
        self.store = Path(store).expanduser()
        self.engine = engine
        self.log = Path(log) if log is not None else self.store.with_suffix(".backend.log")
        self.heartbeat_s = heartbeat_s
        self.extra_args = list(extra_args or [])
        self.endpoint = ""
        self.events = ""
        self.proc: subprocess.Popen | None = None
        self._log_file = None

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    def __enter__(self) -> LocalBackend:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def log_tail(self, lines: int = 20) -> str:
        try:
            text = self.log.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:]) or "(empty log)"

    def start(self, timeout: float = 60.0, attempts: int = 3) -> LocalBackend:
        """Start and wait until it answers a hello; a port taken in between gets a retry on new ports."""
        for d in self.datasets:
            if not d.is_dir():
                raise LocalBackendError(f"{d}: no such dataset directory")
        try:
            self.store.parent.mkdir(parents=True, exist_ok=True)
            self.log.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise LocalBackendError(f"{self.store.parent}: cannot create the store's folder ({exc})") from exc
        for attempt in range(attempts):
            a, b = free_ports(2)
            self.endpoint, self.events = f"tcp://127.0.0.1:{a}", f"tcp://127.0.0.1:{b}"
            try:
                self._spawn(timeout)
                _RUNNING.add(self)
                return self
            except LocalBackendError:
                taken = "Address already in use" in self.log_tail(5)
                self.stop()
                if not taken or attempt == attempts - 1:
                    raise
        raise AssertionError("unreachable")

    def _spawn(self, timeout: float) -> None:
        cmd = [
            *_backend_command(),
            "serve",
            "--datasets",
            *map(str, self.datasets),
            "--store",
            str(self.store),
            "--bind",
            self.endpoint,
            "--events",
            self.events,
            "--engine",
            self.engine,
            "--heartbeat",
            str(self.heartbeat_s),
            *self.extra_args,
        ]
        self._log_file = open(self.log, "ab")  # noqa: SIM115 (kept open for the child's lifetime)
        self._log_file.write(f"\n--- {time.strftime('%F %T')} {' '.join(cmd)}\n".encode())
        self._log_file.flush()
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        self.proc = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
            env=env,
            preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise LocalBackendError(
                    f"the local backend exited with status {self.proc.returncode} before it answered; "
                    f"last lines of {self.log}:\n{self.log_tail()}"
                )
            if probe(self.endpoint, 0.5) is not None:
                return
        raise LocalBackendError(
            f"the local backend did not answer on {self.endpoint} within {timeout:g} s; "
            f"last lines of {self.log}:\n{self.log_tail()}"
        )

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM (the backend finishes its writes and closes the store), SIGKILL if it hangs."""
        proc, self.proc = self.proc, None
        _RUNNING.discard(self)
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout)
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None


_RUNNING: weakref.WeakSet[LocalBackend] = weakref.WeakSet()


@atexit.register
def _stop_all() -> None:
    for backend in list(_RUNNING):
        backend.stop()
