"""The backend's configuration, validated where it is made."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from core.protocol import MAX_MESSAGE_BYTES

LOOPBACK_NAMES = {"localhost", "127.0.0.1", "::1"}


def is_local_endpoint(endpoint: str) -> bool:
    """True for ipc://, inproc:// and tcp:// on a loopback address."""
    scheme = endpoint.split("://", 1)[0]
    if scheme in ("ipc", "inproc"):
        return True
    host = urlsplit(endpoint.replace("tcp://", "tcp://x@", 1)).hostname or ""
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def events_endpoint_for(bind: str) -> str:
    """The PUB endpoint next to a ROUTER endpoint: the next port, or '<path>.events' for ipc."""
    if bind.startswith("tcp://"):
        head, _, port = bind.rpartition(":")
        if port.isdigit():
            return f"{head}:{int(port) + 1}"
    return bind + ".events"


@dataclass
class ServerConfig:
    # Dataset directories, or folders whose subdirectories are datasets.
    datasets: list[Path]
    # The SQLite store (created if missing).
    store: Path
    # ROUTER endpoint for requests.
    bind: str = "tcp://127.0.0.1:5555"
    # PUB endpoint for events; default: next to `bind`.
    events: str | None = None
    # Engine name and its options.
    engine: str = "kinematic"
    engine_options: dict[str, Any] = field(default_factory=dict)
    # Directory made by `robo-backend keygen`: turns on CURVE encryption and the client allow-list.
    curve_dir: Path | None = None
    # Allow binding a non-loopback address without CURVE.
    insecure: bool = False
    # Seconds between heartbeats on the PUB socket.
    heartbeat_s: float = 1.0
    # Requests larger than this get a 'too_large' error.
    max_message_bytes: int = MAX_MESSAGE_BYTES
    # Episodes per engine call.
    batch_size: int = 8
    # Predict requests queued beyond this get a 'busy' error.
    max_pending: int = 64
    # Seconds without a new acceptance before a task's episodes are re-proposed from its
    # exemplars (engines that learn from accepted episodes only); 0 turns it off.
    propagation_delay: float = 1.0
    # The tracker a Track request without one gets (cpu, sam2, sam3) and its options (e.g. model).
    tracker: str = "cpu"
    tracker_options: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.datasets = [Path(p) for p in self.datasets]
        self.store = Path(self.store)
        if self.events is None:
            self.events = events_endpoint_for(self.bind)
        for name in ("bind", "events"):
            value = getattr(self, name)
            if "://" not in value:
                raise ValueError(f"{name} = {value!r}: must be a ZeroMQ endpoint like tcp://127.0.0.1:5555")
        if self.curve_dir is not None:
            self.curve_dir = Path(self.curve_dir)
            if not (self.curve_dir / "server.key_secret").is_file():
                raise ValueError(
                    f"curve_dir = {self.curve_dir}: no server.key_secret there; run `robo-backend keygen`"
                )
        exposed = [e for e in (self.bind, self.events) if not is_local_endpoint(e)]
        if exposed and self.curve_dir is None and not self.insecure:
            raise ValueError(
                f"bind = {exposed[0]!r} is reachable from other machines without encryption: "
                "give --curve DIR (see `robo-backend keygen`) or, on a trusted network, --insecure"
            )
        if self.heartbeat_s <= 0:
            raise ValueError(f"heartbeat_s = {self.heartbeat_s}: must be > 0")
        if self.max_message_bytes < 1024:
            raise ValueError(f"max_message_bytes = {self.max_message_bytes}: must be >= 1024")
        if self.propagation_delay < 0:
            raise ValueError(f"propagation_delay = {self.propagation_delay}: must be >= 0 seconds")
        if self.batch_size < 1:
            raise ValueError(f"batch_size = {self.batch_size}: must be >= 1")
