"""The kinematic engine on every robot: zero-shot cuts and names, unseen layouts, no gripper,
learning from accepted episodes, and bad input.

Accuracy runs on episodes the demo generator simulates (state, action and the true phases,
without rendering a frame) and on the written demo datasets through `evaluate`. Run with
`-s` to see the reports.
"""

from __future__ import annotations

import itertools
import json
import math
from pathlib import Path

import msgspec
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from backend.engines import make_engine
from backend.engines.base import EpisodeJob, Prediction
from backend.engines.kinematic import KinematicEngine, KinematicOptionError, gripper_shape
from backend.engines.kinematic.naming import adapt_name, task_words, word_map
from backend.evaluate import equal_split, evaluate_engine, format_report
from backend.exemplars import task_keys
from core.annotations import (
    EpisodeAnnotation,
    Segment,
    annotation_from_json,
    annotation_to_json,
    repair_cover,
)
from core.dataset import EpisodeInfo, EpisodeSignals
from core.demo.writer import simulate_episodes
from core.errors import DatasetError
from core.metrics import boundary_f1, frame_label_accuracy

TAG = "kinematic@2.0"
ROBOTS = ("single-ee", "single-joint", "bimanual")
FEATURES = ("observation.state", "action")


# ---------------------------------------------------------------- helpers


class StubDataset:
    """Just what the engine reads from a dataset (fps, episodes, signals), without files."""

    def __init__(self, fps: float, episodes: dict[int, tuple[dict[str, np.ndarray], str]], names: list[str]):
        self.fps = fps
        self._episodes = episodes
        self.names = names

    def __iter__(self):
        return iter(self.episodes.values())

    @property
    def episodes(self) -> dict[int, EpisodeInfo]:
        return {i: self.episode(i) for i in self._episodes}

    def episode(self, index: int) -> EpisodeInfo:
        if index not in self._episodes:
            raise DatasetError(f"stub: episode {index} does not exist")
        chans, task = self._episodes[index]
        return EpisodeInfo(index, len(next(iter(chans.values()))), (task,), self.fps)

    def signals(self, index: int) -> EpisodeSignals:
        n = self.episode(index).length
        chans, _ = self._episodes[index]
        # What a real dataset's meta/stats.json gives: each dimension's range across the dataset.
        ranges = {}
        for f in chans:
            allx = np.concatenate(
                [c[f] for c, _ in self._episodes.values() if f in c and c[f].shape[1:] == chans[f].shape[1:]]
            )
            ranges[f] = np.nanpercentile(allx, 99, axis=0) - np.nanpercentile(allx, 1, axis=0)
        return EpisodeSignals(
            index,
            np.arange(n) / self.fps,
            np.arange(n),
            {f: a.copy() for f, a in chans.items()},
            {f: list(self.names) for f in chans},
            ranges,
        )


def simulated(robot: str, episodes: int, seed: int = 1) -> tuple[StubDataset, dict[int, list[Segment]]]:
    """Episodes of one demo robot as the engine sees them, and their true segments."""
    eps = [cycles[0] for cycles in simulate_episodes(robot, episodes=episodes, seed=seed)]
    data = {
        i: ({"observation.state": e.state.astype(np.float32), "action": e.action.astype(np.float32)}, e.task)
        for i, e in enumerate(eps)
    }
    ds = StubDataset(float(eps[0].fps), data, list(eps[0].names))
    truth = {}
    for i, e in enumerate(eps):
        dur = e.length / e.fps
        segs = [Segment(name=s["name"], start=s["start"], end=min(s["end"], dur)) for s in e.segments]
        truth[i] = repair_cover([s for s in segs if s.end > s.start], dur, e.fps)
    return ds, truth


def accepted(ds, episode: int, truth: list[Segment], dataset: str = "s") -> EpisodeAnnotation:
    info = ds.episode(episode)
    return EpisodeAnnotation(
        dataset=dataset,
        episode=episode,
        duration=info.duration,
        fps=ds.fps,
        task=info.task,
        segments=truth,
        review="accepted",
        revision=1,
    )


