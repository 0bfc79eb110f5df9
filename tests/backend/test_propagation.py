"""Proposals that learn from the reviewer, over a real backend on loopback.

Accepting an episode re-proposes the other episodes of its task from it (aligned
with DTW), publishes each new proposal, never overwrites a person's edit, does
not run twice for a resent acceptance, and survives a SIGKILL mid-way.
"""

from __future__ import annotations

import dataclasses
import json
import random
import time
import uuid
from pathlib import Path

from backend.engines.kinematic.naming import adapt_name, word_map
from backend.evaluate import true_segments
from client import BackendClient, EventListener
from core.annotations import EpisodeAnnotation
from core.dataset import Dataset
from core.metrics import boundary_f1
from core.protocol import Ack, Correction
from core.store import Store
from tests.fixtures.servers import ServerProcess, running_server

EX = "+ex-"


def _truth(root: Path) -> dict[int, dict]:
    gt = json.loads((root / "ground_truth.json").read_text())
    return {int(r["episode_index"]): r for r in gt["episodes"]}


def _accepted(ds: Dataset, record: dict, base_revision: int, user: str = "alice", uid: str | None = None):
    info = ds.episode(record["episode_index"])
    ann = EpisodeAnnotation(
        dataset="demo",
        episode=info.index,
        duration=info.duration,
        fps=ds.fps,
        task=info.task,
        segments=true_segments(record, info.duration, ds.fps),
        review="accepted",
    )
    return Correction(
        uuid=uid or uuid.uuid4().hex,
        dataset="demo",
        episode=info.index,
        base_revision=base_revision,
        user=user,
        annotation=ann,
    )


