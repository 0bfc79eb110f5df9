"""Draw the simulated scene from pinhole cameras, and project ground truth.

Solids are convex polyhedra drawn back to front (painter's algorithm) with
Lambert shading and contact shadows. The same `Camera.project` that draws a
frame also produces the ground-truth boxes and gripper points, so labels and
pixels cannot disagree.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from core.demo.scene import EpisodeTrace, Item

TABLE_RGB = np.array([176, 138, 98])
ARM_RGB = (205, 208, 214)
FINGER_RGB = (60, 62, 70)


@dataclass(frozen=True)
class Camera:
    name: str
    eye: tuple[float, float, float]
    target: tuple[float, float, float]
    up: tuple[float, float, float]
    fov_deg: float
    width: int
    height: int
    rot: np.ndarray = field(init=False, repr=False, compare=False)
    focal: float = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        eye, target, up = (np.asarray(v, dtype=float) for v in (self.eye, self.target, self.up))
        fwd = target - eye
        fwd /= np.linalg.norm(fwd)
        right = np.cross(fwd, up)
        right /= np.linalg.norm(right)
        down = np.cross(fwd, right)
        object.__setattr__(self, "rot", np.stack([right, down, fwd]))
        object.__setattr__(self, "focal", (self.width / 2) / np.tan(np.radians(self.fov_deg) / 2))

    def to_camera(self, pts: np.ndarray) -> np.ndarray:
        return (np.asarray(pts, dtype=float) - np.asarray(self.eye)) @ self.rot.T

    def project(self, pts: np.ndarray) -> np.ndarray:
        """World points (N, 3) to pixel coordinates (N, 2)."""
        pc = self.to_camera(pts)
        z = np.maximum(pc[:, 2], 1e-6)
        u = self.focal * pc[:, 0] / z + self.width / 2
        v = self.focal * pc[:, 1] / z + self.height / 2
        return np.stack([u, v], axis=1)

    def normalized(self, pts: np.ndarray) -> np.ndarray:
        """World points to [0, 1] image coordinates (clipped)."""
        uv = self.project(pts) / [self.width, self.height]
        return np.clip(uv, 0.0, 1.0)


def default_cameras(width: int, height: int) -> list[Camera]:
    """A front view from across the table and a top view, like a typical tabletop rig."""
    return [
        Camera("front", (0.0, -0.62, 0.42), (0.0, 0.04, 0.03), (0, 0, 1), 56.0, width, height),
        Camera("top", (0.0, -0.30, 0.86), (0.0, 0.0, 0.0), (0, 1, 0), 50.0, width, height),
    ]


@dataclass
class Solid:
    """A convex polyhedron: vertices (N, 3), faces as vertex index lists, a colour."""

    vertices: np.ndarray
    faces: list[tuple[int, ...]]
    rgb: tuple[int, int, int]
    top_rgb: tuple[int, int, int] | None = None

    @property
    def center(self) -> np.ndarray:
        return self.vertices.mean(axis=0)


def _rot_z(yaw: float) -> np.ndarray:
    c, s = np.cos(yaw), np.sin(yaw)
    return np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])


def box_solid(
    center: np.ndarray, size: tuple[float, float, float], axes: np.ndarray, rgb, top_rgb=None
) -> Solid:
    """An oriented box: `axes` (3, 3) has the box's unit axes as rows."""
    h = np.asarray(size) / 2
    signs = np.array([[sx, sy, sz] for sx in (-1, 1) for sy in (-1, 1) for sz in (-1, 1)])
    verts = np.asarray(center) + (signs * h) @ axes
    faces = [(0, 1, 3, 2), (4, 5, 7, 6), (0, 1, 5, 4), (2, 3, 7, 6), (0, 2, 6, 4), (1, 3, 7, 5)]
    return Solid(verts, faces, rgb, top_rgb)


def prism_solid(
    center: np.ndarray, radius: float, height: float, rgb, sides: int = 18, top_rgb=None
) -> Solid:
    ang = np.linspace(0, 2 * np.pi, sides, endpoint=False)
    ring = np.stack([np.cos(ang) * radius, np.sin(ang) * radius, np.zeros(sides)], 1)
    bottom = np.asarray(center) + ring - [0, 0, height / 2]
    top = np.asarray(center) + ring + [0, 0, height / 2]
    verts = np.concatenate([bottom, top])
    faces = [tuple(range(sides)), tuple(range(sides, 2 * sides))]
    faces += [(i, (i + 1) % sides, sides + (i + 1) % sides, sides + i) for i in range(sides)]
    return Solid(verts, faces, rgb, top_rgb)