def scores(
    preds: list[Prediction], truth: dict[int, list[Segment]], ds, episodes: list[int]
) -> dict[str, float]:
    rows = []
    for e, p in zip(episodes, preds, strict=True):
        assert p.status == "ok", p.error
        got, true = p.annotation.segments, truth[e]
        n = ds.episode(e).length
        rows.append(
            [
                boundary_f1(got, true, 0.25)[2],
                boundary_f1(got, true, 0.5)[2],
                frame_label_accuracy(got, true, n, ds.fps),
            ]
        )
    m = np.mean(rows, axis=0)
    return {"f1@0.25": float(m[0]), "f1@0.5": float(m[1]), "label_acc": float(m[2])}


def equal_scores(truth: dict[int, list[Segment]], ds, preds: dict[int, int]) -> dict[str, float]:
    """The equal split into as many parts as the engine proposed."""
    rows = []
    for e, k in preds.items():
        info = ds.episode(e)
        peer = equal_split(info.duration, ["x"] * k)
        rows.append([boundary_f1(peer, truth[e], tol)[2] for tol in (0.25, 0.5)])
    m = np.mean(rows, axis=0)
    return {"f1@0.25": float(m[0]), "f1@0.5": float(m[1])}


def check_prediction(pred: Prediction, fps: float, n_frames: int) -> EpisodeAnnotation:
    """Everything every ok prediction must satisfy; returns its annotation."""
    assert pred.status == "ok", pred.error
    ann = pred.annotation
    assert ann is not None and ann.model.startswith(TAG)
    assert ann.uncertainty is not None and 0.0 <= ann.uncertainty <= 1.0
    assert ann.duration == pytest.approx(n_frames / fps)
    segs = ann.segments
    assert segs and segs[0].start == 0.0 and segs[-1].end == pytest.approx(ann.duration)
    for a, b in itertools.pairwise(segs):
        assert a.end == b.start  # gap-free
        assert b.start * fps == pytest.approx(round(b.start * fps), abs=1e-6)  # on the frame grid
        assert a.name != b.name  # neighbours with one name would be one segment
    for s in segs:
        assert s.source == ann.model and s.name.strip()
        assert s.confidence is not None and 0.0 <= s.confidence <= 1.0
    json.dumps(pred.notes)  # notes travel as plain JSON
    assert annotation_from_json(annotation_to_json(ann)) == ann
    return ann


@pytest.fixture(scope="module", params=ROBOTS)
def sim(request) -> tuple[str, StubDataset, dict[int, list[Segment]]]:
    ds, truth = simulated(request.param, 12)
    return request.param, ds, truth


# ---------------------------------------------------------------- zero-shot, every robot


def test_zero_shot_beats_the_equal_split_on_every_robot(sim):
    robot, ds, truth = sim
    eps = sorted(ds.episodes)
    preds = KinematicEngine().predict([EpisodeJob("s", ds, e) for e in eps])
    for e, p in zip(eps, preds, strict=True):
        check_prediction(p, ds.fps, ds.episode(e).length)
    got = scores(preds, truth, ds, eps)
    peer = equal_scores(truth, ds, {e: len(p.annotation.segments) for e, p in zip(eps, preds, strict=True)})
    print(f"\n{robot}: zero-shot {got}, equal split {peer}")
    assert got["f1@0.5"] >= 0.85, got
    assert got["f1@0.25"] > peer["f1@0.25"] + 0.2 and got["f1@0.5"] > peer["f1@0.5"] + 0.15, (got, peer)


def test_written_demo_datasets_evaluate_above_the_peer(demo_variant_root):
    _, root = demo_variant_root
    result = evaluate_engine(root, KinematicEngine())
    print("\n" + format_report(result))
    assert not result["errors"]
    assert result["mean"]["f1@0.5"] >= 0.75, result["mean"]
    assert result["mean"]["f1@0.5"] > result["peer"]["mean"]["f1@0.5"], (result["mean"], result["peer"])
    assert set(result["peer"]["mean"]) == {"f1@0.25", "f1@0.5", "f1@1.0", "label_acc"}
    lines = format_report(result).splitlines()
    assert lines[-2].split()[0] == "mean" and lines[-1].split()[0] == "peer"


