"""The backend's configuration, validated where it is made."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from core.config import setting, validate
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
    datasets: list[Path] = setting(help="dataset directories, or folders whose subdirectories are datasets")
    store: Path = setting(help="the SQLite annotation store (created if missing)")
    bind: str = setting("tcp://127.0.0.1:5555", help="ROUTER endpoint for requests")
    events: str | None = setting(None, help="PUB endpoint for events (default: next to bind)")
    engine: str = setting("kinematic", help="engine name: kinematic, transformers, vllm or openai")
    engine_options: dict[str, Any] = setting(default_factory=dict, cli=False, help="the engine's options")
    curve_dir: Path | None = setting(
        None,
        help="directory made by `robo-backend keygen`: turns on CURVE encryption and the client allow-list",
    )
    insecure: bool = setting(False, help="allow binding a non-loopback address without CURVE")
    heartbeat_s: float = setting(1.0, gt=0, help="seconds between heartbeats on the PUB socket")
    max_message_bytes: int = setting(
        MAX_MESSAGE_BYTES, ge=1024, help="requests larger than this get a 'too_large' error"
    )
    batch_size: int = setting(8, ge=1, help="episodes per engine call")
    max_pending: int = setting(64, help="predict requests queued beyond this get a 'busy' error")
    propagation_delay: float = setting(
        1.0,
        ge=0,
        unit="seconds",
        help="seconds without a new acceptance before a task's episodes are re-proposed from its "
        "exemplars (engines that learn from accepted episodes only); 0 turns it off",
    )
    tracker: str = setting("cpu", help="the tracker a Track request without one gets (cpu, sam2, sam3)")
    tracker_options: dict[str, Any] = setting(
        default_factory=dict, cli=False, help="the tracker's options (e.g. model)"
    )

    def __post_init__(self) -> None:
        validate(self)
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
