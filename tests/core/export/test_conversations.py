"""llava / qwen: samples from the shared builder, JPEG frames, a pixel budget the trainer keeps,
and coordinates that survive the trip."""

from __future__ import annotations

import json
from pathlib import Path

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from core.annotations import box_tracks, interpolate_box, interpolate_point, snap_time
from core.dataset import Dataset
from core.export import ExportError, export
from core.vlm.coords import from_model, model_image_size, to_model
from core.vlm.samples import BOX_TASK_KIND, SampleConfig, build_samples

from .conftest import OFFICIAL_SFT, ROBOINTER, UNREVIEWED_EPISODE, write_store


def _records(out: Path) -> list[dict]:
    return json.loads((out / "annotations.json").read_text())


def _info(out: Path) -> dict:
    return json.loads((out / "export.json").read_text())


@pytest.mark.parametrize("fmt", ["llava", "qwen"])
def test_layout_images_and_tags(fmt: str, request):
    out: Path = request.getfixturevalue(fmt)
    records = _records(out)
    assert len({r["id"] for r in records}) == len(records)
    assert {r["source"]["episode"] for r in records} == {0, 1, 2, 3, 4}  # unreviewed 5 left out
    assert UNREVIEWED_EPISODE not in {r["source"]["episode"] for r in records}
    for r in records:
        assert r["image"] == r["images"] and r["image"]  # the key each trainer reads, the same list
        assert "video" not in r and "videos" not in r  # no sample is a clip
        human, gpt = r["conversations"]
        assert (human["from"], gpt["from"]) == ("human", "gpt")
        assert human["value"].count("<image>") == len(r["image"])
        assert human["value"].startswith("<image>\n" * len(r["image"]))
        assert gpt["value"] and "<image>" not in gpt["value"]
        for rel, size in zip(r["image"], r["source"]["image_size"], strict=True):
            assert not Path(rel).is_absolute()
            with Image.open(out / rel) as img:
                assert img.format == "JPEG" and list(img.size) == size
    info = _info(out)
    assert info["samples"] == len(records) and info["image_keys"] == ["image", "images"]
    assert "Coordinates" in (out / "README.md").read_text()


@pytest.mark.parametrize("fmt,family", [("llava", "llava_onevision"), ("qwen", "qwen2_5_vl")])
def test_samples_are_the_shared_builders(fmt: str, family: str, request, demo_root: Path, annotations):
    """Prompts and answers are exactly core.vlm.samples' (one source of truth for prompts)."""
    out = request.getfixturevalue(fmt)
    records = {r["id"]: r for r in _records(out)}
    budget = _info(out).get("pixel_budget", {})
    config = SampleConfig(min_pixels=budget.get("min_pixels"), max_pixels=budget.get("max_pixels"))
    for sample in build_samples(annotations[1], Dataset(demo_root), family=family, config=config):
        r = records[sample.id]
        assert r["conversations"][0]["value"].endswith(sample.prompt.strip())
        assert r["conversations"][1]["value"] == sample.answer
        assert r["task"] == sample.task


def _expected(annotations, r: dict) -> list[tuple[list, tuple[float, ...]]]:
    """(answer values, stored normalized values) of every box and point of a grounding sample."""
    ann = annotations[r["source"]["episode"]]
    cam, t = r["source"]["camera"], r["source"]["t"]
    answers = json.loads(r["conversations"][1]["value"])
    if r["task"] in BOX_TASK_KIND:
        kind = BOX_TASK_KIND[r["task"]]
        tracks = box_tracks(b for b in ann.boxes if b.kind == kind)
        return [(a["bbox_2d"], interpolate_box(tracks[(cam, a["label"], kind)], t)[0]) for a in answers]
    if r["task"] == "contact_point":
        (a,) = answers
        (c,) = [c for c in ann.contacts if c.camera == cam]
        return [(a["point_2d"], (c.x, c.y))]
    traj = next(tr for tr in ann.trajectories if tr.camera == cam)
    # answers carry t to 2 decimals; the point is the one at that frame of the grid
    return [(a["point_2d"], interpolate_point(traj.points, snap_time(a["t"], ann.fps))) for a in answers]