def beam_solid(p0: np.ndarray, p1: np.ndarray, thickness: float, rgb) -> Solid:
    axis = np.asarray(p1, float) - np.asarray(p0, float)
    length = float(np.linalg.norm(axis))
    a = axis / max(length, 1e-9)
    ref = np.array([0, 0, 1.0]) if abs(a[2]) < 0.9 else np.array([1.0, 0, 0])
    b = np.cross(a, ref)
    b /= np.linalg.norm(b)
    c = np.cross(a, b)
    return box_solid(
        (np.asarray(p0) + np.asarray(p1)) / 2, (length, thickness, thickness), np.stack([a, b, c]), rgb
    )


def item_solid(item: Item, center: np.ndarray, yaw: float) -> Solid:
    w, d, h = item.size
    rgb = item.rgb
    if item.shape == "cylinder":
        return prism_solid(center, w / 2, h, rgb)
    if item.shape == "bowl":
        inner = tuple(int(c * 0.55) for c in rgb)
        return prism_solid(center, w / 2, h, rgb, sides=24, top_rgb=inner)
    if item.shape == "plate":
        return prism_solid(center, w / 2, h, tuple(min(255, int(c * 1.1 + 20)) for c in rgb), sides=24)
    return box_solid(center, (w, d, h), _rot_z(yaw).T, rgb)


def _two_link_elbow(shoulder: np.ndarray, wrist: np.ndarray, l1: float, l2: float) -> np.ndarray:
    """Elbow of a planar two-link arm reaching from shoulder to wrist, elbow up."""
    v = wrist - shoulder
    dist = float(np.clip(np.linalg.norm(v), 1e-6, l1 + l2 - 1e-6))
    u = v / np.linalg.norm(v)
    a = (l1**2 - l2**2 + dist**2) / (2 * dist)
    h = np.sqrt(max(l1**2 - a**2, 0.0))
    horiz = np.array([u[0], u[1], 0.0])
    perp = np.cross(np.cross(u, [0, 0, 1.0]), u) if np.linalg.norm(horiz) > 1e-6 else np.array([1.0, 0, 0])
    perp /= np.linalg.norm(perp)
    return shoulder + a * u + h * perp


def gripper_solids(tip: np.ndarray, yaw: float, opening: float) -> list[Solid]:
    """Two fingers, a palm and a two-link arm mounted behind the table."""
    r = _rot_z(yaw)
    x_axis, y_axis = r[:, 0], r[:, 1]
    axes = np.stack([x_axis, y_axis, [0, 0, 1.0]])
    solids = []
    for side in (-1, 1):
        c = tip + side * (opening / 2 + 0.006) * x_axis + [0, 0, 0.022]
        solids.append(box_solid(c, (0.012, 0.024, 0.06), axes, FINGER_RGB))
    palm = tip + np.array([0, 0, 0.058])
    solids.append(box_solid(palm, (OPEN_PALM, 0.026, 0.02), axes, ARM_RGB))
    wrist = tip + np.array([0, 0, 0.11])
    solids.append(beam_solid(palm, wrist, 0.02, ARM_RGB))
    shoulder = np.array([0.0, 0.46, 0.30])
    elbow = _two_link_elbow(shoulder, wrist, 0.36, 0.34)
    solids.append(beam_solid(wrist, elbow, 0.024, ARM_RGB))
    solids.append(beam_solid(elbow, shoulder, 0.03, ARM_RGB))
    solids.append(beam_solid(shoulder, np.array([0.0, 0.46, -0.02]), 0.05, (120, 124, 132)))
    return solids


OPEN_PALM = 0.105


def _convex_hull(points: np.ndarray) -> np.ndarray:
    pts = sorted(map(tuple, points))
    if len(pts) <= 2:
        return np.array(pts)

    def cross(o, a, b):
        return (a[0] - o[0]) * (b[1] - o[1]) - (a[1] - o[1]) * (b[0] - o[0])

    lower: list = []
    for p in pts:
        while len(lower) >= 2 and cross(lower[-2], lower[-1], p) <= 0:
            lower.pop()
        lower.append(p)
    upper: list = []
    for p in reversed(pts):
        while len(upper) >= 2 and cross(upper[-2], upper[-1], p) <= 0:
            upper.pop()
        upper.append(p)
    return np.array(lower[:-1] + upper[:-1])


