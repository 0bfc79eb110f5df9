"""The backend over real loopback sockets: predict, correct, conflicts, events, queue, reload."""

from __future__ import annotations

import random
import threading
import time

import msgspec

from backend.engines.base import Engine, Prediction
from backend.engines.kinematic import KinematicEngine
from backend.review_queue import Candidate, rank
from client import BackendClient, BackendError, EventListener
from core.annotations import Segment
from core.protocol import Ack, Conflict, Correction, Error, Predict, PredictDone
from tests.fixtures.servers import running_server


def _fix(ann, user: str, uuid: str, **patch) -> Correction:
    return Correction(
        uuid=uuid,
        dataset=ann.dataset,
        episode=ann.episode,
        base_revision=ann.revision,
        user=user,
        patch=patch,
    )


def test_hello_describes_datasets_and_model(client, demo_dataset):
    w = client.welcome
    assert [d.id for d in w.datasets] == ["demo"]
    assert w.datasets[0].episodes == len(demo_dataset) and w.datasets[0].cameras == demo_dataset.cameras
    assert w.model.engine == "kinematic" and w.model.tag == "kinematic@2.0"


def test_predict_stores_revisions_and_skips_done_work(client, demo_dataset):
    progress = []
    results, done = client.predict("demo", [0, 1, 2], on_progress=progress.append)
    assert done.ok == 3 and done.failed == 0
    assert [p.done for p in progress] == [1, 2, 3]
    for r in results:
        assert r.status == "ok" and r.revision == 1 and r.model == "kinematic@2.0"
        ann = r.annotation
        assert ann.segments and ann.segments[-1].end == demo_dataset.episode(r.episode).duration
        assert 0 <= ann.uncertainty <= 1
    again, done = client.predict("demo", [0, 1, 2])
    assert again == [] and done.skipped == 3
    forced, _ = client.predict("demo", [1], force=True)
    assert forced[0].revision == 2  # nobody edited it yet: the new prediction becomes the head
    assert [r.author for r in client.history("demo", 1)] == ["kinematic@2.0", "kinematic@2.0"]


def test_corrections_conflicts_and_history(client, server):
    (res,), _ = client.predict("demo", [0])
    ann = res.annotation
    ack = client.submit(_fix(ann, "alice", "a-1", review="in_review"))
    assert isinstance(ack, Ack) and ack.revision == ann.revision + 1 and not ack.duplicate
    dup = client.submit(_fix(ann, "alice", "a-1", review="in_review"))
    assert isinstance(dup, Ack) and dup.duplicate and dup.revision == ack.revision

    with BackendClient(server.config.bind, user="bob") as bob:
        stale = _fix(ann, "bob", "b-1", task="bob's idea")  # based on the prediction, not alice's edit
        conflict = bob.submit(stale)
        assert isinstance(conflict, Conflict)
        assert conflict.current.revision == ack.revision and conflict.current.review == "in_review"
        assert conflict.yours.task == "bob's idea" and conflict.base_revision == ann.revision
    history = client.history("demo", 0)
    assert [(h.revision, h.kind, h.author) for h in history] == [
        (1, "model", "kinematic@2.0"),
        (2, "human", "human:alice"),
    ]
    # A new prediction does not overwrite a person's work: it comes back as a suggestion.
    (again,), _ = client.predict("demo", [0], force=True)
    assert again.revision is None and again.notes.get("suggestion") is True
    assert client.annotation("demo", 0).revision == ack.revision
    suggestion = client.suggestion("demo", 0)
    assert suggestion is not None and suggestion.model == "kinematic@2.0" and suggestion.segments
    assert client.annotation("demo", 0, revision=1).review == "unreviewed"


def test_events_reach_other_clients(client, server):
    listener = EventListener(server.config.events, kinds=("episode_changed", "prediction_ready"))
    try:
        time.sleep(0.3)  # let the subscription arrive (PUB/SUB slow joiner)
        (res,), _ = client.predict("demo", [3])
        ev = listener.next(5)
        assert ev.kind == "prediction_ready" and ev.episode == 3 and ev.model == "kinematic@2.0"
        client.submit(_fix(res.annotation, "alice", "e-1", review="accepted"))
        ev = listener.next(5)
        assert (ev.kind, ev.episode, ev.revision, ev.author) == ("episode_changed", 3, 2, "human:alice")
    finally:
        listener.close()


class SlowEngine(Engine):
    """Takes `seconds` per batch (sleeping, like a GPU-bound engine) and can reload."""

    name, version, kinds = "slow", "1", ("segments",)

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.inner = KinematicEngine()

    def predict(self, jobs):
        time.sleep(self.seconds)
        preds = self.inner.predict(jobs)
        for p in preds:
            p.annotation = msgspec.structs.replace(p.annotation, model=self.tag)
        return preds

    def reload(self, path: str, version: str = ""):
        self.version = version or "2"
        return self.info()


