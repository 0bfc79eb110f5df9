"""The transformers engine on the tiny random Qwen2.5-VL, end to end through a real backend.

The checkpoint is loaded from its directory by AutoProcessor and
AutoModelForImageTextToText, exactly as a real one; its answers are garbage, and
they must come back as clean `unparseable` results (raw text kept, nothing
replaced, the episode still queued) or as valid annotations.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")

from backend.engines import make_engine
from backend.engines.base import EpisodeJob
from backend.engines.kinematic import KinematicEngine
from backend.engines.vlm import GenRequest
from client import BackendClient
from core.annotations import EpisodeAnnotation, annotation_from_json, annotation_to_json
from core.dataset import Dataset
from core.store import Store
from core.vlm.samples import build_inference_requests, render_images
from tests.fixtures.servers import running_server

# Few frames, small images, a few dozen tokens: seconds on a CPU.
TINY = {
    "max_new_tokens": 16,
    "rate": 0.5,
    "sheet_frames": 4,
    "sheets_per_window": 1,
    "frame_side": 112,
    "sheet_side": 224,
    "box_frames": 1,
    "batch_size": 8,
}


@pytest.fixture(scope="module")
def engine(tiny_qwen: Path):
    eng = make_engine("transformers", model=str(tiny_qwen), **TINY)
    yield eng
    eng.close()


def check_valid(ann: EpisodeAnnotation) -> None:
    """Valid by the data model's own checks (a JSON round trip validates every field)."""
    annotation_from_json(annotation_to_json(ann))


def test_loads_like_a_real_checkpoint(engine, tiny_qwen: Path) -> None:
    info = engine.info()
    assert info.engine == "transformers" and info.device == "cpu"
    assert info.name == tiny_qwen.name and info.version
    assert engine.family == "qwen2_5_vl"  # from config.json's model_type
    assert engine.dtype == "float32" and engine.attn == "sdpa"
    assert type(engine.model).__name__ == "Qwen2_5_VLForConditionalGeneration"
    assert engine.processor.tokenizer.padding_side == "left"


def test_batched_generation_gives_logprobs(engine, demo_root: Path) -> None:
    ds = Dataset(demo_root)
    samples = [
        *build_inference_requests(ds, 0, "qwen2_5_vl", ["segmentation"], config=engine.sample_config),
        *build_inference_requests(ds, 1, "qwen2_5_vl", ["box_current"], config=engine.sample_config),
    ]
    reqs = [
        GenRequest(s, render_images(s, ds), budget) for s, budget in zip(samples, (12, 5, 8), strict=False)
    ]
    gens = engine.generate(reqs)
    assert len(gens) == len(reqs)
    for r, g in zip(reqs, gens, strict=True):
        assert not g.error
        assert 1 <= len(g.logprobs) <= r.max_new_tokens
        assert all(lp <= 1e-6 for lp in g.logprobs)
        assert g.finish in ("stop", "length")
        assert isinstance(g.text, str)


def test_garbage_comes_back_clean_through_the_backend(engine, server_config) -> None:
    # Episode 1 was pre-annotated by the kinematic engine (as `robo-backend annotate` would).
    ds = Dataset(server_config.datasets[0] / "demo")
    kin = KinematicEngine().predict([EpisodeJob("demo", ds, 1)])[0]
    with Store(server_config.store) as store, store.transaction():
        store.add_prediction("demo", 1, "kinematic@2.0", "ok", kin.annotation, ["segments"])

    with (
        running_server(server_config, engine=engine) as srv,
        BackendClient(server_config.bind, timeout=300) as c,
    ):
        c.hello()
        assert c.model().engine == "transformers"
        results, done = c.predict("demo", [0, 1], kinds=["segments", "boxes"])
        assert sorted(r.episode for r in results) == [0, 1]
        for r in results:
            assert r.status in ("ok", "unparseable"), r.error
            assert r.model == srv.model.tag
            if r.status == "ok":
                check_valid(r.annotation)
                assert r.annotation.segments and r.annotation.boxes
                assert 0.0 <= r.annotation.uncertainty <= 1.0
            else:
                assert r.raw.strip() and r.error
                if r.annotation is not None:
                    check_valid(r.annotation)
        assert done.ok + done.failed == 2
        by_ep = {r.episode: r for r in results}
        if by_ep[1].status == "unparseable":
            assert c.annotation("demo", 1).model == "kinematic@2.0"  # nothing was replaced
        assert 1 in {q.episode for q in c.queue("demo")}
        # Done for this model version: asking again runs nothing.
        again, summary = c.predict("demo", [0, 1], kinds=["segments", "boxes"])
        assert again == [] and summary.skipped == 2


def test_reload_switches_checkpoints_and_keeps_the_old_one_on_failure(
    engine, tiny_qwen: Path, tmp_path: Path, demo_root: Path
) -> None:
    old = engine.info()
    copy = tmp_path / "round-1"
    shutil.copytree(tiny_qwen, copy)
    info = engine.reload(str(copy), "r1")
    assert (info.name, info.version) == ("round-1", "r1")
    with pytest.raises(OSError):
        engine.reload(str(tmp_path / "missing"), "r2")
    assert engine.info().tag == "round-1@r1"
    (p,) = engine.predict([EpisodeJob("demo", Dataset(demo_root), 2, ("segments",))])
    assert p.status in ("ok", "unparseable")
    # A trainer checkpoint's card gives the version, the round and its held-out metrics.
    card = {"round": 2, "version": "r2-deadbeef", "metrics": {"score": 0.5, "f1@0.5": 0.75}}
    (copy / "robo_trainer.json").write_text(json.dumps(card))
    info = engine.reload(str(copy))
    assert (info.version, info.round, info.metrics) == ("r2-deadbeef", 2, card["metrics"])
    (copy / "robo_trainer.json").write_text("{not json")
    info = engine.reload(str(copy), "r2b")
    assert (info.version, info.round, info.metrics) == ("r2b", None, {})
    engine.reload(str(tiny_qwen), old.version)
    assert engine.info().tag == old.tag and engine.info().round is None


def test_cli_evaluate_with_the_tiny_model(tiny_qwen: Path, demo_root: Path, capsys) -> None:
    from backend.cli import main

    opts = json.dumps({k: v for k, v in TINY.items()})
    rc = main(
        ["evaluate", str(demo_root), "--engine", "transformers", "--model", str(tiny_qwen), "--engine-options", opts,
         "--episodes", "3"]
    )  # fmt: skip
    out = capsys.readouterr().out
    assert rc == 0
    assert "engine tiny-qwen-" in out
    assert "unparseable" in out or "mean" in out


def test_missing_model_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="--model"):
        make_engine("transformers")
