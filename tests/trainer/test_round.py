"""A whole active-learning round on CPU, against a real backend serving the tiny Qwen.

People's corrections go in through the backend; the round fine-tunes on what was
accepted, scores the new model and the served one on the same held-out episodes,
tells the backend to load the better one, and the backend then serves predictions
made by the new model version.
"""

from __future__ import annotations

import shutil
import time
import uuid

import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")

from backend.config import ServerConfig
from client import BackendClient, EventListener
from core.annotations import replace
from core.protocol import Ack, Correction
from core.store import Store
from tests.fixtures.servers import free_ports, running_server
from tests.fixtures.truth import DATASET, SMALL
from trainer.checkpoint import read_meta
from trainer.data import split
from trainer.finetune import FinetuneConfig
from trainer.round import RoundConfig, run_round

pytestmark = pytest.mark.slow

UNREVIEWED = 5


def _submit(client: BackendClient, ann) -> None:
    reply = client.submit(
        Correction(uuid=uuid.uuid4().hex, dataset=DATASET, episode=ann.episode, base_revision=0, user="alice",
                   annotation=ann)
    )  # fmt: skip
    assert isinstance(reply, Ack), reply


def test_round_finetunes_compares_and_the_backend_serves_the_new_model(tmp_path, demo_root, tiny_qwen, truth):
    root = tmp_path / "datasets"
    root.mkdir()
    shutil.copytree(demo_root, root / DATASET)
    bind, events = (f"tcp://127.0.0.1:{p}" for p in free_ports(2))
    serve_options = {
        "model": str(tiny_qwen),
        "describe": False,
        "context": "none",
        "max_new_tokens": 40,
        **SMALL,
    }
    config = ServerConfig(
        datasets=[root], store=tmp_path / "store.db", bind=bind, events=events, heartbeat_s=0.2,
        engine="transformers", engine_options=serve_options,
    )  # fmt: skip
    with running_server(config), BackendClient(bind, user="alice", timeout=60) as client:
        base = client.hello().model
        for ep, ann in truth.items():
            # Five episodes reviewed and accepted; the last one only partly edited, still unreviewed.
            _submit(client, ann if ep != UNREVIEWED else replace(ann, review="unreviewed"))
        held = split([a for e, a in truth.items() if e != UNREVIEWED], 0.2).heldout
        assert held, "the demo must hold out at least one accepted episode at 0.2"

        listener = EventListener(events, kinds=("model_reloaded",))
        time.sleep(0.3)  # let the subscription reach the publisher
        cfg = RoundConfig(
            backend=bind,
            runs=tmp_path / "runs",
            finetune=FinetuneConfig(
                store=config.store, datasets=[root], base_model=str(tiny_qwen), out=tmp_path / "unused",
                tasks=("box_current",), max_steps=200, learning_rate=3e-3, batch_size=4,
                gradient_checkpointing=False, heldout_fraction=0.2, sample_options=SMALL,
            ),
            max_new_tokens=40,
            max_per_task=6,
            timeout=300,
        )  # fmt: skip
        record = run_round(cfg)

        out = tmp_path / "runs" / "round-001"
        meta = read_meta(out)
        assert record["round"] == 1 and record["version"] == meta.version
        assert [tuple(x) for x in record["heldout"]] == [(DATASET, a.episode, 1) for a in held]  # revision 1
        # The garbage-speaking base model reads as nothing; the tuned one answers in the format.
        assert record["previous_metrics"]["unparseable"] == 1.0
        assert record["metrics"]["unparseable"] < 1.0
        assert record["better"] and record["promoted"] and meta.promoted
        assert meta.metrics["score"] == record["metrics"]["score"]
        assert (tmp_path / "runs" / "baseline.json").is_file()
        assert (tmp_path / "runs" / "metrics.png").stat().st_size > 10_000

        # The backend now serves the new model, under the round's version ...
        served = client.model()
        assert served.version == meta.version and served.tag == record["served_after"] != base.tag
        # ... and says which round it is and how that round scored (the app's status bar shows it).
        assert served.round == 1 and served.metrics["score"] == pytest.approx(record["metrics"]["score"])
        event = listener.next(timeout=10)
        listener.close()
        assert event is not None and event.model == served.tag
        # ... re-predicted the unreviewed episode with it (kept as a suggestion: a person edited it) ...
        deadline = time.monotonic() + 120
        with Store(config.store, readonly=True) as store:
            while store.prediction(DATASET, UNREVIEWED, served.tag) is None and time.monotonic() < deadline:
                time.sleep(0.5)
            assert store.prediction(DATASET, UNREVIEWED, served.tag) is not None
        # ... and answers new requests with it.
        results, done = client.predict(DATASET, [UNREVIEWED], kinds=["boxes"], force=True, timeout=120)
        assert done.ok == 1, results[0].error
        assert results[0].model == served.tag and results[0].annotation.boxes
        suggestion = client.suggestion(DATASET, UNREVIEWED)
        assert suggestion is not None and suggestion.model == served.tag

        # A second round trains round 2 and compares it with the served round-1 model.
        cfg.promote = "never"
        cfg.finetune.max_steps = 10
        second = run_round(cfg)
        assert second["round"] == 2 and second["previous"] == str(out) and not second["promoted"]
        assert client.model().version == meta.version
