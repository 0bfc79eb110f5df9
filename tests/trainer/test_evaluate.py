"""Held-out evaluation: the scoring pipeline from prompts to report, and the plot across rounds."""

from __future__ import annotations

import json

import pytest

from core.vlm.samples import TASKS
from tests.fixtures.truth import SMALL
from trainer.checkpoint import CheckpointMeta, DataInfo, TrainingInfo, read_meta, write_meta
from trainer.data import TrainingDataError
from trainer.evaluate import evaluate, plot_rounds


def _checkpoint(path, round_number: int, fraction: float = 0.2):
    """A robo_trainer.json as finetune writes it (the weights are not needed: answers are given)."""
    meta = CheckpointMeta(
        base_model="base",
        round=round_number,
        version=f"r{round_number}-test",
        data=DataInfo(fingerprint="0" * 64, heldout_fraction=fraction, sample_options=SMALL),
        training=TrainingInfo(method="full"),
    )
    write_meta(path, meta)
    return path


def oracle(batch):
    """Answers every prompt with the accepted answer."""
    return [s.answer for s, _images in batch]


def garbage(batch):
    return ["I see a robot. " * 3 for _ in batch]


def test_the_accepted_answers_score_perfectly_and_garbage_scores_nothing(
    tmp_path, accepted_store, datasets_dir
):
    model = _checkpoint(tmp_path / "round-001", 1)
    report = evaluate(model, store=accepted_store, datasets=[datasets_dir], tasks=TASKS, generator=oracle)
    m = report["metrics"]
    assert [e for _, e, _ in report["episodes"]] == [3]  # the hash rule at 0.2 holds out episode 3
    assert m["unparseable"] == 0.0 and m["f1@0.25"] == 1.0
    assert m["label_acc"] > 0.98  # answers carry times to 0.01 s: a frame at a boundary may flip
    assert m["box_iou/current"] == m["box_iou/final"] == 1.0
    errors = [m["traj_px"], m["traj_start_px"], m["contact_px"]]
    assert errors == pytest.approx([0.0] * 3, abs=1e-9)  # zero up to float noise
    assert set(report["samples"]) == {"segmentation", "box_current", "box_final", "trajectory",
                                      "trajectory_from_start", "contact_point"}  # fmt: skip
    # Written beside the checkpoint and into its robo_trainer.json.
    assert json.loads((model / "eval_heldout.json").read_text())["metrics"]["score"] == m["score"]
    assert read_meta(model).metrics["score"] == m["score"]

    bad = evaluate(model, store=accepted_store, datasets=[datasets_dir], generator=garbage, record=False,
                   out=tmp_path / "bad.json", max_per_task=2)  # fmt: skip
    b = bad["metrics"]
    assert b["unparseable"] == 1.0 and b["f1@0.5"] == 0.0 and b["box_iou"] == 0.0 and b["score"] == 0.0
    assert "traj_px" not in b and b["traj_coverage"] == 0.0
    assert bad["unparseable_examples"][0]["raw"].startswith("I see a robot")
    assert all(n <= 2 for n in bad["samples"].values())
    assert read_meta(model).metrics["score"] == m["score"]  # record=False left it alone


def test_plot_across_rounds_and_clear_errors(tmp_path, accepted_store, datasets_dir):
    runs = tmp_path / "runs"
    for r, answer in ((1, garbage), (2, oracle)):
        evaluate(_checkpoint(runs / f"round-{r:03d}", r), store=accepted_store, datasets=[datasets_dir],
                 tasks=("box_current", "segmentation"), generator=answer, max_per_task=3)  # fmt: skip
    png = plot_rounds(runs)
    assert png == runs / "metrics.png" and png.read_bytes()[:4] == b"\x89PNG"
    with pytest.raises(TrainingDataError, match="no evaluated checkpoints"):
        plot_rounds(tmp_path / "empty")
    with pytest.raises(TrainingDataError, match="no accepted episodes in the heldout split"):
        evaluate(_checkpoint(tmp_path / "none", 1, fraction=0.0), store=accepted_store,
                 datasets=[datasets_dir], generator=oracle)  # fmt: skip