def test_bimanual_arms_and_grippers_are_found_by_name():
    ds, _ = simulated("bimanual", 2)
    pred = KinematicEngine().predict_one(EpisodeJob("s", ds, 0))
    notes = pred.notes
    assert notes["arms_found_by"] == "name" and set(notes["arms"]) == {"left", "right"}
    assert all(n.startswith("left_") for n in notes["arms"]["left"])
    assert notes["gripper_found_by"] == "name"
    assert "left: " in notes["gripper_channel"] and "right: " in notes["gripper_channel"]
    # both arms grasp in a handover or an assembly, and each grasp is its own cut
    assert sum(1 for s in pred.annotation.segments if s.name.startswith(("grasp_", "hand_over_"))) >= 2


def _renamed(ds: StubDataset, names: list[str], perm: list[int] | None = None) -> StubDataset:
    data = {}
    for i, (chans, task) in ds._episodes.items():
        data[i] = ({f: (a[:, perm] if perm else a) for f, a in chans.items()}, task)
    return StubDataset(ds.fps, data, names)


def test_unnamed_bimanual_finds_its_two_arms_by_layout():
    ds, truth = simulated("bimanual", 6, seed=2)
    eps = sorted(ds.episodes)
    named = scores(KinematicEngine().predict([EpisodeJob("s", ds, e) for e in eps]), truth, ds, eps)
    bare = _renamed(ds, [f"motor_{i}" for i in range(14)])
    preds = KinematicEngine().predict([EpisodeJob("s", bare, e) for e in eps])
    for p in preds:
        assert p.notes["arms_found_by"] == "layout", p.notes
        assert p.notes["gripper_found_by"] == "shape"
    got = scores(preds, truth, bare, eps)
    print(f"\nnamed {named}, motor_0..13 {got}")
    assert got["f1@0.5"] >= named["f1@0.5"] - 0.1, (got, named)


def test_unseen_single_arm_layout_finds_the_gripper_by_shape():
    ds, truth = simulated("single-joint", 8, seed=3)
    eps = sorted(ds.episodes)
    perm = [3, 0, 5, 1, 4, 2]  # the gripper (old 5) lands at 2
    bare = _renamed(ds, [f"joint_{i}" for i in range(6)], perm)
    preds = KinematicEngine().predict([EpisodeJob("s", bare, e) for e in eps])
    picks = [e for e in eps if "push" not in ds.episode(e).task]
    for e, p in zip(eps, preds, strict=True):
        if e in picks:
            assert p.notes["gripper_channel"] == "arm: observation.state[2]", p.notes
            assert p.notes["gripper_found_by"] == "shape"
    got = scores([p for e, p in zip(eps, preds, strict=True) if e in picks], truth, bare, picks)
    assert got["f1@0.5"] >= 0.75, got


def test_an_arm_that_holds_still_cuts_nothing():
    """Freeze the right arm of a bimanual episode (as if it waited out the whole task): the
    cuts are the left arm's, and none is made by the frozen one."""
    ds, _ = simulated("bimanual", 2, seed=4)
    chans, task = ds._episodes[0]
    frozen = {f: a.copy() for f, a in chans.items()}
    for f in frozen:
        frozen[f][:, 7:] = frozen[f][0, 7:]
    one = StubDataset(ds.fps, {0: (frozen, task)}, ds.names)
    pred = KinematicEngine().predict_one(EpisodeJob("s", one, 0))
    check_prediction(pred, ds.fps, len(frozen["action"]))
    assert pred.notes["arms_moving"] == ["left"]


def test_constant_gripper_means_no_gripper_and_high_uncertainty():
    ds, _ = simulated("single-joint", 4, seed=5)
    data = {}
    for i, (chans, task) in ds._episodes.items():
        flat = {f: a.copy() for f, a in chans.items()}
        for f in flat:
            flat[f][:, 5] = flat[f][0, 5]
        data[i] = (flat, task)
    flat_ds = StubDataset(ds.fps, data, ds.names)
    normal = KinematicEngine().predict([EpisodeJob("s", ds, e) for e in sorted(ds.episodes)])
    broken = KinematicEngine().predict([EpisodeJob("s", flat_ds, e) for e in sorted(ds.episodes)])
    for n, b in zip(normal, broken, strict=True):
        check_prediction(b, ds.fps, b.annotation.n_frames)
        assert not any(s.name.startswith(("grasp_", "release_")) for s in b.annotation.segments)
        assert b.annotation.uncertainty >= 0.6
        assert b.annotation.uncertainty > n.annotation.uncertainty


