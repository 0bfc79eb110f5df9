"""``segmentation``: the episode's subtasks as ``[{"name": str, "start": s, "end": s}, ...]``.

Seconds from the episode start, ordered and gap-free over the sample's window
(``meta["window"]``); long episodes are cut into overlapping windows, each
shown as contact sheets with each tile's time burned in. With
`SampleConfig.describe`, each window is first described (core.vlm.tasks.describe)
and the description goes into its segmentation prompt.
"""

from __future__ import annotations

import re
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from core.annotations import Segment, repair_cover
from core.vlm.builder import Sample, SampleBuilder, dump, windows
from core.vlm.frames import sample_times
from core.vlm.jsontext import Unparseable
from core.vlm.readers import listify, parse_time, pick
from core.vlm.tasks._base import Item, Task, register
from core.vlm.tasks.describe import DESCRIBE

if TYPE_CHECKING:
    from core.annotations import EpisodeAnnotation


def _description_block(text: str) -> str:
    text = " ".join(text.split())
    return f"A first look at the frames described them so: {text}\n" if text else ""


def _vocabulary(names: Any) -> str:
    return "Use only these names: " + ", ".join(names) + "." if names else ""


class Segmentation(Task):
    name = "segmentation"
    kind = "segments"
    order = 10
    max_tokens = 384

    def window(
        self, b: SampleBuilder, window: tuple[float, float], camera: str
    ) -> tuple[Sample, Sample | None]:
        """The segmentation sample of a window and (when describing) its describe sample."""
        cfg = b.cfg
        a, z = window
        per_sheet = cfg.sheet_frames
        times = sample_times(a, z, b.fps, cfg.rate, per_sheet * cfg.sheets_per_window)
        images = [
            b.sheet_spec(camera, tuple(times[i : i + per_sheet])) for i in range(0, len(times), per_sheet)
        ]
        fields = {
            "task": b.task_text,
            "duration": f"{b.duration:.2f}",
            "window_start": f"{a:.2f}",
            "window_end": f"{z:.2f}",
            "n_frames": len(times),
            "camera": camera,
        }
        prompt = self.render(vocabulary=_vocabulary(cfg.vocabulary), description="", **fields)
        meta = {"window": (a, z), "camera": camera, "times": list(times), "vocabulary": list(cfg.vocabulary)}
        seg = b.sample(self.name, images, prompt, "", **meta)
        desc = None
        if cfg.describe:
            desc = b.sample(DESCRIBE.name, images, DESCRIBE.render(**fields), "", **meta)
            seg.meta["after"] = desc.id
        return seg, desc

    def requests(self, b: SampleBuilder, camera: str, context: EpisodeAnnotation | None) -> list[Sample]:
        out: list[Sample] = []
        for w in windows(b.duration, b.cfg):
            seg, desc = self.window(b, w, camera)
            out.extend([desc, seg] if desc else [seg])
        return out

    def samples(self, b: SampleBuilder, ann: EpisodeAnnotation) -> list[Sample]:
        if not ann.segments:
            return []
        out = []
        for a, z in windows(b.duration, b.cfg):
            seg, _ = self.window(b, (a, z), b.first_camera)
            spans = [
                {"name": s.name, "start": round(max(s.start, a), 2), "end": round(min(s.end, z), 2)}
                for s in ann.segments
                if min(s.end, z) - max(s.start, a) > 1e-6
            ]
            if spans:
                spans[0]["start"], spans[-1]["end"] = round(a, 2), round(z, 2)
            seg.answer = dump(spans)
            out.append(seg)
        return out

    def with_description(self, sample: Sample, description: str) -> Sample:
        """The segmentation sample with the describe pass's answer put into its prompt."""
        a, z = sample.meta["window"]
        prompt = self.render(
            task=sample.meta["task_text"],
            duration=f"{sample.meta['duration']:.2f}",
            window_start=f"{a:.2f}",
            window_end=f"{z:.2f}",
            n_frames=len(sample.meta.get("times", [])),
            camera=sample.meta.get("camera", ""),
            vocabulary=_vocabulary(sample.meta.get("vocabulary") or []),
            description=_description_block(description),
        )
        return replace(sample, prompt=prompt, meta={**sample.meta, "description": description})

    def items(
        self, value: Any, meta: dict[str, Any], repairs: list[str], source: str, confidence: float | None
    ) -> list[Item]:
        duration = float(meta["duration"])
        a, z = meta.get("window") or (0.0, duration)
        a, z = float(a), float(z)
        rows = listify(value, ("segments", "subtasks", "steps", "phases", "actions", "answer"))
        if len(rows) == 1 and isinstance(rows[0], dict) and not _is_span(rows[0]):
            # {"reach": [0, 1.2], "grasp": [1.2, 2.0]}
            rows = [{"name": k, "span": v} for k, v in rows[0].items()]
        spans: list[Segment] = []
        dropped = 0
        for row in rows:
            try:
                name, s, e = _span(row)
            except (ValueError, TypeError):
                dropped += 1
                continue
            if e < s:
                s, e = e, s
                repairs.append("swapped a span's start and end")
            s, e = max(a, s), min(z, e)
            if e - s <= 1e-6:
                dropped += 1
                continue
            spans.append(Segment(name=name, start=s - a, end=e - a, source=source, confidence=confidence))
        if dropped:
            repairs.append(f"dropped {dropped} span(s) without a usable name and times inside the window")
        if not spans:
            raise Unparseable("no usable subtask spans")
        return _cover(spans, a, z, meta, repairs, source, confidence)


