"""GPU trackers: SAM2 and SAM3 video models through transformers, fed one frame at a time.

Both run in transformers' streaming mode: an inference session without a video,
the person's keyframe first with its prompt, then each frame in the order of
travel (`model(inference_session=..., frame=...)`), so forwards and backwards
are the same code and no episode is ever held in memory. The model's mask
becomes the box (its bounding rectangle); a point keeps its place relative to
the box of the segment it was placed on. The model's own object score says
when the object is gone (lost). Old frames and memories beyond what the memory
bank looks back on are dropped from the session as tracking goes.

- `sam2` (`Sam2VideoModel`, `Sam2VideoProcessor`): prompted with the keyframe's box,
  or with a click at the point.
- `sam3` (`Sam3VideoModel`, `Sam3VideoProcessor`): prompted with text (the box's
  label, for points the gripper phrase), which finds every instance; the one
  matching the keyframe is followed. `detect(frame, text)` finds the object named
  in a task on a frame without a click.

torch and transformers load only when an engine is built (the `vlm` extra).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from backend.tracking.base import Step, TargetInfo, TrackEngine, Tracker, TrackingError, check_value
from core.errors import MissingExtraError

# Memories a SAM video model looks back on: frames older than this are dropped from the session.
KEEP_FRAMES = 32
# Below this object probability the model says the object is not in the frame.
DEFAULT_MIN_SCORE = 0.5
GRIPPER_PROMPT = "robot gripper"


def _import_torch():
    try:
        import torch
        import transformers
    except ImportError as exc:
        raise MissingExtraError("transformers", "vlm", "The SAM trackers") from exc
    return torch, transformers


def _device(torch: Any, device: str | None) -> str:
    if device:
        return device
    return "cuda" if torch.cuda.is_available() else "cpu"


def mask_to_box(mask: np.ndarray) -> tuple[float, float, float, float] | None:
    """The pixel rectangle (x1, y1, x2, y2; x2/y2 exclusive) around a boolean mask, or None if empty."""
    ys = np.flatnonzero(mask.any(axis=1))
    xs = np.flatnonzero(mask.any(axis=0))
    if len(xs) == 0 or len(ys) == 0:
        return None
    return float(xs[0]), float(ys[0]), float(xs[-1] + 1), float(ys[-1] + 1)


def _box_iou(a: tuple[float, ...], b: tuple[float, ...]) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


class _PointOnBox:
    """A point that keeps its relative place in a box (where on the segment it was placed)."""

    def __init__(self, point: tuple[float, ...], box: tuple[float, ...]) -> None:
        x1, y1, x2, y2 = box
        self.rel = ((point[0] - x1) / max(x2 - x1, 1.0), (point[1] - y1) / max(y2 - y1, 1.0))

    def at(self, box: tuple[float, ...]) -> tuple[float, float]:
        x1, y1, x2, y2 = box
        return x1 + self.rel[0] * (x2 - x1), y1 + self.rel[1] * (y2 - y1)


class _SamEngine(TrackEngine):
    """Loads a checkpoint once; its trackers share the model."""

    model_class = ""
    processor_class = ""

    def __init__(
        self,
        model: str,
        device: str | None = None,
        dtype: str = "auto",
        min_score: float = DEFAULT_MIN_SCORE,
        gripper_prompt: str = GRIPPER_PROMPT,
        mask_threshold: float = 0.0,
        reassociate_iou: float = 0.5,
    ) -> None:
        torch, transformers = _import_torch()
        if not 0.0 <= min_score <= 1.0:
            raise ValueError(f"min_score = {min_score}: must be in [0, 1]")
        self.torch = torch
        self.device = _device(torch, device)
        if dtype == "auto":
            self.dtype = torch.bfloat16 if self.device.startswith("cuda") else torch.float32
        else:
            self.dtype = getattr(torch, dtype, None)
            if not isinstance(self.dtype, torch.dtype):
                raise ValueError(f"dtype = {dtype!r}: not a torch dtype (float32, bfloat16, float16)")
        self.min_score = min_score
        self.gripper_prompt = gripper_prompt
        # mask logits above this are the object (0: the models' own cut)
        self.mask_threshold = float(mask_threshold)
        # sam3: an instance that reappears under a new id is the same one if it overlaps this much
        self.reassociate_iou = float(reassociate_iou)
        self.model_path = str(model)
        try:
            model_cls = getattr(transformers, self.model_class)
            proc_cls = getattr(transformers, self.processor_class)
            self.processor = proc_cls.from_pretrained(self.model_path)
            self.model = model_cls.from_pretrained(self.model_path, dtype=self.dtype).to(self.device).eval()
        except (OSError, ValueError) as exc:
            raise TrackingError(
                f"the {self.name} tracker cannot load weights from '{self.model_path}': {exc}. "
                f"Give --model a {self.model_class} checkpoint directory (or a hub id already downloaded)."
            ) from exc
        self.version = Path(self.model_path.rstrip("/")).name or self.model_path

    def close(self) -> None:
        self.model = None
        if self.device.startswith("cuda"):
            self.torch.cuda.empty_cache()

    def _inputs(self, frame: np.ndarray):
        # a writable copy: the processors hand the array to torch, which wants to own it
        inputs = self.processor(images=np.array(frame), device=self.device, return_tensors="pt")
        return inputs, inputs.pixel_values[0].to(self.dtype)


class _SamTracker(Tracker):
    def __init__(self, engine: _SamEngine, kind: str, target: TargetInfo) -> None:
        self.e, self.kind, self.target = engine, kind, target
        self.session: Any = None
        self.index = 0
        self.point: _PointOnBox | None = None
        self.peak_frames = 0  # most frames the session held at once (pruning keeps it bounded)

    def close(self) -> None:
        self.session = None

    def _prune(self) -> None:
        """Drop frames and memories the model no longer looks back on (the session would keep all)."""
        s = self.session
        frames = getattr(s, "processed_frames", None)
        if isinstance(frames, dict):
            self.peak_frames = max(self.peak_frames, len(frames))
        old = self.index - KEEP_FRAMES
        if old < 1:
            return
        if isinstance(frames, dict):
            for k in [k for k in frames if 0 < k < old]:
                del frames[k]
        outputs = getattr(s, "output_dict_per_obj", None)
        if isinstance(outputs, dict):
            for per_obj in outputs.values():
                non_cond = per_obj.get("non_cond_frame_outputs", {})
                for k in [k for k in non_cond if k < old]:
                    del non_cond[k]

    def _step(self, box: tuple[float, ...] | None, score: float) -> Step:
        if box is None or score < self.e.min_score:
            return Step(
                self.last, score, lost=True, reason=f"{self.e.name} lost the object (score {score:.2f})"
            )
        value = box if self.kind == "box" else self.point.at(box)  # type: ignore[union-attr]
        self.last = tuple(float(v) for v in value)
        return Step(self.last, score)


class Sam2Tracker(_SamTracker):
    def start(self, frame: np.ndarray, value: tuple[float, ...]) -> None:
        h, w = frame.shape[:2]
        value = check_value(self.kind, value, w, h, "the keyframe")
        self.last = value
        e = self.e
        self.session = e.processor.init_video_session(inference_device=e.device, dtype=e.dtype)
        inputs, pixels = e._inputs(frame)
        prompt: dict[str, Any]
        if self.kind == "box":
            prompt = {"input_boxes": [[list(value)]]}
        else:
            prompt = {"input_points": [[[list(value)]]], "input_labels": [[[1]]]}
        e.processor.add_inputs_to_inference_session(
            self.session, frame_idx=0, obj_ids=1, original_size=inputs.original_sizes[0], **prompt
        )
        box, _score = self._run(inputs, pixels)
        if self.kind == "point":
            if box is None:  # the click hit nothing the model can segment: a small box around it
                box = (value[0] - 8, value[1] - 8, value[0] + 8, value[1] + 8)
            self.point = _PointOnBox(value, box)

    def _run(self, inputs, pixels) -> tuple[tuple[float, ...] | None, float]:
        e = self.e
        with e.torch.inference_mode():
            out = e.model(inference_session=self.session, frame=pixels)
        masks = e.processor.post_process_masks(
            [out.pred_masks.float()], inputs.original_sizes, mask_threshold=e.mask_threshold, binarize=True
        )[0]
        score = float(e.torch.sigmoid(out.object_score_logits.float()).reshape(-1)[0])
        return mask_to_box(masks[0, 0].cpu().numpy()), score

    def update(self, frame: np.ndarray) -> Step:
        self.index += 1
        inputs, pixels = self.e._inputs(frame)
        box, score = self._run(inputs, pixels)
        self._prune()
        return self._step(box, score)


class Sam2TrackEngine(_SamEngine):
    name = "sam2"
    model_class = "Sam2VideoModel"
    processor_class = "Sam2VideoProcessor"

    def _make(self, kind: str, target: TargetInfo) -> Tracker:
        return Sam2Tracker(self, kind, target)


class Sam3Tracker(_SamTracker):
    def _prompt(self) -> str:
        if self.kind == "point":
            return self.e.gripper_prompt
        text = self.target.label.strip()
        if not text:
            raise TrackingError("the sam3 tracker finds objects by name: the box needs a label")
        return text

    def start(self, frame: np.ndarray, value: tuple[float, ...]) -> None:
        h, w = frame.shape[:2]
        value = check_value(self.kind, value, w, h, "the keyframe")
        self.last = value
        e = self.e
        self.session = e.processor.init_video_session(inference_device=e.device, dtype=e.dtype)
        e.processor.add_text_prompt(self.session, self._prompt())
        found = self._run(frame)
        # The instance that matches the keyframe: the best-overlapping box, or the one holding the point.
        best, best_score = None, -1.0
        for obj_id, box, _score in found:
            if self.kind == "box":
                s = _box_iou(box, value)
            else:
                inside = box[0] <= value[0] <= box[2] and box[1] <= value[1] <= box[3]
                cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
                s = (1.0 if inside else 0.0) + 1.0 / (1.0 + np.hypot(cx - value[0], cy - value[1]))
            if s > best_score:
                best, best_score = (obj_id, box), s
        if best is None or (self.kind == "box" and best_score <= 0.0):
            raise TrackingError(
                f"sam3 found no '{self._prompt()}' at the keyframe's {self.kind}; check the label or use the sam2 tracker"
            )
        self.obj_id = best[0]
        self.box = best[1]
        if self.kind == "point":
            self.point = _PointOnBox(value, best[1])

    def _run(self, frame: np.ndarray) -> list[tuple[int, tuple[float, ...], float]]:
        e = self.e
        inputs, pixels = e._inputs(frame)
        with e.torch.inference_mode():
            out = e.model(inference_session=self.session, frame=pixels)
        post = e.processor.postprocess_outputs(self.session, out, original_sizes=inputs.original_sizes)
        ids = post["object_ids"].tolist()
        boxes = post["boxes"].float().cpu().numpy().tolist()
        scores = post["scores"].float().cpu().numpy().tolist()
        return [(int(i), tuple(b), float(s)) for i, b, s in zip(ids, boxes, scores, strict=True)]

    def update(self, frame: np.ndarray) -> Step:
        self.index += 1
        detections = self._run(frame)
        self._prune()
        found = {obj_id: (box, score) for obj_id, box, score in detections}
        if self.obj_id not in found and detections:
            # The model may give an instance a new id after an occlusion: the one where ours was.
            last_box = self.last if self.kind == "box" else self.box
            obj_id, box, _score = max(detections, key=lambda d: _box_iou(d[1], last_box))
            if _box_iou(box, last_box) >= self.e.reassociate_iou:
                self.obj_id = obj_id
        box, score = found.get(self.obj_id, (None, 0.0))
        if box is not None:
            self.box = box
        return self._step(box, score)


class Sam3TrackEngine(_SamEngine):
    name = "sam3"
    model_class = "Sam3VideoModel"
    processor_class = "Sam3VideoProcessor"

    def _make(self, kind: str, target: TargetInfo) -> Tracker:
        return Sam3Tracker(self, kind, target)

    def detect(self, frame: np.ndarray, text: str) -> list[tuple[tuple[float, ...], float]]:
        """Boxes (pixels) and scores of every instance of `text` on one frame, best first."""
        if not text.strip():
            raise TrackingError("sam3 detection needs the object's name")
        session = self.processor.init_video_session(inference_device=self.device, dtype=self.dtype)
        self.processor.add_text_prompt(session, text.strip())
        tracker = Sam3Tracker(self, "box", TargetInfo(label=text))
        tracker.session = session
        found = tracker._run(frame)
        return sorted(((box, score) for _i, box, score in found), key=lambda x: -x[1])
