"""The CPU point tracker: a point follows the features near it that move on their own.

A trajectory point is the gripper's fingertip centre. What is at that pixel is
usually not the gripper at all but whatever shows between the fingers (table,
wall, the object), so tracking the pixel itself (plain Lucas-Kanade on one point:
35 px median error on the demo, the issue measured 21 px) follows the background.
Instead the tracker keeps a set of member features around the point that have
been seen moving with it, each with its offset to the point, and the point is
where the members vote it to be (a consensus of member + offset, with the group's
scale and rotation, as in CMT, Nebehay & Pflugfelder 2015), so per-frame errors do
not accumulate into drift.

Which features are members is decided by motion, not by looks: the background's
own motion is fitted on a grid over the whole frame (`flow.BackgroundMotion`), and
a feature becomes a member only when it moves differently from the background and
with the point. Before anything moves, nothing is a member and the point stays
where the background says (still, for a static camera); on a wrist camera the
background flows and the gripper is the part that does not. Features at the image
border are ignored (a body cut by the border has a static silhouette there).

Measured on the 640x480 demo from the true point on the first frame only
(median / mean error over every frame): hold 152 px, single-point LK 35 / 61 px,
this tracker 6.0 / 7.7 px (bench/tracking.py has the current figures).

The members' motion since the canonical frame is a full affine, fitted to them
with RANSAC each frame and accumulated, not a scale and rotation: a gripper that
pitches towards the camera foreshortens along one axis, and a similarity then
leaves the fingertip 10-25 px off. Median error from the first frame
(bench/tracking.py): single-ee 10.2 -> 8.5 px, single-joint 9.0 -> 8.7,
bimanual 13.0 -> 12.1. Measured and left out: narrower or wider voting weights
(`near_share` 0.15-1.0) and feature radii (0.07-0.14), which only trade one robot
for another, and a looser RANSAC threshold (2 px: 9.6 / 9.8 / 11.7).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from backend.tracking.base import Step, Tracker, check_value
from backend.tracking.flow import (
    BackgroundMotion,
    apply_affine,
    good_features,
    scene_changed,
    to_gray,
    track_points,
    weighted_median,
)


@dataclass(frozen=True)
class ForegroundPointParams:
    """Knobs of the point tracker."""

    # Features are taken within this radius of the point, as a share of the frame's longer side.
    radius: float = 0.1
    # New candidate features are looked for every this many frames (and whenever few are left).
    reseed_every: int = 3
    # Candidate features looked for per reseed.
    features: int = 40
    # Features closer than this to the image border (px) are ignored.
    margin: int = 8
    # A member's vote within this many pixels of the consensus counts (more if the votes spread).
    agree_px: float = 2.0
    # A feature that moved this far (px) off the background since it was found is a mover.
    move_px: float = 1.5
    # Member pairs closer than this (px) say nothing reliable about scale and rotation.
    pair_px: float = 10.0
    # Members vote with a weight falling off with their distance to the point: a Gaussian of
    # this width (share of the feature radius); near ones turn with the point, far ones less.
    near_share: float = 0.5
    # The members' motion is a full affine (a gripper pitching towards the camera foreshortens)
    # rather than a similarity (False: scale and rotation, as CMT).
    affine: bool = True
    # Frames in a row with no usable flow at all (a cut, a broken frame) before the target is lost.
    lost_after: int = 2

    def __post_init__(self) -> None:
        if not 0 < self.radius <= 0.5:
            raise ValueError(f"ForegroundPointParams.radius = {self.radius}: must be in (0, 0.5]")
        if self.reseed_every < 1 or self.features < 4 or self.lost_after < 1:
            raise ValueError("ForegroundPointParams: reseed_every, lost_after >= 1 and features >= 4")
        if self.margin < 0 or self.agree_px <= 0:
            raise ValueError("ForegroundPointParams: margin >= 0 and agree_px > 0")


def _rotation(theta: float) -> np.ndarray:
    c, s = np.cos(theta), np.sin(theta)
    return np.array([[c, -s], [s, c]])


class ForegroundPoint(Tracker):
    def __init__(self, params: ForegroundPointParams | None = None) -> None:
        self.p = params or ForegroundPointParams()
        self.prev: np.ndarray | None = None

    def start(self, frame: np.ndarray, value: tuple[float, ...]) -> None:
        h, w = frame.shape[:2]
        self.size = (w, h)
        self.point = np.array(check_value("point", value, w, h, "the point to track"), float)
        self.R = self.p.radius * max(w, h)
        self.prev = to_gray(frame)
        self.background = BackgroundMotion(w, h)
        self.frames = 0
        self.failed = 0
        # The group's scale and rotation since the canonical frame (offsets are stored in it).
        self.scale, self.theta = 1.0, 0.0
        self.G = np.eye(2)
        # Per feature: position, where the background alone would have taken it since it was
        # found, its offset to the point (canonical frame), and whether it is a member.
        self.pos = np.zeros((0, 2))
        self.bgpos = np.zeros((0, 2))
        self.offset = np.zeros((0, 2))
        self.member = np.zeros(0, bool)
        self._reseed(self.prev)

    # ------------------------------------------------------------ features

    def _group(self) -> np.ndarray:
        if self.p.affine:
            return self.G
        return self.scale * _rotation(self.theta)

    def _reseed(self, gray: np.ndarray) -> None:
        m = self.p.margin
        mask = np.zeros_like(gray)
        cv2.circle(mask, (int(self.point[0]), int(self.point[1])), int(self.R), 255, -1)
        if m:
            mask[:m], mask[-m:], mask[:, :m], mask[:, -m:] = 0, 0, 0, 0
        for q in self.pos:
            cv2.circle(mask, (int(q[0]), int(q[1])), 5, 0, -1)
        fresh = good_features(gray, mask, self.p.features, min_distance=5.0).astype(np.float64)
        if not len(fresh):
            return
        inv = np.linalg.inv(self._group())
        self.pos = np.concatenate([self.pos, fresh])
        self.bgpos = np.concatenate([self.bgpos, fresh])
        self.offset = np.concatenate([self.offset, (self.point - fresh) @ inv.T])
        self.member = np.concatenate([self.member, np.zeros(len(fresh), bool)])

    def _keep(self, mask: np.ndarray) -> None:
        self.pos, self.bgpos = self.pos[mask], self.bgpos[mask]
        self.offset, self.member = self.offset[mask], self.member[mask]

    def _inside(self, pts: np.ndarray) -> np.ndarray:
        w, h = self.size
        m = self.p.margin
        return (pts[:, 0] >= m) & (pts[:, 0] < w - m) & (pts[:, 1] >= m) & (pts[:, 1] < h - m)

    # ------------------------------------------------------------ one frame

    def update(self, frame: np.ndarray) -> Step:
        if self.prev is None:
            raise RuntimeError("ForegroundPoint.update before start")
        prev, cur = self.prev, to_gray(frame)
        self.prev = cur
        self.frames += 1
        w, h = self.size
        if scene_changed(prev, cur):
            return Step(
                (float(self.point[0]), float(self.point[1])),
                0.0,
                lost=True,
                reason="the scene changed (a cut)",
            )
        bg = self.background.estimate(prev, cur, self.point, 1.5 * self.R)
        thr = max(0.5, 3.0 * bg.noise)
        p_bg = apply_affine(bg.transform, self.point)

        flow = track_points(prev, cur, self.pos)
        ok = flow.ok & self._inside(flow.new) if len(self.pos) else flow.ok
        self.failed = self.failed + 1 if (not ok.any() and bg.noise >= 1.0) else 0
        old = self.pos[ok]
        self._keep(ok)
        self.pos = flow.new[ok].astype(np.float64)
        self.bgpos = apply_affine(bg.transform, self.bgpos) if len(self.bgpos) else self.bgpos
        # How far each feature has moved on its own (off the background) since it was found:
        # noise does not add up to this, a slow start does.
        independent = np.linalg.norm(self.pos - self.bgpos, axis=1)
        mover = independent > max(self.p.move_px, thr)
        if self.member.sum() >= 3:
            self._update_group(old[self.member], self.pos[self.member])
        votes = self.pos + self.offset @ self._group().T
        near = np.exp(
            -np.sum((self.offset @ self._group().T) ** 2, axis=1) / (2 * (self.p.near_share * self.R) ** 2)
        )

        confidence = 0.5
        if self.member.sum() >= 2:
            estimate, inlier = _consensus(votes[self.member], near[self.member], self.p.agree_px)
            confidence = float(inlier.mean())
        elif (mover & ~self.member).sum() >= 3:
            estimate, inlier = _consensus(votes[mover], near[mover], self.p.agree_px)
            confidence = 0.5 * float(inlier.mean())
        else:
            estimate = p_bg
        tol = max(self.p.agree_px, 2.0 * thr)
        agree = np.linalg.norm(votes - estimate, axis=1) < tol
        # Movers that vote with the point join it; members that do not, leave; features that
        # still stand where the point was are kept until the point moves away from them.
        self.member = (self.member | mover) & agree
        self._keep(agree)
        self.point = np.clip(estimate, 0.0, [w - 1.0, h - 1.0])
        self._keep(np.linalg.norm(self.pos - self.point, axis=1) < 1.5 * self.R)
        if self.frames % self.p.reseed_every == 0 or len(self.pos) < 10:
            self._reseed(cur)
        value = (float(self.point[0]), float(self.point[1]))
        if self.failed >= self.p.lost_after:
            return Step(value, 0.0, lost=True, reason="no feature near the point could be followed")
        return Step(value, confidence)

    def _update_group(self, old: np.ndarray, new: np.ndarray) -> None:
        """The members' motion (affine by RANSAC, or scale and rotation as medians over pairs), accumulated."""
        if self.p.affine:
            if len(old) >= 4:
                m, _ = cv2.estimateAffine2D(old, new, ransacReprojThreshold=1.0)
                if m is not None:
                    sv = np.linalg.svd(m[:, :2], compute_uv=False)
                    if sv.min() > 0.8 and sv.max() < 1.25:
                        self.G = m[:, :2] @ self.G
            return
        i, j = np.triu_indices(len(old), 1)
        vo, vn = old[j] - old[i], new[j] - new[i]
        lo, ln = np.linalg.norm(vo, axis=1), np.linalg.norm(vn, axis=1)
        sel = lo > self.p.pair_px
        if not sel.any():
            return
        step = float(np.median(ln[sel] / lo[sel]))
        self.scale *= min(max(step, 0.8), 1.25)
        turn = np.arctan2(vn[sel, 1], vn[sel, 0]) - np.arctan2(vo[sel, 1], vo[sel, 0])
        self.theta += float(np.median((turn + np.pi) % (2 * np.pi) - np.pi))


def _consensus(votes: np.ndarray, weights: np.ndarray, agree_px: float) -> tuple[np.ndarray, np.ndarray]:
    """The weighted median of the votes, refined by the mean of those near it; and which were near."""
    centre = np.array([weighted_median(votes[:, 0], weights), weighted_median(votes[:, 1], weights)])
    spread = np.linalg.norm(votes - centre, axis=1)
    inlier = spread < max(agree_px, 3.0 * float(np.median(spread)))
    if inlier.sum() >= 2:
        centre = np.average(votes[inlier], axis=0, weights=weights[inlier])
    return centre, inlier
