"""Sparse optical flow shared by the CPU trackers: what a feature did between two frames.

Pyramidal Lucas-Kanade (OpenCV) tracks each point forwards, then the result back;
a point whose round trip does not return to where it started (the forward-backward
error of Kalal et al., "Forward-Backward Error", ICPR 2010) or whose patch changed
appearance (normalized cross-correlation) is not trusted. The background's own
motion (the camera moving, or not) is a similarity transform fitted with RANSAC to
a sparse grid of points spread over the frame, so trackers can tell a thing that
moves from the scene moving past it, on static and on moving cameras alike.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

# LK window and pyramid: 15 px windows on 4 levels follow ~60 px/frame motions at 640x480.
LK_PARAMS = {
    "winSize": (15, 15),
    "maxLevel": 3,
    "criteria": (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 20, 0.03),
}
IDENTITY = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])


def to_gray(frame: np.ndarray) -> np.ndarray:
    """An RGB (H, W, 3) or gray (H, W) uint8 frame as a contiguous gray image."""
    if frame.ndim == 2:
        return np.ascontiguousarray(frame)
    return cv2.cvtColor(np.ascontiguousarray(frame), cv2.COLOR_RGB2GRAY)


@dataclass
class Flow:
    """Where points went: `new` positions, `ok` where the round trip held, `fb` its error (px)."""

    new: np.ndarray  # (N, 2) float32
    ok: np.ndarray  # (N,) bool
    fb: np.ndarray  # (N,) float32


def track_points(prev: np.ndarray, cur: np.ndarray, pts: np.ndarray, max_fb: float = 1.0) -> Flow:
    """LK forwards and backwards; `ok` needs both to converge and a round trip under `max_fb` px."""
    pts = np.asarray(pts, np.float32).reshape(-1, 2)
    if len(pts) == 0:
        return Flow(np.zeros((0, 2), np.float32), np.zeros(0, bool), np.zeros(0, np.float32))
    new, st, _ = cv2.calcOpticalFlowPyrLK(prev, cur, pts.reshape(-1, 1, 2), None, **LK_PARAMS)
    back, st2, _ = cv2.calcOpticalFlowPyrLK(cur, prev, new, None, **LK_PARAMS)
    new = new.reshape(-1, 2)
    fb = np.linalg.norm(back.reshape(-1, 2) - pts, axis=1).astype(np.float32)
    ok = (st.ravel() == 1) & (st2.ravel() == 1) & np.isfinite(fb) & (fb < max_fb)
    return Flow(new, ok, fb)


def patch_ncc(prev: np.ndarray, cur: np.ndarray, a: np.ndarray, b: np.ndarray, radius: int = 5) -> np.ndarray:
    """Normalized cross-correlation of the (2r+1)^2 patches around a[i] in prev and b[i] in cur."""
    n = len(a)
    if n == 0:
        return np.zeros(0, np.float32)
    off = np.arange(-radius, radius + 1, dtype=np.float32)
    ox, oy = np.meshgrid(off, off)
    k = ox.size

    def sample(img: np.ndarray, p: np.ndarray) -> np.ndarray:
        mx = (p[:, 0:1] + ox.ravel()[None]).astype(np.float32)
        my = (p[:, 1:2] + oy.ravel()[None]).astype(np.float32)
        out = cv2.remap(img, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        return out.reshape(n, k).astype(np.float32)

    pa, pb = sample(prev, a), sample(cur, b)
    pa -= pa.mean(axis=1, keepdims=True)
    pb -= pb.mean(axis=1, keepdims=True)
    den = np.sqrt((pa * pa).sum(axis=1) * (pb * pb).sum(axis=1))
    num = (pa * pb).sum(axis=1)
    # A flat patch in both frames is the same patch: score it as a match, not as noise.
    return np.where(den > 1e-6, num / np.maximum(den, 1e-6), 1.0).astype(np.float32)


def apply_affine(m: np.ndarray, pts: np.ndarray) -> np.ndarray:
    """A 2x3 transform applied to (N, 2) points (or one (2,) point)."""
    pts = np.asarray(pts, np.float64)
    return pts @ m[:, :2].T + m[:, 2]


@dataclass
class Background:
    """The scene's motion between two frames and how noisy flow is on it (px)."""

    transform: np.ndarray  # 2x3 similarity: where a background pixel went
    noise: float  # median residual of the background points after the fit


