"""Acknowledged corrections survive SIGKILL; resending the rest applies each exactly once.

Two clients pipeline 1,000 corrections (500 each, 8 in flight per client, each
chained on the revision its predecessor will become) to a `robo-backend serve`
child process, which is killed with SIGKILL in the middle of the burst.
"""

from __future__ import annotations

import threading
import time

from client import BackendClient, BackendTimeout
from core.annotations import EpisodeAnnotation, Segment
from core.protocol import Ack, Correction, Submit
from core.store import Store
from tests.fixtures.servers import ServerProcess

PER_CLIENT = 500
WINDOW = 8


def _correction(ds, client_id: int, k: int, episode: int, base: int) -> Correction:
    info = ds.episode(episode)
    ann = EpisodeAnnotation(
        dataset="demo",
        episode=episode,
        duration=info.duration,
        fps=ds.fps,
        task=f"edit {client_id}-{k}",
        segments=[Segment(name=f"s{k}", start=0.0, end=info.duration, source=f"human:u{client_id}")],
    )
    return Correction(
        uuid=f"c{client_id}-{k:04d}",
        dataset="demo",
        episode=episode,
        base_revision=base,
        user=f"u{client_id}",
        annotation=ann,
    )


class BurstClient(threading.Thread):
    def __init__(self, endpoint: str, ds, client_id: int, episodes: list[int]) -> None:
        super().__init__(daemon=True)
        self.endpoint, self.ds, self.client_id, self.episodes = endpoint, ds, client_id, episodes
        self.sent: list[Correction] = []
        self.acked: dict[str, int] = {}
        self.other: list = []

    def run(self) -> None:
        client = BackendClient(self.endpoint, timeout=2.0)
        by_id: dict[str, Correction] = {}
        base = dict.fromkeys(self.episodes, 0)
        k = 0
        try:
            while k < PER_CLIENT or by_id:
                while k < PER_CLIENT and len(by_id) < WINDOW:
                    ep = self.episodes[k % len(self.episodes)]
                    c = _correction(self.ds, self.client_id, k, ep, base[ep])
                    base[ep] += 1  # the revision this one becomes, if applied
                    msg_id = client.send(Submit(correction=c))
                    by_id[msg_id] = c
                    self.sent.append(c)
                    k += 1
                try:
                    reply = client.recv_any(timeout=2.0)
                except BackendTimeout:
                    return  # the server is gone
                c = by_id.pop(reply.id)
                if isinstance(reply, Ack):
                    self.acked[c.uuid] = reply.revision
                else:
                    self.other.append(reply)
        finally:
            client.close()


def test_sigkill_mid_burst_loses_nothing_acknowledged(served_root, demo_dataset, tmp_path):
    store_path = tmp_path / "store.db"
    server = ServerProcess(served_root, store_path).start()
    clients = [
        BurstClient(server.bind, demo_dataset, 0, [0, 1, 2]),
        BurstClient(server.bind, demo_dataset, 1, [3, 4, 5]),
    ]
    try:
        for c in clients:
            c.start()
        deadline = time.monotonic() + 60
        while sum(len(c.acked) for c in clients) < 300 and time.monotonic() < deadline:
            time.sleep(0.001)
        server.kill()
        for c in clients:
            c.join(30)
    finally:
        server.kill()

    acked = {u: r for c in clients for u, r in c.acked.items()}
    sent = [corr for c in clients for corr in c.sent]
    assert not [r for c in clients for r in c.other], "no conflicts or errors in a clean burst"
    assert 300 <= len(acked) < 2 * PER_CLIENT, "the kill must land in the middle of the burst"
    unacked = [corr for corr in sent if corr.uuid not in acked]
    assert unacked, "some corrections must have been in flight at the kill"

    # 1. Every acknowledged correction is in the store, as the revision it was acknowledged as.
    with Store(store_path, readonly=True) as store:
        for uuid, revision in acked.items():
            found = store.correction_revision(uuid)
            assert found is not None and found[2] == revision, uuid

    # 2. Resending the unacknowledged ones (in the order they were sent) applies each exactly once.
    server = ServerProcess(served_root, store_path).start()
    try:
        with BackendClient(server.bind, timeout=20) as client:
            for corr in unacked:
                reply = client.request(Submit(correction=corr))
                assert isinstance(reply, Ack), reply
            # A second resend of everything is a no-op.
            for corr in sent[:50] + unacked:
                reply = client.request(Submit(correction=corr))
                assert isinstance(reply, Ack) and reply.duplicate
    finally:
        server.stop()

    with Store(store_path, readonly=True) as store:
        rows = store.conn.execute(
            "SELECT correction, episode, revision, base_revision FROM revisions"
        ).fetchall()
        uuids = [r[0] for r in rows]
        assert len(uuids) == len(set(uuids)) == len(sent)
        assert set(uuids) == {c.uuid for c in sent}
        # Each episode's history is an unbroken chain 1, 2, 3, ... each based on the previous.
        for ep in range(6):
            chain = sorted((r[2], r[3]) for r in rows if r[1] == ep)
            assert [rev for rev, _ in chain] == list(range(1, len(chain) + 1))
            assert all(base == rev - 1 for rev, base in chain)
        for uuid, revision in acked.items():
            assert store.correction_revision(uuid)[2] == revision