GROUNDING = (*BOX_TASK_KIND, "contact_point", "trajectory", "trajectory_from_start")


@pytest.mark.parametrize("fixture,budget", [("qwen", ROBOINTER), ("qwen_sft", OFFICIAL_SFT)])
def test_every_image_is_a_fixed_point_of_the_trainers_resize(fixture: str, budget, request, annotations):
    """Under the recorded budget, Qwen's own smart_resize returns each image's size, and every answer
    is the stored normalized value times that size."""
    ref = pytest.importorskip("transformers.models.qwen2_vl.image_processing_qwen2_vl")
    out: Path = request.getfixturevalue(fixture)
    info = _info(out)
    lo, hi = info["pixel_budget"]["min_pixels"], info["pixel_budget"]["max_pixels"]
    assert (lo, hi) == budget
    assert info["trainer_flags"] == f"--min_pixels {lo} --max_pixels {hi}"
    assert info["trainer_flags"] in (out / "README.md").read_text()
    images = {p.relative_to(out).as_posix() for p in (out / "images").rglob("*.jpg")}
    assert len(images) == info["images"]
    for rel in images:
        with Image.open(out / rel) as img:
            w, h = img.size
        assert ref.smart_resize(h, w, 28, lo, hi) == (h, w), rel
        assert lo <= w * h <= hi
    checked: set[str] = set()
    for r in _records(out):
        if r["task"] not in GROUNDING:
            continue
        w, h = r["source"]["image_size"][0]
        for got, norm in _expected(annotations, r):
            assert got == [round(v * (w if i % 2 == 0 else h)) for i, v in enumerate(norm)], r["id"]
        checked.add(r["task"])
    assert checked == set(GROUNDING)


def test_the_official_sft_budget_shrinks_the_images_instead_of_the_trainer(qwen: Path, qwen_sft: Path):
    """At --max_pixels 50176 the 320x240 camera frame is written at 252x168 (the size Qwen's resize gives
    it under that budget), not at 308x252, which that trainer would shrink to 224x196 under the answers."""
    sizes = _info(qwen)["image_sizes"]
    small = _info(qwen_sft)["image_sizes"]
    assert "308x252" in sizes and "252x168" in small and "308x252" not in small
    assert all(int(w) * int(h) <= OFFICIAL_SFT[1] for w, h in (s.split("x") for s in small))


def test_qwen_pixels_round_trip_to_the_annotation_within_a_pixel(qwen: Path, annotations, demo_root: Path):
    """normalized -> Qwen absolute pixels of the written JPEG -> normalized, within a pixel."""
    ds = Dataset(demo_root)
    checked = 0
    for r in _records(qwen):
        if r["task"] not in GROUNDING:
            continue
        with Image.open(qwen / r["image"][0]) as img:
            w, h = img.size
        assert w % 28 == 0 and h % 28 == 0
        cam_h, cam_w = ds.camera_shape(r["source"]["camera"])
        for model_values, truth in _expected(annotations, r):
            back = from_model(model_values, "qwen2_5_vl", (w, h))
            for i, (b, v) in enumerate(zip(back, truth, strict=True)):
                side, cam_side = (w, cam_w) if i % 2 == 0 else (h, cam_h)
                assert abs(b - v) * side <= 0.5 + 1e-9  # rounding on the resized image
                assert abs(b - v) * cam_side <= 1.0  # and within a pixel of the camera frame
            checked += 1
    assert checked > 100


def test_llava_values_are_normalized_to_the_image(llava: Path, annotations):
    checked = 0
    for r in _records(llava):
        if r["task"] not in GROUNDING:
            continue
        for model_values, truth in _expected(annotations, r):
            assert all(0.0 <= v <= 1.0 for v in model_values)
            assert all(abs(m - v) <= 0.0005 + 1e-9 for m, v in zip(model_values, truth, strict=True))
            checked += 1
    assert checked > 100