def test_inverted_gripper_polarity_gives_the_same_cuts():
    """Some robots read 0 as open: the stall against the command (or the levels) tells which way."""
    ds, _ = simulated("single-joint", 3, seed=6)
    data = {}
    for i, (chans, task) in ds._episodes.items():
        data[i] = ({f: np.concatenate([a[:, :5], 100.0 - a[:, 5:]], axis=1) for f, a in chans.items()}, task)
    flipped = StubDataset(ds.fps, data, ds.names)
    for e in sorted(ds.episodes):
        a = KinematicEngine().predict_one(EpisodeJob("s", ds, e))
        b = KinematicEngine().predict_one(EpisodeJob("s", flipped, e))
        if not ds.episode(e).task.startswith("push"):  # a push never holds: nothing tells which way
            assert a.notes["gripper_open_is"] != b.notes["gripper_open_is"]
        assert [(s.name, s.start) for s in a.annotation.segments] == [
            (s.name, s.start) for s in b.annotation.segments
        ]


@pytest.mark.parametrize("seed", [7, 21])
def test_a_contact_task_is_reach_push_retreat(seed):
    """The push starts where the approach slows at the block and carries on into it (without the
    slowdowns the change points miss, seed 7 scores 0.80 and seed 21 finds 3 pushes of 6)."""
    ds, truth = simulated("single-joint", 12, seed=seed)
    pushes = [e for e in sorted(ds.episodes) if ds.episode(e).task.startswith("push")]
    assert pushes
    preds = KinematicEngine().predict([EpisodeJob("s", ds, e) for e in pushes])
    for p in preds:
        names = [s.name for s in p.annotation.segments]
        assert p.notes["contact_task"] == "push"
        assert set(names) <= {"idle", "reach_block", "push_block", "retreat"}, names
    found = sum(1 for p in preds if "push_block" in [s.name for s in p.annotation.segments])
    assert found >= len(preds) - 1
    assert scores(preds, truth, ds, pushes)["f1@0.5"] >= 0.85


def test_task_words_name_the_objects_and_the_target():
    w = task_words("pass the yellow cube from the right arm to the left arm and put it in the purple bowl")
    assert (w.objects, w.target) == (("cube",), "bowl")
    w = task_words("hold up the orange socket and insert the blue peg into it")
    assert w.objects == ("socket", "peg") and w.grasped(1) == "peg" and w.grasped(5) == "peg"
    assert task_words("stack the green cube on the red cube").target == "cube"
    assert task_words("push the red block onto the orange square").contact == "push"
    assert task_words("").grasped(0) == "object"


# ---------------------------------------------------------------- learning from accepted episodes


def test_one_accepted_episode_per_task_teaches_names_and_cuts(sim):
    robot, ds, truth = sim
    eps = sorted(ds.episodes)
    keys = task_keys(ds)  # the backend's rule: one task per string, or one for all
    first: dict[str, int] = {}
    for e in eps:
        first.setdefault(keys[e], e)
    exemplars = {key: accepted(ds, e, truth[e]) for key, e in first.items()}
    rest = [e for e in eps if e not in first.values()]
    jobs = [EpisodeJob("s", ds, e, exemplars=(exemplars[keys[e]],)) for e in rest]
    preds = KinematicEngine().predict(jobs)
    for job, p in zip(jobs, preds, strict=True):
        ann = check_prediction(p, ds.fps, ds.episode(job.episode).length)
        assert "+ex-" in ann.model and ann.origin == f"aligned to episode {job.exemplars[0].episode}"
        ex = job.exemplars[0]
        mapping = word_map(ex.task, ds.episode(job.episode).task)
        assert {s.name for s in ann.segments} <= {adapt_name(s.name, mapping) for s in ex.segments}
        assert p.notes["proposal"] == "aligned"
    got = scores(preds, truth, ds, rest)
    zero = scores(KinematicEngine().predict([EpisodeJob("s", ds, e) for e in rest]), truth, ds, rest)
    print(f"\n{robot}: one exemplar per task {got}, zero-shot {zero}")
    # The targets on its own datasets are F1@0.5 >= 0.95 and labels >= 0.9; these are
    # a dozen simulated episodes (with retries and contact tasks), so the floor here is lower.
    assert got["f1@0.5"] >= 0.8 and got["label_acc"] >= 0.8, got
    assert got["f1@0.5"] >= zero["f1@0.5"] - 0.02, (got, zero)
    assert got["label_acc"] >= zero["label_acc"]  # the person's names, not the engine's