def _cover(
    spans: list[Segment],
    a: float,
    z: float,
    meta: dict[str, Any],
    repairs: list[str],
    source: str,
    confidence: float | None,
) -> list[Item]:
    """The spans (relative to the window start) as a gap-free cover of [a, z], noting what moved."""
    order = [(s.start, s.end) for s in spans]
    if order != sorted(order):
        repairs.append("sorted the spans by time")
    fps = float(meta.get("fps") or 0) or None
    cover = repair_cover(spans, z - a, fps)
    tol = 0.5 / fps + 1e-6 if fps else 1e-3  # snapping to the frame grid is not a repair
    moved = len(cover) != len(spans) or any(
        abs(c.start - o[0]) > tol or abs(c.end - o[1]) > tol
        for c, o in zip(cover, sorted(order), strict=False)
    )
    if moved:
        repairs.append("closed gaps and overlaps into a cover of the window")
    return [
        Segment(name=s.name, start=s.start + a, end=s.end + a, source=source, confidence=confidence)
        for s in cover
    ]


def _is_span(row: dict) -> bool:
    keys = {str(k).lower() for k in row}
    return bool(
        keys & {"name", "label", "subtask", "skill", "action", "phase", "step", "start", "end", "time"}
    )


def _span(row: Any) -> tuple[str, float, float]:
    if isinstance(row, list | tuple) and len(row) == 3:
        name, s, e = row
        return _name(name), parse_time(s), parse_time(e)
    if not isinstance(row, dict):
        raise ValueError("not a span")
    name = pick(row, ("name", "label", "subtask", "skill", "action", "phase", "step", "description"))
    s = pick(row, ("start", "start_time", "begin", "from", "t0", "start_s", "start_sec"))
    e = pick(row, ("end", "end_time", "stop", "to", "t1", "end_s", "end_sec"))
    span = pick(row, ("span", "time", "times", "timestamp", "timestamps", "interval"))
    if (s is None or e is None) and span is not None:
        if isinstance(span, str):
            parts = re.split(r"\s*(?:-|–|to)\s*", span.strip())
            if len(parts) == 2:
                s, e = parts
        elif isinstance(span, list | tuple) and len(span) == 2:
            s, e = span
    if s is None or e is None:
        raise ValueError("span without start and end")
    return _name(name), parse_time(s), parse_time(e)


def _name(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError("span without a name")
    return " ".join(value.split())


SEGMENTATION = register(Segmentation())