class SceneRenderer:
    """Renders an `EpisodeTrace` frame by frame for one camera."""

    def __init__(self, camera: Camera, trace: EpisodeTrace, seed: int = 0) -> None:
        self.camera = camera
        self.trace = trace
        spec = trace.spec
        self.light = np.asarray(spec.light)
        self.brightness = spec.brightness
        self.background = self._background(np.random.default_rng(seed))
        self.static = [
            item_solid(spec.target, np.array([*spec.target.xy, spec.target.size[2] / 2]), spec.target.yaw)
        ]
        for item in spec.distractors:
            self.static.append(item_solid(item, np.array([*item.xy, item.size[2] / 2]), item.yaw))

    def _background(self, rng: np.random.Generator) -> Image.Image:
        cam = self.camera
        w, h = cam.width, cam.height
        grad = np.linspace(70, 40, h)[:, None, None] * np.ones((1, w, 3)) * [0.95, 1.0, 1.08]
        img = Image.fromarray(np.clip(grad * self.brightness, 0, 255).astype(np.uint8))
        draw = ImageDraw.Draw(img)
        corners = np.array([[-0.45, -0.32, 0], [0.45, -0.32, 0], [0.45, 0.55, 0], [-0.45, 0.55, 0]])
        pc = cam.to_camera(corners)
        if np.all(pc[:, 2] > 0):
            poly = [tuple(p) for p in cam.project(corners)]
            draw.polygon(poly, fill=tuple(int(c) for c in np.clip(TABLE_RGB * self.brightness, 0, 255)))
        # Low-frequency grain: texture for the eye without costing the encoder.
        arr = np.asarray(img).astype(np.int16)
        grain = rng.normal(0, 6, size=(h // 8 + 1, w // 8 + 1, 1)).repeat(8, 0).repeat(8, 1)[:h, :w]
        grain_img = Image.fromarray(np.clip(grain[:, :, 0] + 128, 0, 255).astype(np.uint8))
        grain = np.asarray(grain_img.filter(ImageFilter.GaussianBlur(4))).astype(np.int16)[:, :, None] - 128
        return Image.fromarray(np.clip(arr + grain, 0, 255).astype(np.uint8))

    def _draw_solid(self, draw: ImageDraw.ImageDraw, solid: Solid) -> None:
        cam = self.camera
        verts = solid.vertices
        uv = cam.project(verts)
        first = np.array([f[:3] for f in solid.faces])
        a, b, c = verts[first[:, 0]], verts[first[:, 1]], verts[first[:, 2]]
        normals = np.cross(b - a, c - a)
        normals /= np.maximum(np.linalg.norm(normals, axis=1, keepdims=True), 1e-12)
        centers = np.array([verts[list(f)].mean(axis=0) for f in solid.faces])
        outward = np.einsum("ij,ij->i", normals, centers - solid.center) < 0
        normals[outward] *= -1
        visible = np.einsum("ij,ij->i", normals, np.asarray(cam.eye) - centers) > 0
        shade = (0.42 + 0.58 * np.maximum(normals @ self.light, 0.0)) * self.brightness
        for k in np.flatnonzero(visible):
            rgb = solid.top_rgb if (solid.top_rgb is not None and normals[k, 2] > 0.9) else solid.rgb
            fill = tuple(int(min(255, ch * shade[k])) for ch in rgb)
            draw.polygon([tuple(p) for p in uv[list(solid.faces[k])]], fill=fill)

    def _draw_shadow(self, draw: ImageDraw.ImageDraw, solid: Solid) -> None:
        base = solid.vertices.copy()
        lift = np.maximum(base[:, 2], 0.0)
        base[:, :2] -= self.light[:2] / max(self.light[2], 0.3) * lift[:, None] * 0.35
        base[:, 2] = 0.0005
        hull = _convex_hull(self.camera.project(base))
        if len(hull) >= 3:
            k = 0.62 * self.brightness
            draw.polygon([tuple(p) for p in hull], fill=tuple(int(c * k) for c in TABLE_RGB))

    def solids_at(self, i: int) -> list[Solid]:
        tr = self.trace
        obj = item_solid(tr.spec.obj, tr.obj_pos[i], float(tr.obj_yaw[i]))
        return [*self.static, obj, *gripper_solids(tr.ee[i], float(tr.yaw[i]), float(tr.opening[i]))]

    def frame(self, i: int) -> np.ndarray:
        img = self.background.copy()
        draw = ImageDraw.Draw(img)
        solids = self.solids_at(i)
        for s in solids:
            if s.vertices[:, 2].min() < 0.6:
                self._draw_shadow(draw, s)
        eye = np.asarray(self.camera.eye)
        for s in sorted(solids, key=lambda s: -float(np.linalg.norm(s.center - eye))):
            self._draw_solid(draw, s)
        return np.asarray(img)

    # ------------------------------------------------------------ ground truth

    def object_box(self, i: int) -> list[float]:
        tr = self.trace
        verts = item_solid(tr.spec.obj, tr.obj_pos[i], float(tr.obj_yaw[i])).vertices
        uv = self.camera.normalized(verts)
        return [float(uv[:, 0].min()), float(uv[:, 1].min()), float(uv[:, 0].max()), float(uv[:, 1].max())]

    def target_box(self) -> list[float]:
        uv = self.camera.normalized(self.static[0].vertices)
        return [float(uv[:, 0].min()), float(uv[:, 1].min()), float(uv[:, 0].max()), float(uv[:, 1].max())]

    def gripper_point(self, i: int) -> list[float]:
        x, y = self.camera.normalized(self.trace.ee[i][None])[0]
        return [float(x), float(y)]