def test_slow_prediction_does_not_delay_another_clients_correction(server_config, demo_dataset):
    with (
        running_server(server_config, engine=SlowEngine(3.0)),
        BackendClient(server_config.bind, user="a") as a,
        BackendClient(server_config.bind, user="b") as b,
    ):
        listener = EventListener(server_config.events, kinds=("heartbeat",))
        started = time.monotonic()
        msg_id = a.send(Predict(dataset="demo", episodes=[0, 1]))
        info = demo_dataset.episode(4)
        from core.annotations import EpisodeAnnotation

        ann = EpisodeAnnotation(
            dataset="demo",
            episode=4,
            duration=info.duration,
            fps=demo_dataset.fps,
            segments=[Segment(name="reach", start=0, end=info.duration)],
        )
        t0 = time.monotonic()
        ack = b.submit(
            Correction(uuid="fast", dataset="demo", episode=4, base_revision=0, user="b", annotation=ann)
        )
        latency = time.monotonic() - t0
        assert isinstance(ack, Ack)
        assert latency < 0.5, f"correction waited {latency:.2f} s behind a prediction"
        beats = [listener.next(2) for _ in range(3)]
        assert all(e is not None and e.kind == "heartbeat" for e in beats)
        assert any(e.busy >= 1 for e in beats), "heartbeats say the backend is busy, not dead"
        while not isinstance(a.recv(msg_id, 30), PredictDone):
            pass
        assert time.monotonic() - started >= 3.0
        listener.close()


def test_reload_announces_and_repredicts(server_config):
    with (
        running_server(server_config, engine=SlowEngine(0.0)),
        BackendClient(server_config.bind, user="t") as c,
    ):
        c.predict("demo", [0, 1, 2])
        accepted = c.annotation("demo", 2)
        c.submit(_fix(accepted, "t", "acc", review="accepted"))
        listener = EventListener(server_config.events, kinds=("model_reloaded", "prediction_ready"))
        time.sleep(0.3)
        info = c.reload("/models/round-1", version="2")
        assert info.tag == "slow@2"
        assert c.model().tag == "slow@2"
        events = [listener.next(5) for _ in range(3)]
        assert events[0].kind == "model_reloaded" and events[0].model == "slow@2"
        assert sorted(e.episode for e in events[1:]) == [0, 1]  # unreviewed ones only
        assert {h.author for h in c.history("demo", 0)} == {"slow@1", "slow@2"}
        listener.close()


def test_kinematic_engine_refuses_reload(client):
    try:
        client.reload("/some/checkpoint")
    except BackendError as exc:
        assert exc.code == "invalid" and "no weights" in str(exc)
    else:
        raise AssertionError("reload should fail")


def test_predict_reports_unknown_kinds(client):
    reply = client.recv(client.send(Predict(dataset="demo", episodes=[0], kinds=["masks"])))
    assert isinstance(reply, Error) and reply.code == "invalid" and "masks" in reply.message
    # The kinematic engine carries boxes over from accepted episodes only: without any, a request
    # for boxes answers with the segments it can make, and the stored head gains no empty boxes.
    (res,), done = client.predict("demo", [0], kinds=["segments", "boxes"])
    assert done.ok == 1 and res.annotation.segments and not res.annotation.boxes


def test_pipelined_predict_messages_are_ordered(client):
    msg_id = client.send(Predict(dataset="demo", episodes=[0, 1, 2, 3, 4, 5]))
    seen = []
    while True:
        r = client.recv(msg_id)
        seen.append(type(r).__name__)
        if isinstance(r, PredictDone):
            break
    assert seen[0] == "Accepted" and seen[-1] == "PredictDone"
    assert seen.count("PredictResult") == 6 and seen.count("Progress") == 6
    assert seen.index("PredictDone") > max(i for i, s in enumerate(seen) if s == "PredictResult")


def test_review_queue_is_ranked_diverse_and_deterministic():
    cands = [
        Candidate("d", i, 0.9 - i * 0.001, "pick up the red cube and place it in the bowl", 8.0)
        for i in range(10)
    ]
    cands += [
        Candidate("d", 20, 0.80, "open the drawer", 12.0),
        Candidate("d", 21, 0.79, "pour water into the cup", 6.0),
        Candidate("d", 22, 0.78, "fold the towel", 15.0),
        Candidate("d", 23, 0.10, "wipe the table", 5.0),
    ]
    top = rank(cands, 5)
    tasks = {c.episode: c.task for c in cands}
    assert top[0].episode == 0  # the most uncertain comes first
    assert len({tasks[i.episode] for i in top}) >= 4, [i.episode for i in top]
    assert 23 not in [i.episode for i in top]  # confident episodes stay down
    shuffled = cands[:]
    random.Random(3).shuffle(shuffled)
    assert rank(shuffled, 5) == top
    assert [i.episode for i in rank(cands, 14)][-1] == 23


def test_queue_over_the_socket_excludes_accepted(client):
    client.predict("demo", list(range(6)))
    first = client.queue("demo", limit=10)
    assert len(first) == 6
    assert first[0].uncertainty == max(i.uncertainty for i in first)
    head = client.annotation("demo", first[0].episode)
    client.submit(_fix(head, "alice", "q1", review="accepted"))
    after = client.queue("demo", limit=10)
    assert first[0].episode not in [i.episode for i in after] and len(after) == 5
    assert client.queue("demo", limit=10) == after


def test_many_clients_at_once(server):
    errors = []

    def worker(k: int) -> None:
        try:
            with BackendClient(server.config.bind, user=f"u{k}") as c:
                for _ in range(20):
                    assert c.ping().time > 0
                    c.annotation("demo", k % 6)
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors


class BrokenEngine(Engine):
    name, version, kinds = "broken", "0", ("segments",)

    def predict(self, jobs):
        return [Prediction(status="error", error="model produced no output")] * len(jobs)


def test_engine_failures_are_results_not_crashes(server_config):
    with running_server(server_config, engine=BrokenEngine()), BackendClient(server_config.bind) as c:
        results, done = c.predict("demo", [0, 1])
        assert done.failed == 2 and {r.status for r in results} == {"error"}
        assert results[0].error == "model produced no output"
        assert c.ping()
