"""Durable corrections over loopback, beside a bare pyzmq DEALER/ROUTER echo.

Both servers run as child processes. Round trip: one client sends a correction
and waits for its acknowledgement (which the backend sends only after the
SQLite commit is fsynced), N times. Throughput: two client processes, each
pipelining corrections (a window in flight, chained on the revisions they will
become) for a fixed count. The echo peer gets the same message bytes.

The tail: the backend's writer traces each group commit (ROBO_WRITER_TRACE, see
backend/writer.py), and the round trips over p99 are matched against the COMMITs
(WAL write + fsync) that ran while they waited, so the table says how much of the
tail is the disk and how much is the machine (scheduling, other processes).

    .venv/bin/python bench/backend.py [--n 2000] [--window 32]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import zmq

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from client import BackendClient  # noqa: E402
from core.annotations import EpisodeAnnotation, Segment  # noqa: E402
from core.dataset import Dataset  # noqa: E402
from core.demo.writer import cached_demo  # noqa: E402
from core.protocol import Ack, Correction, Submit, encode  # noqa: E402

CACHE = REPO / ".cache" / "bench-data"


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def echo_server(endpoint: str) -> None:
    ctx = zmq.Context()
    sock = ctx.socket(zmq.ROUTER)
    sock.bind(endpoint)
    while True:
        sock.send_multipart(sock.recv_multipart())


def make_messages(ds_info: dict, client: int, episodes: list[int], n: int) -> list[Correction]:
    """n corrections cycling over `episodes`, each based on the revision its predecessor becomes."""
    base = dict.fromkeys(episodes, 0)
    out = []
    for k in range(n):
        ep = episodes[k % len(episodes)]
        duration, fps = ds_info[ep]
        ann = EpisodeAnnotation(
            dataset="demo",
            episode=ep,
            duration=duration,
            fps=fps,
            task=f"edit {k}",
            segments=[
                Segment(name="reach", start=0.0, end=duration / 2),
                Segment(name="grasp", start=duration / 2, end=duration),
            ],
        )
        out.append(
            Correction(
                uuid=f"b{client}-{k}-{os.getpid()}",
                dataset="demo",
                episode=ep,
                base_revision=base[ep],
                user=f"bench{client}",
                annotation=ann,
            )
        )
        base[ep] += 1
    return out


def _expect_ack(reply: bytes) -> None:
    from core.protocol import decode_reply

    msg = decode_reply(reply)
    if not isinstance(msg, Ack):
        raise SystemExit(f"backend did not acknowledge a correction: {msg}")


def pipelined(endpoint: str, payloads: list[bytes], window: int, result: mp.Queue, echo: bool) -> None:
    ctx = zmq.Context()
    sock = ctx.socket(zmq.DEALER)
    sock.connect(endpoint)
    sent = received = 0
    t0 = time.perf_counter()
    while received < len(payloads):
        while sent < len(payloads) and sent - received < window:
            sock.send(payloads[sent])
            sent += 1
        reply = sock.recv()
        if not echo:
            _expect_ack(reply)
        received += 1
    result.put(time.perf_counter() - t0)
    sock.close(linger=0)


def round_trips(endpoint: str, payloads: list[bytes], echo: bool) -> np.ndarray:
    """(sent, answered) of each request, in time.monotonic() seconds (the writer's trace clock)."""
    ctx = zmq.Context.instance()
    sock = ctx.socket(zmq.DEALER)
    sock.connect(endpoint)
    spans = []
    for p in payloads:
        t = time.monotonic()
        sock.send(p)
        reply = sock.recv()
        spans.append((t, time.monotonic()))
        if not echo:
            _expect_ack(reply)
    sock.close(linger=0)
    return np.array(spans)


def _ms(spans: np.ndarray) -> np.ndarray:
    return (spans[:, 1] - spans[:, 0]) * 1000


def read_trace(path: Path) -> np.ndarray:
    """The writer's group commits: rows of (begin, applied, committed, jobs)."""
    rows = [list(map(float, line.split())) for line in path.read_text().splitlines() if line.strip()]
    return np.array(rows).reshape(-1, 4)


def tail_share(spans: np.ndarray, commits: np.ndarray, q: float = 99.0) -> dict[str, float]:
    """How much of the round trips over the q-th percentile was spent in COMMIT (WAL write + fsync).

    A request "waited on a slow commit" when a COMMIT overlapping it took longer than the
    median round trip: that request's tail is the disk's; the rest of the tail is the
    machine's (the server or client not scheduled, another process on the core).
    """
    lat = _ms(spans)
    cut = np.percentile(lat, q)
    c0, c1 = commits[:, 1], commits[:, 2]  # COMMIT: from the last job applied to durable
    commit_ms = (c1 - c0) * 1000
    slow = commit_ms > np.percentile(lat, 50)
    in_commit, waited_slow = [], []
    for (a, b), ms in zip(spans, lat, strict=True):
        if ms <= cut:
            continue
        hit = (c0 < b) & (c1 > a)
        overlap = np.clip(np.minimum(c1[hit], b) - np.maximum(c0[hit], a), 0, None).sum() * 1000
        in_commit.append(overlap / ms)
        waited_slow.append(bool((hit & slow).any()))
    return {
        "tail": len(in_commit),
        "commit_share": float(np.mean(in_commit)) if in_commit else float("nan"),
        "slow_share": float(np.mean(waited_slow)) if waited_slow else float("nan"),
        "commit_p50": float(np.percentile(commit_ms, 50)),
        "commit_p99": float(np.percentile(commit_ms, 99)),
        "commit_max": float(commit_ms.max()),
        "slow_ms": float(np.percentile(lat, 50)),
    }


def throughput(endpoint: str, per_client: list[list[bytes]], window: int, echo: bool) -> float:
    q: mp.Queue = mp.Queue()
    procs = [mp.Process(target=pipelined, args=(endpoint, p, window, q, echo)) for p in per_client]
    t0 = time.perf_counter()
    for p in procs:
        p.start()
    for p in procs:
        p.join()
    wall = time.perf_counter() - t0
    return sum(len(p) for p in per_client) / wall


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--n", type=int, default=2000, help="corrections per measurement (per client for throughput)"
    )
    ap.add_argument("--window", type=int, default=32, help="corrections in flight per client")
    args = ap.parse_args()

    root = cached_demo(CACHE, "demo640", episodes=4, seed=1, width=640, height=480, fps=30)
    ds = Dataset(root)
    ds_info = {e.index: (e.duration, ds.fps) for e in ds}
    tmp = Path(tempfile.mkdtemp(prefix="robo-bench-"))
    shutil.copytree(root, tmp / "datasets" / "demo")  # links out of a root are never served

    echo_ep = f"tcp://127.0.0.1:{_free_port()}"
    echo = mp.Process(target=echo_server, args=(echo_ep,), daemon=True)
    echo.start()
    port = _free_port()
    backend_ep = f"tcp://127.0.0.1:{port}"
    trace = tmp / "commits.trace"
    server = subprocess.Popen(
        [
            Path(sys.executable).with_name("robo-backend"),
            "serve",
            "--datasets",
            tmp / "datasets",
            "--store",
            tmp / "store.db",
            "--bind",
            backend_ep,
            "--events",
            f"tcp://127.0.0.1:{_free_port()}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "ROBO_WRITER_TRACE": str(trace)},
    )
    try:
        with BackendClient(backend_ep, timeout=60) as c:
            c.hello()
        rows = []
        # Round trip: episode 0 only, strictly one at a time.
        rt = [
            encode(Submit(id=str(i), correction=m))
            for i, m in enumerate(make_messages(ds_info, 9, [0], args.n))
        ]
        round_trips(echo_ep, rt[:200], echo=True)  # warm-up
        e = _ms(round_trips(echo_ep, rt, echo=True))
        b_spans = round_trips(backend_ep, rt, echo=False)
        b = _ms(b_spans)
        for q in (50, 99, 99.9):
            rows.append(("round trip, 1 client", f"p{q:g} ms", np.percentile(b, q), np.percentile(e, q)))
        # Throughput: two client processes on their own episodes.
        per_client = [
            [
                encode(Submit(id=str(i), correction=m))
                for i, m in enumerate(make_messages(ds_info, k, eps, args.n))
            ]
            for k, eps in ((0, [1, 2]), (1, [3, 0]))
        ]
        # Client 1's chain on episode 0 starts where the round-trip run left it.
        per_client[1] = [
            encode(Submit(id=str(i), correction=m))
            for i, m in enumerate(_rebase(make_messages(ds_info, 1, [3, 0], args.n), {0: args.n}))
        ]
        te = throughput(echo_ep, per_client, args.window, echo=True)
        t_burst = time.monotonic()
        tb = throughput(backend_ep, per_client, args.window, echo=False)
        rows.append((f"2 clients, window {args.window}", "per s", tb, te))
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(10)
        echo.kill()
        commits = read_trace(trace) if trace.is_file() else np.zeros((0, 4))
        shutil.rmtree(tmp, ignore_errors=True)
    if not len(commits):
        raise SystemExit("the backend wrote no commit trace (ROBO_WRITER_TRACE): is it this checkout's?")
    rt_commits = commits[(commits[:, 2] >= b_spans[0, 0]) & (commits[:, 1] <= b_spans[-1, 1])]
    tail = tail_share(b_spans, rt_commits)
    burst = commits[commits[:, 0] >= t_burst]

    print(f"\n{'measure':<24} {'unit':<7} {'backend (durable)':>18} {'bare zmq echo':>14} {'ratio':>7}")
    for name, unit, bv, ev in rows:
        print(f"{name:<24} {unit:<7} {bv:>18.3f} {ev:>14.3f} {bv / ev:>7.2f}")
    print(
        f"\nCOMMIT (WAL write + fsync) per round trip: p50 {tail['commit_p50']:.2f} ms, "
        f"p99 {tail['commit_p99']:.2f} ms, max {tail['commit_max']:.2f} ms"
    )
    print(
        f"tail: of the {tail['tail']} round trips over p99, {tail['slow_share']:.0%} waited on a COMMIT "
        f"slower than the median round trip ({tail['slow_ms']:.2f} ms); COMMIT was "
        f"{tail['commit_share']:.0%} of their time (the rest: scheduling, other processes)"
    )
    if len(burst):
        print(f"2 clients: {burst[:, 3].mean():.1f} corrections per group commit on average")
    p99 = rows[1][2]
    print(f"\ntargets: p99 <= 5 ms (got {p99:.2f}), >= 2,000 durable corrections/s (got {rows[3][2]:,.0f})")


def _rebase(corrections: list[Correction], offsets: dict[int, int]) -> list[Correction]:
    import msgspec

    return [
        msgspec.structs.replace(c, base_revision=c.base_revision + offsets.get(c.episode, 0))
        for c in corrections
    ]


if __name__ == "__main__":
    main()