class BackgroundMotion:
    """Fits the background's frame-to-frame motion from a fixed grid of points.

    The grid leaves out a disc around the tracked target (which may move on its
    own). With too few points (a blank frame, a cut) the background is taken as
    still and noisy, which makes the trackers cautious rather than confident.
    """

    def __init__(self, width: int, height: int, cols: int = 12, rows: int = 9, margin: int = 16) -> None:
        gx, gy = np.meshgrid(
            np.linspace(margin, width - margin, cols), np.linspace(margin, height - margin, rows)
        )
        self.grid = np.stack([gx.ravel(), gy.ravel()], axis=1).astype(np.float32)

    def estimate(self, prev: np.ndarray, cur: np.ndarray, exclude: np.ndarray, radius: float) -> Background:
        pts = self.grid[np.linalg.norm(self.grid - np.asarray(exclude, np.float32), axis=1) > radius]
        flow = track_points(prev, cur, pts)
        src, dst = pts[flow.ok], flow.new[flow.ok]
        if len(src) < 6:
            return Background(IDENTITY.copy(), 1.0)
        m, _inliers = cv2.estimateAffinePartial2D(src, dst, ransacReprojThreshold=1.0)
        if m is None:
            return Background(IDENTITY.copy(), 1.0)
        res = np.linalg.norm(apply_affine(m, src) - dst, axis=1)
        return Background(m, float(np.median(res)))


def good_features(
    gray: np.ndarray, mask: np.ndarray, count: int, min_distance: float = 4.0, quality: float = 0.01
) -> np.ndarray:
    """Shi-Tomasi corners inside `mask` (uint8, same size), computed on the mask's bounding box only."""
    ys, xs = np.nonzero(mask)
    if len(xs) == 0 or count <= 0:
        return np.zeros((0, 2), np.float32)
    x0, x1, y0, y1 = xs.min(), xs.max() + 1, ys.min(), ys.max() + 1
    # a few pixels of context so corners at the crop's edge are scored like any other
    pad = 3
    X0, Y0 = max(0, x0 - pad), max(0, y0 - pad)
    X1, Y1 = min(gray.shape[1], x1 + pad), min(gray.shape[0], y1 + pad)
    c = cv2.goodFeaturesToTrack(
        gray[Y0:Y1, X0:X1],
        count,
        quality,
        min_distance,
        mask=np.ascontiguousarray(mask[Y0:Y1, X0:X1]),
        blockSize=5,
    )
    if c is None:
        return np.zeros((0, 2), np.float32)
    return (c.reshape(-1, 2) + np.array([X0, Y0], np.float32)).astype(np.float32)


# Consecutive frames of one shot correlate far above this even with a robot moving through them.
CUT_CORRELATION = 0.6


def scene_changed(prev: np.ndarray, cur: np.ndarray) -> bool:
    """A cut between two frames: their 40x30 thumbnails barely correlate."""
    a = cv2.resize(prev, (40, 30), interpolation=cv2.INTER_AREA).astype(np.float32).ravel()
    b = cv2.resize(cur, (40, 30), interpolation=cv2.INTER_AREA).astype(np.float32).ravel()
    a -= a.mean()
    b -= b.mean()
    den = float(np.sqrt((a * a).sum() * (b * b).sum()))
    if den < 1e-6:  # a blank frame on either side
        return bool(np.abs(a - b).mean() > 8.0)
    return float((a * b).sum()) / den < CUT_CORRELATION


def weighted_median(values: np.ndarray, weights: np.ndarray) -> float:
    order = np.argsort(values)
    cum = np.cumsum(weights[order])
    return float(values[order][np.searchsorted(cum, cum[-1] / 2.0)])
