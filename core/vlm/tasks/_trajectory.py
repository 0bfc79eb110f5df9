"""What the two trajectory tasks share: ``[{"t": s, "point_2d": [x, y]}, ...]``, the gripper's path.

`trajectory` shows one frame per time (all the same size) and asks where the
gripper is in each; `trajectory_from_start` shows only the first and asks for
the path to come, all points drawn on it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from core.annotations import Trajectory, interpolate_point
from core.vlm.builder import Sample, SampleBuilder, dump, even_times
from core.vlm.coords import to_model
from core.vlm.jsontext import Unparseable
from core.vlm.readers import points
from core.vlm.tasks._base import Item, Task

if TYPE_CHECKING:
    from core.annotations import EpisodeAnnotation
    from core.vlm.config import SampleConfig


class TrajectoryTask(Task):
    """A trajectory task: subclasses say how many times and whether every frame is shown."""

    kind = "trajectories"
    max_tokens = 192
    # True: one image per time; False: only the first frame.
    every_frame: ClassVar[bool] = True

    def count(self, cfg: SampleConfig) -> int:
        """How many times a sample asks about."""
        raise NotImplementedError

    def make(
        self,
        b: SampleBuilder,
        camera: str,
        times: Sequence[float],
        path: Sequence[tuple[float, float, float]] = (),
    ) -> Sample:
        grid = sorted({b.t(t) for t in times})
        shown = grid if self.every_frame else grid[:1]
        specs = [b.frame_spec(camera, t) for t in shown]
        size = specs[0].size
        prompt = self.render(
            **b.grounding_fields(camera, shown[0], size), times=", ".join(f"{t:.2f}" for t in grid)
        )
        answer = ""
        if path:
            rows = []
            for t in grid:
                x, y = interpolate_point(path, t)  # type: ignore[misc]
                rows.append({"t": round(t, 2), "point_2d": to_model((x, y), b.fam, size)})
            answer = dump(rows)
        return b.sample(
            self.name, specs, prompt, answer, camera=camera, times=grid, t=shown[0], image_size=size
        )

    def requests(self, b: SampleBuilder, camera: str, context: EpisodeAnnotation | None) -> list[Sample]:
        return [self.make(b, camera, even_times(0.0, b.last, self.count(b.cfg)))]

    def samples(self, b: SampleBuilder, ann: EpisodeAnnotation) -> list[Sample]:
        out = []
        for tr in ann.trajectories:
            if tr.camera not in b.cameras or len(tr.points) < 2:
                continue
            t0, t1 = tr.points[0][0], tr.points[-1][0]
            out.append(self.make(b, tr.camera, even_times(t0, t1, self.count(b.cfg)), tr.points))
        return out

    def items(
        self, value: Any, meta: dict[str, Any], repairs: list[str], source: str, confidence: float | None
    ) -> list[Item]:
        pts = points(value, meta, repairs)
        if not pts:
            raise Unparseable("no trajectory points")
        times = list(meta.get("times") or [])
        duration = float(meta["duration"])
        rows = []
        for k, (t, (x, y)) in enumerate(pts):
            if t is None:
                if k >= len(times):
                    continue
                t = times[k]
                if k == 0:
                    repairs.append("points without times took the frames' times")
            rows.append((min(max(t, 0.0), duration), x, y))
        if not rows:
            raise Unparseable("no trajectory point with a time")
        if rows != sorted(rows, key=lambda r: r[0]):
            repairs.append("sorted the trajectory by time")
            rows.sort(key=lambda r: r[0])
        return [Trajectory(camera=meta["camera"], points=rows, source=source, confidence=confidence)]
