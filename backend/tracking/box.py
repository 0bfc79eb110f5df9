"""The CPU box tracker: median flow (Kalal et al., "Forward-Backward Error", ICPR 2010).

Each frame, a grid of points inside the box is tracked with pyramidal
Lucas-Kanade forwards and back; the half of the points with the smallest
round-trip error and, of those, the half whose patches still look alike (NCC)
vote: the box moves by their median displacement and scales by the median ratio
of their pairwise distances. A fresh grid every frame means no feature ages or
slides off the object. When the round trip fails for most points (a cut, heavy
blur, the object gone), the box leaves the frame, or its size becomes absurd,
the tracker says it lost the target instead of guessing.

Why this one. OpenCV's correlation-filter trackers (CSRT, KCF) live in
`opencv-contrib-python-headless`, which cannot be installed next to the
`opencv-python-headless` wheel lerobot depends on (both provide `cv2`); the
learned ones in the main wheel (Nano, Vit, DaSiamRPN, GOTURN) need model files
we cannot ship. Measured on the 6-episode 640x480 demo, two cameras, from the
true box on the first frame only (box mean IoU over every frame, frames/s of
tracking alone on the shared 2-core machine; CSRT/KCF run from a throwaway
environment with the contrib wheel):

| tracker | mean IoU | frames/s |
|---|---|---|
| hold the keyframe | 0.383 | - |
| OpenCV TrackerMIL (main wheel) | 0.633 | 3 |
| OpenCV KCF (contrib wheel) | 0.545 | 44 |
| OpenCV CSRT (contrib wheel) | 0.733 | 2 |
| median flow (this module) | 0.810 | 57-70 |
| median flow + an NCC template check (hold / re-detect) | 0.79-0.80 | 75-165 |

So the main wheel stays (lerobot keeps its OpenCV) and boxes use plain median
flow: the most accurate here and fast. The template check, which should stop
the box from sliding off with a gripper sweeping across a still object, did not
pay (it also scored lower on the 320x240 test demo, 0.62-0.68 against 0.675),
so it is not in. Nothing here assumes flat colours or a static camera.

Colour (`colour.py`, after DAT). On the jointed and bimanual demos median flow
slides off the object where a gripper closes over it or lifts off it: the grid
points on the gripper outvote those on the object. A colour model of the box
against its ring, learned on the keyframe, now decides which points vote (only
those on the target's colours, while enough are seen: a hidden object is carried
by what covers it), and nudges the box by at most `search_px` a frame towards
the window with the most target colour. It is used only where the keyframe's
colours tell the target from its ring (`min_informative`). Box mean IoU from the
first frame, bench/tracking.py, 6 episodes x 2 cameras: single-ee 0.801 -> 0.802,
single-joint 0.651 -> 0.668, bimanual 0.635 -> 0.677. Measured and left out: a
free DAT search (half the box per side) with surroundings learned every frame
(0.703 / 0.608 on single-joint / bimanual, 0.693 on single-ee: the gripper's
colours learned as surroundings pull the box off the visible part), and a
colour-driven size change (`scale_step` 1.02: boxes shrank onto the lit face).

Re-detection (after TLD, Kalal et al. 2012). Where both grippers close over an
object (a handover) or one lets go of it, flow follows the gripper and the box
leaves the object for good; no local correction brings it back. A second colour
model weighs the target's colours against the whole keyframe's (only colours
found nowhere else there point at it); when the box scores less than
`recover_below` of what the keyframe's box scored, the window of the box's size
that scores best in the whole frame takes over if it scores at least
`recover_full` of it, else flow goes on (the object is hidden). Where the target's
colours are common on the keyframe (a twin of it stands there, `min_distinct`) no
such search runs: it could only pick one of the two by chance. The same score
keeps a box whose flow found no texture (a flat face under a gripper) instead of
calling it lost. Box mean IoU from the first frame, bench/tracking.py: single-ee
0.802 -> 0.806, single-joint 0.668 -> 0.701, bimanual 0.677 -> 0.711. Measured
and left out: the same search with the ring's colour model (it jumped to the
grippers' dark faces: bimanual 0.27), and a local search of half the box per
side (0.809 / 0.663 / 0.671).

Size. Where a gripper covers the object, the few grid points left on it (its
visible edge) move with the fingers, and their spread grew the box to two to four
times the object's area as the gripper turned. The box now changes size only
where at least `scale_voters` of the grid still votes after the filters. Box mean
IoU from the first frame, bench/tracking.py (seed 1): single-ee 0.806 -> 0.812,
single-joint 0.701 -> 0.787, bimanual 0.711 -> 0.782; on seed 2 of the same
demos 0.702 -> 0.755, 0.571 -> 0.625, 0.682 -> 0.754. Every share from 0.10 to
0.20 beat the old behaviour on all three (seed 1); 0.15 is the middle.

Losses that were not. All 9 tracks of the 36 on the seed-2 demos that stopped did
so at one frame whose flow failed (single-joint episode 3: the round trip missed by
51 px, 98 of 100 points failed) and could be followed again from the next. Such a
frame is now bridged: the box keeps its last motion for up to `coast` frames,
trusted with nothing (`Step.guessed`), and if flow does not return the run ends
before the guesses (propagate.py), so a real loss still stops the track. A failed round trip also tries the whole-frame re-detection
first. And where the box has slid off (onto the shadow of an object the gripper
lifts) while the object shows too little of itself for the whole-frame search
(half under the fingers, lit anew), a window within a box's size that still scores
`recover_near` of the keyframe takes over. Box mean IoU from the first frame,
bench/tracking.py, single-ee / single-joint / bimanual: seed 1 0.812 / 0.787 / 0.782
-> 0.820 / 0.822 / 0.780; seed 2 0.755 / 0.625 / 0.754 -> 0.790 / 0.711 / 0.759;
seed 3 (never tuned on) 0.694 / 0.738 / 0.758 -> 0.741 / 0.747 / 0.758; seed 4 (never
tuned on either) 0.725 / 0.674 / 0.714 -> 0.727 / 0.741 / 0.705.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from backend.tracking.base import Step, TargetInfo, TrackEngine, Tracker, check_value
from backend.tracking.colour import ColourModel, crop
from backend.tracking.flow import patch_ncc, scene_changed, to_gray, track_points


@dataclass(frozen=True)
class MedianFlowParams:
    """Knobs of the box tracker (defaults measured on the demo ground truth, see bench/tracking.py)."""

    # Points per side of the grid laid into the box each frame.
    grid: int = 10
    # A point whose forward-backward round trip misses by more than this (px) never votes.
    max_fb: float = 2.0
    # The target is lost when the median round-trip error of the grid exceeds this (px).
    lost_fb: float = 10.0
    # ... or when fewer than this share of the grid survives the round trip.
    min_reliable: float = 0.15
    # ... or when less than this share of the box is inside the frame.
    min_visible: float = 0.25
    # A box smaller than this (px on its short side) cannot be tracked further.
    min_side: float = 3.0
    # Largest scale change accepted in one frame (beyond it the frame's vote is not trusted).
    max_scale_step: float = 1.25
    # The box changes size only where at least this share of the grid still votes after the
    # filters: the pairwise distances of a handful of points (the visible edge of an object a
    # gripper covers) tell how the gripper turns, not how big the object is.
    scale_voters: float = 0.15
    # Frames in a row whose flow may fail (a damaged or blurred frame) before the target counts
    # as lost; meanwhile the box keeps its last motion with confidence 0.
    coast: int = 2
    # The colour model is used when the box's mean target likelihood exceeds its ring's by this
    # much on the keyframe (0 < x < 1; 1 turns colour off): below it the colours do not tell
    # the target from what is around it and motion alone decides.
    min_informative: float = 0.2
    # How far (px per side) the colour search may move the box in one frame: enough to undo the
    # slow slide of flow onto an occluder, too little to jump to another thing of those colours.
    search_px: float = 2.0
    # The colour search moves the box only to a window this share of which has the target's colours.
    min_colour: float = 0.15
    # Cost of the colour search moving the box by its own diagonal (in mean likelihood units).
    move_cost: float = 0.5
    # Size change the colour search may make per frame (1 keeps the flow's size) ...
    scale_step: float = 1.0
    # ... and what it costs, per pixel of the window (in likelihood units).
    scale_cost: float = 0.01
    # Re-detection: when the box looks less than this much like the target did on the keyframe
    # (its colour score against the whole keyframe's colours; flow followed something else off
    # the object, as a gripper that lets go of it), the whole frame is searched (0: never) ...
    recover_below: float = 0.6
    # ... and the box moves to the best window only where that scores at least this share of
    # the keyframe's. Where flow finds too little texture to follow, a box that still scores this
    # much is carried by colour instead of being called lost.
    recover_full: float = 0.7
    # ... or, within a box's size of where flow put it, at least this share (0: never).
    recover_near: float = 0.3
    # Re-detection is used only where the keyframe's box scores at least this (of 0.5): its
    # colours are found little elsewhere in the keyframe. Another object of the same colours
    # there (two red cubes) leaves flow alone to decide, rather than a jump between the two.
    min_distinct: float = 0.1

    def __post_init__(self) -> None:
        if self.coast < 0:
            raise ValueError(f"MedianFlowParams.coast = {self.coast}: must be >= 0")
        if self.grid < 3:
            raise ValueError(f"MedianFlowParams.grid = {self.grid}: must be >= 3")
        for name in ("max_fb", "lost_fb", "min_side"):
            if getattr(self, name) <= 0:
                raise ValueError(f"MedianFlowParams.{name} = {getattr(self, name)}: must be > 0")
        if not 0 < self.min_reliable < 1 or not 0 < self.min_visible <= 1:
            raise ValueError("MedianFlowParams.min_reliable and min_visible must be in (0, 1]")
        if self.max_scale_step <= 1:
            raise ValueError(f"MedianFlowParams.max_scale_step = {self.max_scale_step}: must be > 1")
        if not 0 <= self.scale_voters <= 1:
            raise ValueError(f"MedianFlowParams.scale_voters = {self.scale_voters}: must be in [0, 1]")
        if not 0 < self.min_informative <= 1 or self.search_px < 0 or self.move_cost < 0:
            raise ValueError("MedianFlowParams: min_informative in (0, 1], search_px and move_cost >= 0")
        if self.scale_step < 1 or self.scale_cost < 0 or not 0 <= self.min_colour <= 1:
            raise ValueError("MedianFlowParams: scale_step >= 1, scale_cost >= 0, min_colour in [0, 1]")
        if (
            not 0 <= self.recover_below <= 1
            or not 0 < self.recover_full <= 1
            or not 0 <= self.recover_near <= 1
            or not 0 <= self.min_distinct <= 0.5
        ):
            raise ValueError(
                "MedianFlowParams: recover_below and recover_near in [0, 1], recover_full in (0, 1], "
                "min_distinct in [0, 0.5]"
            )


class MedianFlowBox(Tracker):
    def __init__(self, params: MedianFlowParams | None = None) -> None:
        self.p = params or MedianFlowParams()
        self.prev: np.ndarray | None = None
        self.box = np.zeros(4)

    def start(self, frame: np.ndarray, value: tuple[float, ...]) -> None:
        h, w = frame.shape[:2]
        self.box = np.array(check_value("box", value, w, h, "the box to track"), float)
        self.prev = to_gray(frame)
        self.velocity = np.zeros(2)
        self.coasted = 0
        self.prev_rgb: np.ndarray | None = None
        self.colour: ColourModel | None = None
        if frame.ndim == 3 and self.p.min_informative < 1:
            model = ColourModel(frame, self.box)
            if model.informative(frame, self.box) >= self.p.min_informative:
                self.colour, self.prev_rgb = model, frame
                # Re-detection weighs the target's colours against the whole frame's, so that
                # only colours found nowhere else on the keyframe point at it.
                self.detector = ColourModel(frame, self.box, ring=float(frame.shape[0] * frame.shape[1]))
                self.score0 = self._score(frame, self.box)

    def _grid(self) -> np.ndarray:
        x1, y1, x2, y2 = self.box
        n = self.p.grid
        xs = np.linspace(x1, x2, n + 2)[1:-1]
        ys = np.linspace(y1, y2, n + 2)[1:-1]
        gx, gy = np.meshgrid(xs, ys)
        return np.stack([gx.ravel(), gy.ravel()], axis=1).astype(np.float32)

    def update(self, frame: np.ndarray) -> Step:
        if self.prev is None:
            raise RuntimeError("MedianFlowBox.update before start")
        prev, cur = self.prev, to_gray(frame)
        prev_rgb = self.prev_rgb
        self.prev = cur
        if self.colour is not None:
            self.prev_rgb = frame
        h, w = cur.shape
        if scene_changed(prev, cur):
            return Step(tuple(float(v) for v in self.box), 0.0, lost=True, reason="the scene changed (a cut)")
        pts = self._grid()
        flow = track_points(prev, cur, pts, max_fb=self.p.max_fb)
        value = tuple(float(v) for v in self.box)
        n = len(pts)
        reliable = int(flow.ok.sum())
        conf = reliable / n
        finite = np.isfinite(flow.fb)
        median_fb = float(np.median(flow.fb[finite])) if finite.any() else float("inf")
        if median_fb > self.p.lost_fb or reliable < max(2, self.p.min_reliable * n):
            if self.colour is not None and self._score(frame, self.box) >= self.p.recover_full * self.score0:
                # Flow found too little texture to follow (a flat face, blur) but the box still
                # shows the target's colours as the keyframe did: colour alone carries it.
                bw, bh = self.box[2] - self.box[0], self.box[3] - self.box[1]
                self.box = self._colour_search(frame, self.box, self.p.search_px + 0.1 * max(bw, bh))
                self.coasted = 0
                return Step(tuple(float(v) for v in self.box), 0.5 * conf)
            found = self._found_again(frame) if self._can_redetect() else None
            if found is not None:
                # Flow broke (the target moved too fast, or whatever covers it did), but a
                # window elsewhere in the frame shows the target as fully as the keyframe did.
                self.box = found
                self.coasted = 0
                return Step(tuple(float(v) for v in self.box), 0.5 * conf)
            if self.coasted < self.p.coast:
                # One bad frame (a compression artefact, a flash of glare) breaks flow for a
                # moment: the box goes on with its last motion, trusted with nothing, and flow
                # starts again from there. The track stops at the last good frame if flow does
                # not come back within `coast` frames.
                self.coasted += 1
                self.box = self.box + np.r_[self.velocity, self.velocity]
                return Step(tuple(float(v) for v in self.box), 0.0, guessed=True)
            return Step(value, conf, lost=True, reason=f"forward-backward check failed ({median_fb:.1f} px)")
        self.coasted = 0
        ok = flow.ok
        if self.colour is not None and prev_rgb is not None:
            # Only points on the target's colours vote, while enough of them are seen: a
            # gripper over the object, or the table showing through, moves otherwise.
            ix = np.clip(pts[:, 0].astype(int), 0, w - 1)
            iy = np.clip(pts[:, 1].astype(int), 0, h - 1)
            on_target = self.colour.likelihood(prev_rgb[iy, ix]) > 0.5
            if (ok & on_target).sum() >= max(3, 0.05 * n):
                ok = ok & on_target
        # Kalal's filter: the better half by round trip, then the better half by appearance.
        ok = ok & (flow.fb <= np.median(flow.fb[ok]))
        a, b = pts[ok], flow.new[ok]
        ncc = patch_ncc(prev, cur, a, b)
        keep = ncc >= np.median(ncc)
        if keep.sum() >= 2:
            a, b = a[keep], b[keep]
        d = np.median(b - a, axis=0)
        self.velocity = d
        scale = 1.0
        if len(a) >= max(2, self.p.scale_voters * n):
            i, j = np.triu_indices(len(a), 1)
            da = np.linalg.norm(a[i] - a[j], axis=1)
            db = np.linalg.norm(b[i] - b[j], axis=1)
            sel = da > 1.0
            if sel.any():
                scale = float(np.median(db[sel] / da[sel]))
        if not 1 / self.p.max_scale_step <= scale <= self.p.max_scale_step:
            scale = 1.0
        x1, y1, x2, y2 = self.box
        cx, cy = (x1 + x2) / 2 + d[0], (y1 + y2) / 2 + d[1]
        bw, bh = (x2 - x1) * scale, (y2 - y1) * scale
        self.box = np.array([cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2])
        if self.colour is not None and min(bw, bh) >= self.p.min_side:
            if self._can_redetect() and self._score(frame, self.box) < self.p.recover_below * self.score0:
                # Flow has left the object. Where a window anywhere in the frame shows the
                # target about as fully as the keyframe did, it is there (re-detection, as
                # TLD does); where none does, it is hidden and flow still decides.
                found = self._found_again(frame)
                if found is not None:
                    self.box = found
                elif self.p.recover_near > 0:
                    # Not as fully as on the keyframe (lit differently, half under a gripper):
                    # within a box's size of where flow put it, a window that shows the target
                    # clearly is still the target flow slid off.
                    near = self._colour_search(frame, self.box, float(max(bw, bh)), 0.0, self.detector)
                    if self._score(frame, near) >= self.p.recover_near * self.score0:
                        self.box = near
            self.box = self._colour_search(frame, self.box, self.p.search_px)
        value = tuple(float(v) for v in self.box)
        if min(bw, bh) < self.p.min_side or bw > 4 * w or bh > 4 * h:
            return Step(value, conf, lost=True, reason="the box collapsed or grew past the frame")
        ix = max(0.0, min(self.box[2], w) - max(self.box[0], 0.0))
        iy = max(0.0, min(self.box[3], h) - max(self.box[1], 0.0))
        if ix * iy < self.p.min_visible * bw * bh:
            return Step(value, conf, lost=True, reason="the target left the frame")
        return Step(value, conf)

    def _can_redetect(self) -> bool:
        """Re-detection is on, and the keyframe's colours are rare enough in its frame for it."""
        return self.colour is not None and self.p.recover_below > 0 and self.score0 >= self.p.min_distinct

    def _found_again(self, frame: np.ndarray) -> np.ndarray | None:
        """The best window of the box's size in the whole frame, where it shows the target at
        least `recover_full` as fully as the keyframe did; else None."""
        found = self._detect(frame, self.box)
        return found if self._score(frame, found) >= self.p.recover_full * self.score0 else None

    def _detect(self, frame: np.ndarray, box: np.ndarray, stride: int = 4) -> np.ndarray:
        """The window of the box's size that looks most like the target anywhere in the frame.

        Searched on every `stride`-th pixel (16x fewer at 4: a box-sized window of the target
        still stands out), then refined at full resolution within a stride around it.
        """
        x1, y1, x2, y2 = box
        bw, bh = x2 - x1, y2 - y1
        lik = self.detector.likelihood(frame[::stride, ::stride]).astype(np.float64) - 0.5
        iw, ih = max(1, round(float(bw) / stride)), max(1, round(float(bh) / stride))
        if iw >= lik.shape[1] or ih >= lik.shape[0]:
            return box
        integral = np.pad(lik.cumsum(0).cumsum(1), ((1, 0), (1, 0)))
        sums = integral[ih:, iw:] - integral[:-ih, iw:] - integral[ih:, :-iw] + integral[:-ih, :-iw]
        j, i = np.unravel_index(int(np.argmax(sums)), sums.shape)
        cx, cy = (i + iw / 2) * stride, (j + ih / 2) * stride
        coarse = np.array([cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2])
        return self._colour_search(frame, coarse, float(stride), 0.0, self.detector)

    def _score(self, frame: np.ndarray, box: np.ndarray) -> float:
        """How much the box looks like the target against the whole keyframe (the detector's
        colours): the colour search's window score, per pixel, in [-0.5, 0.5]."""
        x1, y1, x2, y2 = crop(frame.shape, box)
        if x2 <= x1 or y2 <= y1:
            return 0.0
        return float((self.detector.likelihood(frame[y1:y2, x1:x2]) - 0.5).mean())

    def _colour_search(
        self,
        frame: np.ndarray,
        box: np.ndarray,
        reach: float,
        move_cost: float | None = None,
        model: ColourModel | None = None,
    ) -> np.ndarray:
        """The window near `box` that holds the most target colour, less a cost of moving.

        A window scores the sum of (likelihood - 0.5) over its pixels: target colours add,
        colours of the surroundings subtract, unknown ones count 0, so the best window
        covers the target's colours and no more. Moving from `box` costs `move_cost` times
        the window's area per diagonal squared; the size may change by one `scale_step`.
        """
        assert self.colour is not None
        x1, y1, x2, y2 = box
        bw, bh = x2 - x1, y2 - y1
        cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
        step = self.p.scale_step
        rx = (step - 1) * bw + reach
        ry = (step - 1) * bh + reach
        X1, Y1, X2, Y2 = crop(frame.shape, np.array([x1 - rx, y1 - ry, x2 + rx, y2 + ry]))
        if X2 - X1 < 2 or Y2 - Y1 < 2:
            return box
        lik = (model or self.colour).likelihood(frame[Y1:Y2, X1:X2]).astype(np.float64) - 0.5
        integral = np.pad(lik.cumsum(0).cumsum(1), ((1, 0), (1, 0)))
        positive = np.pad(np.maximum(lik, 0.0).cumsum(0).cumsum(1), ((1, 0), (1, 0)))
        diag2 = bw * bw + bh * bh
        cost = self.p.move_cost if move_cost is None else move_cost
        best, best_box = -np.inf, box
        for s in (1.0, step, 1.0 / step) if step > 1 else (1.0,):
            iw, ih = round(float(bw * s)), round(float(bh * s))
            if iw < 1 or ih < 1 or iw >= X2 - X1 or ih >= Y2 - Y1:
                continue
            sums = integral[ih:, iw:] - integral[:-ih, iw:] - integral[ih:, :-iw] + integral[:-ih, :-iw]
            # Windows that show little of the target's colours (it is hidden, or gone) say nothing.
            seen = positive[ih:, iw:] - positive[:-ih, iw:] - positive[ih:, :-iw] + positive[:-ih, :-iw]
            sums = np.where(seen >= 0.5 * self.p.min_colour * iw * ih, sums, -np.inf)
            ys, xs = np.mgrid[0 : sums.shape[0], 0 : sums.shape[1]]
            # the window at (xs, ys) spans X1 + xs .. X1 + xs + iw; its centre's move from the box's:
            dx, dy = X1 + xs + iw / 2 - cx, Y1 + ys + ih / 2 - cy
            score = sums - cost * iw * ih * (dx * dx + dy * dy) / diag2
            if s != 1.0:
                score = score - self.p.scale_cost * iw * ih
            j = np.unravel_index(int(np.argmax(score)), score.shape)
            if np.isfinite(score[j]) and score[j] > best:
                nx, ny, hw, hh = cx + dx[j], cy + dy[j], bw * s / 2, bh * s / 2
                best, best_box = float(score[j]), np.array([nx - hw, ny - hh, nx + hw, ny + hh])
        return best_box


class CpuTrackEngine(TrackEngine):
    """The default engine: median flow for boxes, foreground point voting for points."""

    name = "cpu"
    version = "4"

    def __init__(self, **options) -> None:
        unknown = sorted(set(options) - {"box", "point"})
        if unknown:
            raise ValueError(f"the cpu tracker has no option(s) {unknown}; known: box, point")
        self.box_params = MedianFlowParams(**options.get("box", {}))
        from backend.tracking.point import ForegroundPointParams

        self.point_params = ForegroundPointParams(**options.get("point", {}))

    def _make(self, kind: str, target: TargetInfo) -> Tracker:
        if kind == "box":
            return MedianFlowBox(self.box_params)
        from backend.tracking.point import ForegroundPoint

        return ForegroundPoint(self.point_params)