def test_the_model_version_follows_the_exemplar_set():
    ds, truth = simulated("single-ee", 3, seed=8)
    eng = KinematicEngine()
    a, b = accepted(ds, 0, truth[0]), accepted(ds, 1, truth[1])
    tag0 = eng.job_tag(EpisodeJob("s", ds, 2))
    tag_a = eng.job_tag(EpisodeJob("s", ds, 2, exemplars=(a,)))
    tag_ab = eng.job_tag(EpisodeJob("s", ds, 2, exemplars=(a, b)))
    tag_a2 = eng.job_tag(EpisodeJob("s", ds, 2, exemplars=(msgspec.structs.replace(a, revision=2),)))
    assert tag0 == TAG and len({tag0, tag_a, tag_ab, tag_a2}) == 4
    assert eng.job_tag(EpisodeJob("s", ds, 2, exemplars=(b, a))) == tag_ab  # order does not matter


def test_exemplars_that_cannot_serve_fall_back_to_zero_shot():
    ds, truth = simulated("single-joint", 3, seed=9)
    other, _ = simulated("bimanual", 1, seed=9)
    chans, task = other._episodes[0]
    mixed = StubDataset(ds.fps, {**ds._episodes, 7: (chans, task)}, ds.names)  # 14 dims under 6 names
    foreign = accepted(
        mixed, 7, repair_cover([Segment(name="x", start=0.0, end=1.0)], mixed.episode(7).duration)
    )
    pred = KinematicEngine().predict_one(EpisodeJob("s", mixed, 1, exemplars=(foreign,)))
    assert pred.status == "ok" and "+ex-" not in pred.annotation.model
    assert "another state/action layout" in pred.notes["exemplars_unused"]
    missing = msgspec.structs.replace(accepted(ds, 0, truth[0]), episode=99)
    pred = KinematicEngine().predict_one(EpisodeJob("s", ds, 1, exemplars=(missing,)))
    assert "not in the dataset" in pred.notes["exemplars_unused"]


def test_one_frame_nan_and_constant_episodes_get_valid_proposals():
    ds, truth = simulated("single-ee", 2, seed=10)
    chans, task = ds._episodes[0]
    nan = {f: a.copy() for f, a in chans.items()}
    for f in nan:
        nan[f][50:60, :3] = np.nan
    cases = {
        1: ({f: a[:1] for f, a in chans.items()}, task),
        2: (nan, task),
        3: ({f: np.ones_like(a) for f, a in chans.items()}, task),
    }
    weird = StubDataset(ds.fps, {0: ds._episodes[0], **cases}, ds.names)
    ex = accepted(weird, 0, truth[0])
    for e in cases:
        for exemplars in ((), (ex,)):
            pred = KinematicEngine().predict_one(EpisodeJob("s", weird, e, exemplars=exemplars))
            ann = check_prediction(pred, ds.fps, weird.episode(e).length)
            if e == 1:
                assert len(ann.segments) == 1 and ann.uncertainty == 1.0


# ---------------------------------------------------------------- options, errors, shapes


def test_one_broken_job_does_not_sink_the_batch(demo_root):
    from core.dataset import Dataset

    ds = Dataset(demo_root)
    jobs = [
        EpisodeJob("demo", ds, 0),
        EpisodeJob("demo", ds, 99),
        EpisodeJob("demo", ds, 1, options={"min_pause": -1}),
        EpisodeJob("demo", ds, 2),
    ]
    preds = KinematicEngine().predict(jobs)
    assert [p.status for p in preds] == ["ok", "error", "error", "ok"]
    assert "episode 99" in preds[1].error and "does not exist" in preds[1].error
    assert preds[1].annotation is None
    assert "'min_pause'" in preds[2].error
    check_prediction(preds[3], ds.fps, ds.episode(2).length)


