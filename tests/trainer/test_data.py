"""The data side of training: which episodes, which revisions, which samples."""

from __future__ import annotations

import msgspec
import pytest

from core.annotations import replace
from core.vlm.samples import build_samples
from tests.fixtures.truth import DATASET, SMALL, submit_all
from trainer.data import (
    TrainingDataError,
    find_datasets,
    fingerprint,
    heldout_key,
    is_heldout,
    prepare,
    sample_config,
    split,
    triples,
)


def test_split_is_stable_as_more_episodes_are_accepted(truth):
    anns = list(truth.values())
    first = split(anns[:3], 0.5)
    later = split(anns, 0.5)
    # An episode never changes side when others join: no round trains on another's test set.
    for a in first.heldout:
        assert a.key in {b.key for b in later.heldout}
    for a in first.train:
        assert a.key in {b.key for b in later.train}
    assert sorted(a.episode for a in later.train + later.heldout) == sorted(truth)
    assert all(is_heldout(a.dataset, a.episode, 0.5) for a in later.heldout)
    # The rule depends on the dataset name too, and not on anything else.
    assert heldout_key(DATASET, 0) == heldout_key(DATASET, 0) != heldout_key("other", 0)
    with pytest.raises(ValueError, match="heldout_fraction"):
        split(anns, 1.0)


def test_fingerprint_names_episodes_and_revisions(truth):
    anns = list(truth.values())
    fp = fingerprint(anns)
    assert fp == fingerprint(list(reversed(anns)))  # order does not matter
    bumped = [msgspec.structs.replace(anns[0], revision=anns[0].revision + 1), *anns[1:]]
    assert fingerprint(bumped) != fp  # a new correction of one episode is new data
    assert fingerprint(anns[1:]) != fp
    assert triples(anns)[0] == (DATASET, 0, 0)


def test_prepare_builds_answers_from_accepted_training_episodes_only(tmp_path, truth, datasets_dir):
    store = tmp_path / "store.db"
    unreviewed = truth[5]
    submit_all(store, [*(truth[e] for e in range(5)), replace(unreviewed, review="unreviewed")])
    data = prepare(
        store,
        [datasets_dir],
        tasks=("segmentation", "box_current"),
        heldout_fraction=0.34,
        sample_options=SMALL,
    )
    train_eps = {a.episode for a in data.split.train}
    held_eps = {a.episode for a in data.split.heldout}
    assert 5 not in train_eps | held_eps  # never accepted: neither trained on nor scored
    assert train_eps and held_eps and not train_eps & held_eps
    assert {s.episode for s in data.samples} == train_eps
    assert all(s.answer for s in data.samples)
    assert set(data.counts()) == {"segmentation", "box_current"}
    # Exactly the prompts the sample builder makes for inference-time options.
    ds = data.datasets[DATASET]
    ann = data.split.train[0]
    expected = build_samples(
        ann, ds, "qwen2_5_vl", ("segmentation", "box_current"), config=sample_config(SMALL)
    )
    assert [s.prompt for s in data.samples if s.episode == ann.episode] == [s.prompt for s in expected]
    assert data.fingerprint == fingerprint(data.split.train)


def test_bad_inputs_say_what_is_wrong(tmp_path, truth, datasets_dir):
    empty = tmp_path / "empty.db"
    submit_all(empty, [replace(truth[0], review="unreviewed")])
    with pytest.raises(TrainingDataError, match="no accepted episodes"):
        prepare(empty, [datasets_dir])
    with pytest.raises(TrainingDataError, match="not a directory"):
        find_datasets([tmp_path / "nope"])
    (tmp_path / "plain").mkdir()
    with pytest.raises(TrainingDataError, match="neither a LeRobot dataset"):
        find_datasets([tmp_path / "plain"])
    with pytest.raises(TrainingDataError, match="unknown"):
        prepare(empty, [datasets_dir], tasks=("segmentation", "telepathy"))
    # Accepted episodes of datasets not given are left out, by name.
    other = tmp_path / "other.db"
    submit_all(other, [msgspec.structs.replace(truth[0], dataset="elsewhere")])
    with pytest.raises(TrainingDataError, match="no accepted episodes of demo"):
        prepare(other, [datasets_dir])