def test_a_budget_too_small_for_any_image_is_refused(demo_root: Path, store_path: Path, tmp_path: Path):
    out = tmp_path / "out"
    with pytest.raises(ExportError, match=r"--max-pixels 500: too small for any image.*28x28 = 784"):
        export(demo_root, store_path, "qwen", out, max_pixels=500)
    with pytest.raises(ExportError, match="--min-pixels 90000 is above --max-pixels 50000"):
        export(demo_root, store_path, "qwen", out, min_pixels=90000, max_pixels=50000)
    with pytest.raises(ExportError, match="only the qwen export has a pixel budget"):
        export(demo_root, store_path, "llava", out, max_pixels=50176)
    # 224x224 exactly: no 4:3 image has a size smart_resize keeps in a one-size budget
    with pytest.raises(ExportError, match=r"the budget holds none of the \d+ samples' images"):
        export(demo_root, store_path, "qwen", out, min_pixels=50176, max_pixels=50176)
    assert not out.exists() and not list(tmp_path.glob(".out*"))


def test_a_budget_that_holds_only_the_frames_leaves_the_sheets_out_by_name(
    demo_root: Path, store_path: Path, tmp_path: Path
):
    """Exactly a 308x252 frame's area: frames fit, contact sheets cannot; those samples are named."""
    area = 308 * 252
    report = export(demo_root, store_path, "qwen", tmp_path / "out", min_pixels=area, max_pixels=area)
    records = _records(tmp_path / "out")
    assert records and "segmentation" not in {r["task"] for r in records}
    assert {tuple(s) for r in records for s in r["source"]["image_size"]} == {(308, 252)}
    sheets = [w for w in report.warnings if "segmentation sample" in w]
    assert sheets and all("left out" in w and "--min-pixels 77616 --max-pixels 77616" in w for w in sheets)
    assert any(w.startswith("episode 0: segmentation sample ") for w in sheets)
    assert "## Left out" in (tmp_path / "out" / "README.md").read_text()


def test_a_box_thinner_than_a_pixel_after_resizing_is_left_out_by_name(
    demo_root: Path, annotations, tmp_path: Path
):
    ann = annotations[2]
    i = next(i for i, b in enumerate(ann.boxes) if b.kind == "final")
    thin = msgspec.structs.replace(ann.boxes[i], xyxy=(0.5, 0.2, 0.5005, 0.6), label="thread")
    boxes = [*ann.boxes[:i], thin, *ann.boxes[i + 1 :]]
    store = write_store(tmp_path / "thin.db", [msgspec.structs.replace(ann, boxes=boxes)])
    report = export(demo_root, store, "qwen", tmp_path / "out")
    (warning,) = report.warnings
    assert warning.startswith("episode 2: box_final sample ") and "box 'thread'" in warning
    assert "no width or height left" in warning and "left out" in warning
    records = _records(tmp_path / "out")
    assert "thread" not in json.dumps(records) and {"box_current", "box_final"} <= {
        r["task"] for r in records
    }


@settings(max_examples=300, deadline=None)
@given(
    cam=st.tuples(st.integers(64, 1920), st.integers(64, 1080)),
    xyxy=st.tuples(*[st.floats(0, 1)] * 4),
)
def test_normalized_to_qwen_pixels_and_back_is_within_a_pixel(cam, xyxy):
    size = model_image_size("qwen2_5_vl", *cam)
    back = from_model(to_model(xyxy, "qwen2_5_vl", size), "qwen2_5_vl", size)
    for i, (b, v) in enumerate(zip(back, xyxy, strict=True)):
        side = size[0] if i % 2 == 0 else size[1]
        assert abs(b - v) * side <= 0.5 + 1e-9