def _wait(cond, timeout: float = 60.0, step: float = 0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = cond()
        if value:
            return value
        time.sleep(step)
    raise AssertionError(f"not true within {timeout} s: {cond}")


def _heads(client: BackendClient, episodes) -> dict[int, EpisodeAnnotation | None]:
    return {e: client.annotation("demo", e) for e in episodes}


def test_accepting_an_episode_reproposes_its_task_and_publishes(server_config, demo_root):
    ds = Dataset(demo_root)
    truth = _truth(demo_root)
    others = [e for e in ds.episodes if e != 0]
    cfg = dataclasses.replace(server_config, propagation_delay=0.2)
    with running_server(cfg), BackendClient(cfg.bind, user="alice", timeout=30) as client:
        client.hello()
        events = EventListener(cfg.events, ("prediction_ready",))
        time.sleep(0.3)  # the subscription reaches the publisher
        client.predict("demo", list(ds.episodes))
        ack = client.submit(_accepted(ds, truth[0], client.annotation("demo", 0).revision))
        assert isinstance(ack, Ack)
        seen: dict[int, str] = {}
        deadline = time.monotonic() + 60
        while len(seen) < len(others) and time.monotonic() < deadline:
            ev = events.next(1.0)
            if ev is not None and EX in ev.model:
                seen[ev.episode] = ev.model
        events.close()
        assert sorted(seen) == others, seen
        assert len(set(seen.values())) == 1  # one exemplar set, one model version
        heads = _heads(client, ds.episodes)
    assert heads[0].review == "accepted" and heads[0].model.startswith("kinematic@2.0")
    f1s = []
    for e in others:
        ann = heads[e]
        assert EX in ann.model and ann.origin == "aligned to episode 0", (ann.model, ann.origin)
        true = true_segments(truth[e], ann.duration, ds.fps)
        # the person's names, in this episode's own words (its instruction names its objects)
        mapping = word_map(heads[0].task, ann.task)
        assert {s.name for s in ann.segments} <= {adapt_name(s.name, mapping) for s in heads[0].segments}
        f1s.append(boundary_f1(ann.segments, true, 0.5)[2])
    assert sum(f1s) / len(f1s) >= 0.8, f1s


def test_an_edited_episode_keeps_its_edit_and_gets_a_suggestion(server_config, demo_root):
    ds = Dataset(demo_root)
    truth = _truth(demo_root)
    cfg = dataclasses.replace(server_config, propagation_delay=0.2)
    with running_server(cfg), BackendClient(cfg.bind, user="bob", timeout=30) as client:
        client.hello()
        client.predict("demo", list(ds.episodes))
        mine = client.annotation("demo", 2)
        segments = [_seg(s) for s in mine.segments]
        segments[0] = {**segments[0], "name": "my own name", "source": "human:bob"}
        edit = Correction(
            uuid=uuid.uuid4().hex,
            dataset="demo",
            episode=2,
            base_revision=mine.revision,
            user="bob",
            patch={"segments": segments},
        )
        assert isinstance(client.submit(edit), Ack)
        client.submit(_accepted(ds, truth[0], client.annotation("demo", 0).revision))
        _wait(lambda: EX in (client.annotation("demo", 3).model or ""))
        suggestion = _wait(lambda: client.suggestion("demo", 2))
        head = client.annotation("demo", 2)
    assert head.segments[0].name == "my own name" and EX not in head.model
    assert EX in suggestion.model and suggestion.origin == "aligned to episode 0"


def _seg(s) -> dict:
    return {"name": s.name, "start": s.start, "end": s.end, "source": s.source, "confidence": s.confidence}


def test_a_resent_acceptance_does_not_propagate_twice(server_config, demo_root):
    ds = Dataset(demo_root)
    truth = _truth(demo_root)
    cfg = dataclasses.replace(server_config, propagation_delay=0.2)
    with running_server(cfg), BackendClient(cfg.bind, user="alice", timeout=30) as client:
        client.hello()
        client.predict("demo", list(ds.episodes))
        c = _accepted(ds, truth[0], client.annotation("demo", 0).revision)
        assert not client.submit(c).duplicate
        _wait(lambda: all(EX in client.annotation("demo", e).model for e in ds.episodes if e != 0))
        time.sleep(0.5)
        before = {e: len(client.history("demo", e)) for e in ds.episodes}
        again = client.submit(c)
        assert isinstance(again, Ack) and again.duplicate
        time.sleep(1.5)  # well past the debounce delay
        after = {e: len(client.history("demo", e)) for e in ds.episodes}
    assert after == before


def test_sigkill_during_propagation_leaves_nothing_half_written(served_root, demo_root, tmp_path):
    """Kill the backend at random moments of a re-proposal; every stored revision stays whole,
    and after a restart the task converges on proposals from the current exemplars."""
    ds = Dataset(demo_root)
    truth = _truth(demo_root)
    store = tmp_path / "store.db"
    rng = random.Random(7)
    others = [e for e in ds.episodes if e != 0]
    for attempt in range(3):
        proc = ServerProcess(served_root, store, ["--propagation-delay", "0.05"]).start()
        try:
            with BackendClient(proc.bind, user="alice", timeout=30) as client:
                client.hello()
                if attempt == 0:
                    client.predict("demo", list(ds.episodes))
                head = client.annotation("demo", 0)
                # A new revision of the accepted episode each time: a new exemplar set to propagate.
                assert isinstance(client.submit(_accepted(ds, truth[0], head.revision)), Ack)
                time.sleep(rng.uniform(0.0, 0.4))
        finally:
            proc.kill()
        with Store(store, readonly=True) as s:
            for h in s.heads("demo"):
                ann = s.head("demo", h.episode)
                assert ann is not None and ann.revision == h.revision and ann.model == h.model
                assert ann.segments and ann.segments[-1].end == ann.duration
    proc = ServerProcess(served_root, store).start()
    try:
        with BackendClient(proc.bind, user="alice", timeout=30) as client:
            client.hello()
            exemplar = client.annotation("demo", 0)
            tag = _wait(
                lambda: {client.annotation("demo", e).model for e in others} == {_tag(exemplar)} and 1
            )
            assert tag
    finally:
        proc.stop()


def _tag(exemplar: EpisodeAnnotation) -> str:
    from backend.engines.kinematic.propagate import fingerprint

    return f"kinematic@2.0{EX}{fingerprint([exemplar])}"