def test_options_are_validated_by_name():
    assert KinematicEngine(min_pause=0.5, merge=0.0).options.min_pause == 0.5
    assert make_engine("kinematic", min_segment=0.3).info().tag == TAG
    with pytest.raises(KinematicOptionError, match="'min_pause'"):
        KinematicEngine(min_pause=0)
    with pytest.raises(KinematicOptionError, match="'merge'"):
        KinematicEngine(merge="lots")
    with pytest.raises(KinematicOptionError, match="'shape_threshold'"):
        KinematicEngine(shape_threshold=1.5)
    with pytest.raises(KinematicOptionError, match="'bogus'"):
        KinematicEngine(bogus=1)
    with pytest.raises(NotImplementedError):
        KinematicEngine().reload("/weights")


def test_job_options_override_and_unknown_ones_are_ignored():
    ds, _ = simulated("single-ee", 1, seed=11)
    pred = KinematicEngine().predict([EpisodeJob("s", ds, 0, options={"merge": 1.5, "other_engine": 1})])[0]
    ann = check_prediction(pred, ds.fps, ds.episode(0).length)
    default = KinematicEngine().predict([EpisodeJob("s", ds, 0)])[0].annotation
    assert len(ann.segments) < len(default.segments)  # cuts within 1.5 s became one


def test_gripper_shape_score():
    t = np.arange(300)
    rng = np.random.default_rng(0)
    noise = rng.normal(0, 1e-3, 300)
    arm = np.abs(np.sin(t / 20.0))  # something else moving, for the independence factor
    two_level = np.where((t > 80) & (t < 200), 0.2, 1.0) + noise
    one_step = np.where(t > 80, 0.2, 1.0) + noise
    assert gripper_shape(two_level, 30.0, arm).score > 0.6
    assert gripper_shape(one_step, 30.0, arm).score <= 0.35  # a joint that moved once
    assert gripper_shape(np.full(300, 0.5), 30.0, arm).score == 0.0
    assert gripper_shape(noise, 30.0, arm).score < 0.2
    ramp = np.linspace(0.0, 1.0, 300) + noise
    assert gripper_shape(ramp, 30.0, arm).score == 0.0


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    hnp.arrays(
        np.float32,
        st.tuples(st.integers(2, 120), st.integers(1, 8)),
        elements=st.floats(-10, 10, width=32, allow_nan=False, allow_infinity=False),
    ),
    st.booleans(),
)
def test_any_finite_signal_gives_a_valid_cover(arr, named):
    d = arr.shape[1]
    names = ([f"j{i}" for i in range(d - 1)] + ["gripper"]) if named else [f"m{i}" for i in range(d)]
    ds = StubDataset(15.0, {0: ({"observation.state": arr}, "pick up the thing")}, names)
    pred = KinematicEngine().predict([EpisodeJob("s", ds, 0)])[0]
    check_prediction(pred, 15.0, len(arr))
    assert msgspec.json.encode(pred.notes)
    assert math.isfinite(pred.annotation.uncertainty)


def test_demo_root_predictions_are_valid_covers_with_provenance(demo_root):
    from core.dataset import Dataset

    ds = Dataset(demo_root)
    preds = KinematicEngine().predict([EpisodeJob("demo", ds, e.index) for e in ds])
    for ep, pred in zip(ds, preds, strict=True):
        ann = check_prediction(pred, ds.fps, ep.length)
        assert (ann.dataset, ann.episode, ann.task) == ("demo", ep.index, ep.task)
        assert ann.segments[0].name == "idle" and ann.segments[-1].name == "idle"


def test_ground_truth_layout_without_demo_extras_evaluates(tmp_path: Path, demo_root: Path):
    """`evaluate` needs only episode_index, task and segments per episode."""
    import shutil

    root = tmp_path / "ds"
    shutil.copytree(demo_root, root)
    gt = json.loads((root / "ground_truth.json").read_text())
    slim = {"episodes": [{k: e[k] for k in ("episode_index", "task", "segments")} for e in gt["episodes"]]}
    (root / "ground_truth.json").write_text(json.dumps(slim))
    result = evaluate_engine(root, KinematicEngine(), exemplars=1)
    assert result["exemplars"]["k"] == 1 and result["episodes"]


def test_worker_processes_give_the_same_predictions(demo_root, monkeypatch):
    """A large batch goes to worker processes; what comes back is what one process makes, in order."""
    from backend.engines.kinematic import workers
    from core.dataset import Dataset

    monkeypatch.setattr(workers, "PARALLEL_FROM", 2)
    ds = Dataset(demo_root)
    truth = json.loads((demo_root / "ground_truth.json").read_text())["episodes"]
    segs = [Segment(name=s["name"], start=s["start"], end=s["end"]) for s in truth[0]["segments"]]
    ex = accepted(ds, 0, repair_cover(segs, ds.episode(0).duration, ds.fps))
    jobs = [EpisodeJob("demo", ds, e.index, exemplars=(ex,) if e.index % 2 else ()) for e in ds if e.index]
    parallel = KinematicEngine(workers=2)
    try:
        assert parallel._pool.usable(jobs)
        got = parallel.predict(jobs)
    finally:
        parallel.close()
    want = KinematicEngine(workers=1).predict(jobs)
    assert [p.annotation for p in got] == [p.annotation for p in want]
    assert [p.status for p in got] == ["ok"] * len(jobs)


def test_fusion_keeps_a_phase_the_episode_has_no_cut_for():
    """The episode's own cuts miss the person's lift -> move boundary (no change point there):
    the move phase comes back at the aligned boundary instead of vanishing into the lift."""
    from backend.engines.kinematic.alignment import Alignment
    from backend.engines.kinematic.features import Exemplar
    from backend.engines.kinematic.fusion import fuse

    fps, n = 10.0, 100
    names = ["reach", "lift", "move", "place"]
    segs = [Segment(name=x, start=2.5 * k, end=2.5 * (k + 1)) for k, x in enumerate(names)]
    ann = EpisodeAnnotation(dataset="d", episode=0, task="t", duration=10.0, fps=fps, segments=segs)
    diag = np.stack([np.arange(n), np.arange(n)], axis=1)
    al = Alignment(Exemplar(ann, None), np.arange(n), 0.0, np.ones(n, dtype=np.int64), path=diag)
    runs = [("reach", 0, 25), ("lift", 25, 50), ("move", 50, 75), ("place", 75, 100)]
    out = fuse(runs, [26, 74], al, n, fps)  # the zero-shot cuts: none near 50
    assert [x for x, _, _ in out] == names
    assert [a for _, a, _ in out] == [0, 26, 50, 74]
    # A phase the cuts do separate stays at the episode's own (precise) cut.
    assert fuse(runs, [26, 49, 74], al, n, fps) == [
        ("reach", 0, 26),
        ("lift", 26, 49),
        ("move", 49, 74),
        ("place", 74, 100),
    ]


def test_warm_starts_the_worker_processes_ahead_of_the_first_batch():
    import os

    eng = KinematicEngine(workers=2)
    try:
        pids = {f.result(timeout=120) for f in eng.warm()}
        assert pids and os.getpid() not in pids
    finally:
        eng.close()
    assert KinematicEngine(workers=1).warm() == []


@pytest.mark.parametrize("warm", [True, False], ids=["warm", "still-starting"])
def test_workers_end_when_their_backend_is_killed(warm: bool):
    """A backend killed outright (SIGKILL), warm or while its workers still start, leaves no
    engine process behind."""
    import os
    import signal
    import subprocess
    import sys
    import time

    wait = "[f.result(timeout=120) for f in futures]\n" if warm else ""
    script = (
        "from backend.engines.kinematic import KinematicEngine\n"
        "eng = KinematicEngine(workers=2)\n"
        f"futures = eng.warm()\n{wait}"
        "print('go', flush=True)\n"
        "import time; time.sleep(600)\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", script], stdout=subprocess.PIPE, text=True, cwd=os.getcwd()
    )
    try:
        assert proc.stdout.readline().strip() == "go"
        deadline = time.monotonic() + 20
        while len(pids := _pool_children(proc.pid)) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(pids) == 2
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    deadline = time.monotonic() + 60
    while any(_alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(_alive(p) for p in pids), "engine workers outlived their backend"


def _pool_children(pid: int) -> list[int]:
    """The pool workers among a process's children (not multiprocessing's resource tracker)."""
    with open(f"/proc/{pid}/task/{pid}/children") as f:
        kids = [int(k) for k in f.read().split()]
    out = []
    for k in kids:
        try:
            with open(f"/proc/{k}/cmdline", "rb") as f:
                cmd = f.read()
        except FileNotFoundError:
            continue
        if b"spawn_main" in cmd and b"resource_tracker" not in cmd:
            out.append(k)
    return out


def _alive(pid: int) -> bool:
    """Whether a process exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False
