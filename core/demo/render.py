"""Draw the simulated scene from pinhole cameras, and project ground truth.

Solids are convex polyhedra drawn back to front (painter's algorithm) with
Lambert shading and contact shadows. The same `Camera.project` that draws a
frame also produces the ground-truth boxes and gripper points, so labels and
pixels cannot disagree. Jointed arms are drawn from their forward kinematics,
link by link; the single-ee arm is a gripper on a two-link stand-in.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from core.demo.episode import Arm, Body, Episode
from core.demo.scene import Item

FINGER_RGB = (60, 62, 70)
_BOX_SIGNS = np.array([[sx, sy, sz] for sx in (-1, 1) for sy in (-1, 1) for sz in (-1, 1)], float)
_BOX_FACES = [(0, 1, 3, 2), (4, 5, 7, 6), (0, 1, 5, 4), (2, 3, 7, 6), (0, 2, 6, 4), (1, 3, 7, 5)]
_FACES_ARR = np.array(_BOX_FACES)
_FACES_LIST = list(_FACES_ARR)


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

    def box(self, pts: np.ndarray) -> list[float] | None:
        """Normalized [x1, y1, x2, y2] around points, clipped to the image; None when wholly out of view."""
        pc = self.to_camera(pts)
        if np.all(pc[:, 2] <= 1e-3):
            return None
        uv = self.project(pts[pc[:, 2] > 1e-3]) / [self.width, self.height]
        x1, y1 = uv.min(axis=0)
        x2, y2 = uv.max(axis=0)
        if x2 < 0 or y2 < 0 or x1 > 1 or y1 > 1:
            return None
        return [float(np.clip(v, 0.0, 1.0)) for v in (x1, y1, x2, y2)]


@dataclass(frozen=True)
class Look:
    """Colours of a variant's table, background and robot."""

    table_rgb: tuple[int, int, int] = (176, 138, 98)
    table: tuple[float, float, float, float] = (-0.45, 0.45, -0.32, 0.55)  # x0, x1, y0, y1
    arm_rgb: tuple[int, int, int] = (205, 208, 214)
    joint_rgb: tuple[int, int, int] = (120, 124, 132)
    finger_rgb: tuple[int, int, int] = FINGER_RGB
    wall: tuple[float, float] = (70.0, 40.0)  # background brightness, top to bottom


@dataclass
class Solid:
    """A convex polyhedron: vertices (N, 3), faces as vertex index lists, a colour."""

    vertices: np.ndarray
    faces: list[tuple[int, ...]]
    rgb: tuple[int, int, int]
    top_rgb: tuple[int, int, int] | None = None
    bias: float = 0.0  # drawn as if this much nearer the camera (a decal on a face)

    @property
    def center(self) -> np.ndarray:
        return self.vertices.mean(axis=0)


def box_solid(center: np.ndarray, size, axes: np.ndarray, rgb, top_rgb=None, bias: float = 0.0) -> Solid:
    """An oriented box: `axes` (3, 3) has the box's unit axes as rows."""
    verts = np.asarray(center, float) + (_BOX_SIGNS * (np.asarray(size, float) / 2)) @ axes
    return Solid(verts, _BOX_FACES, rgb, top_rgb, bias)


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


def beam_solid(
    p0: np.ndarray, p1: np.ndarray, thickness: float, rgb, side: np.ndarray | None = None
) -> Solid:
    """A square beam from p0 to p1; `side` fixes its roll (else any perpendicular)."""
    axis = np.asarray(p1, float) - np.asarray(p0, float)
    length = float(np.linalg.norm(axis))
    a = axis / max(length, 1e-9)
    ref = side if side is not None else (np.array([0, 0, 1.0]) if abs(a[2]) < 0.9 else np.array([1.0, 0, 0]))
    b = np.cross(a, ref)
    nb = np.linalg.norm(b)
    b = (
        b / nb
        if nb > 1e-9
        else np.cross(a, [0, 1.0, 0]) / max(np.linalg.norm(np.cross(a, [0, 1.0, 0])), 1e-9)
    )
    c = np.cross(a, b)
    return box_solid(
        (np.asarray(p0) + np.asarray(p1)) / 2, (length, thickness, thickness), np.stack([a, b, c]), rgb
    )


def _shade(rgb: tuple[int, int, int], k: float) -> tuple[int, int, int]:
    return tuple(int(min(255, c * k)) for c in rgb)


def item_solids(item: Item, pos: np.ndarray, rot: np.ndarray, hidden: float = 0.0) -> list[Solid]:
    """The solids of a table item at pose (pos, rot); `hidden` cuts that length off its +x end."""
    w, d, h = item.size
    rgb = item.rgb
    axes = np.asarray(rot).T
    if item.shape == "cylinder":
        return [prism_solid(pos, w / 2, h, rgb)]
    if item.shape == "bowl":
        return [prism_solid(pos, w / 2, h, rgb, sides=24, top_rgb=_shade(rgb, 0.55))]
    if item.shape == "plate":
        return [prism_solid(pos, w / 2, h, tuple(min(255, int(c * 1.1 + 20)) for c in rgb), sides=24)]
    if item.shape == "peg" and hidden > 0:
        keep = max(w - hidden, 1e-3)
        return [box_solid(np.asarray(pos) - axes[0] * (w - keep) / 2, (keep, d, h), axes, rgb)]
    if item.shape == "socket":
        hole = 0.45 * d
        solids = [box_solid(pos, (w, d, h), axes, rgb)]
        for sgn in (-1, 1):  # the hole, seen at both ends of the tube
            c = np.asarray(pos) + sgn * axes[0] * (w / 2 + 0.0008)
            solids.append(box_solid(c, (0.0012, hole, hole), axes, (25, 25, 28), bias=0.01))
        return solids
    return [box_solid(pos, (w, d, h), axes, rgb)]


def body_vertices(body: Body, i: int) -> np.ndarray:
    """The visible vertices of a body at frame i (what its ground-truth box bounds)."""
    hidden = 0.0 if body.hidden is None else float(body.hidden[i])
    return item_solids(body.item, body.pos[i], body.rot[i], hidden)[0].vertices


def fixture_pose(item: Item) -> tuple[np.ndarray, np.ndarray]:
    c, s = np.cos(item.yaw), np.sin(item.yaw)
    return np.array([*item.xy, item.size[2] / 2]), np.array([[c, -s, 0], [s, c, 0], [0, 0, 1.0]])


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


def _jaws(
    tip: np.ndarray, tool: np.ndarray, gap: float, finger: float, look: Look, width: float
) -> list[Solid]:
    approach, closing, normal = tool[:, 0], tool[:, 1], tool[:, 2]
    axes = np.stack([approach, closing, normal])
    solids = []
    for side in (-1, 1):
        c = tip + side * (gap / 2 + 0.006) * closing - approach * (finger / 2 - 0.012)
        solids.append(box_solid(c, (finger, 0.012, width * 0.75), axes, look.finger_rgb))
    palm = tip - approach * (finger - 0.004)
    solids.append(box_solid(palm, (0.02, max(gap + 0.03, 0.05), width), axes, look.arm_rgb))
    return solids


def ee_arm_solids(arm: Arm, i: int, look: Look) -> list[Solid]:
    """The single-ee arm: fingers and palm at the tool, and a two-link stand-in behind the table."""
    tip, tool = arm.tip[i], arm.tool[i]
    yaw_axes = np.stack([tool[:, 1], np.cross([0, 0, 1.0], tool[:, 1]), [0, 0, 1.0]])
    solids = []
    for side in (-1, 1):
        c = tip + side * (arm.gap[i] / 2 + 0.006) * tool[:, 1] + [0, 0, 0.022]
        solids.append(box_solid(c, (0.012, 0.024, 0.06), yaw_axes, look.finger_rgb))
    palm = tip + np.array([0, 0, 0.058])
    solids.append(box_solid(palm, (0.105, 0.026, 0.02), yaw_axes, look.arm_rgb))
    wrist = tip + np.array([0, 0, 0.11])
    solids.append(beam_solid(palm, wrist, 0.02, look.arm_rgb))
    shoulder = np.array([0.0, 0.46, 0.30])
    elbow = _two_link_elbow(shoulder, wrist, 0.36, 0.34)
    solids.append(beam_solid(wrist, elbow, 0.024, look.arm_rgb))
    solids.append(beam_solid(elbow, shoulder, 0.03, look.arm_rgb))
    solids.append(beam_solid(shoulder, np.array([0.0, 0.46, -0.02]), 0.05, look.joint_rgb))
    return solids


def jointed_arm_solids(arm: Arm, i: int, look: Look) -> list[Solid]:
    """A jointed arm drawn from its forward kinematics: base, links, joint housings, jaws."""
    assert arm.pose is not None and arm.placed is not None
    m, p = arm.placed.model, arm.pose
    wu, wf, wh = m.link_width
    radius, height = m.base_size
    base = p.base[i]
    lateral = np.cross([0, 0, 1.0], p.wrist[i] - base)
    solids = [
        prism_solid(base + [0, 0, height / 2], radius, height, look.joint_rgb, sides=12),
        beam_solid(base + [0, 0, height], p.shoulder[i], wu * 1.1, look.arm_rgb),
        beam_solid(p.shoulder[i], p.elbow[i], wu, look.arm_rgb, side=lateral),
        beam_solid(p.elbow[i], p.wrist[i], wf, look.arm_rgb, side=lateral),
        box_solid(p.shoulder[i], (wu * 1.4,) * 3, np.eye(3), look.joint_rgb),
        box_solid(p.elbow[i], (wf * 1.3,) * 3, np.eye(3), look.joint_rgb),
    ]
    tool = p.tool[i]
    palm = p.tip[i] - tool[:, 0] * (m.finger - 0.004)
    solids.append(beam_solid(p.wrist[i], palm, wh, look.arm_rgb, side=tool[:, 1]))
    solids += _jaws(p.tip[i], tool, float(arm.gap[i]), m.finger, look, wh)
    return solids


def default_cameras(width: int, height: int) -> list[Camera]:
    """The single-ee rig: a front view from across the table and a top view."""
    return [
        Camera("front", (0.0, -0.62, 0.42), (0.0, 0.04, 0.03), (0, 0, 1), 56.0, width, height),
        Camera("top", (0.0, -0.30, 0.86), (0.0, 0.0, 0.0), (0, 1, 0), 50.0, width, height),
    ]


class SceneRenderer:
    """Renders an `Episode` frame by frame for one camera."""

    def __init__(self, camera: Camera, episode: Episode, look: Look | None = None, seed: int = 0) -> None:
        self.camera = camera
        self.episode = episode
        self.look = look or Look()
        self.light = np.asarray(episode.light)
        self.brightness = episode.brightness
        self.background = self._background(np.random.default_rng(seed))
        self.static: list[Solid] = []
        for item in episode.fixtures:
            self.static += item_solids(item, *fixture_pose(item))

    def _background(self, rng: np.random.Generator) -> Image.Image:
        cam = self.camera
        w, h = cam.width, cam.height
        grad = np.linspace(*self.look.wall, h)[:, None, None] * np.ones((1, w, 3)) * [0.95, 1.0, 1.08]
        img = Image.fromarray(np.clip(grad * self.brightness, 0, 255).astype(np.uint8))
        draw = ImageDraw.Draw(img)
        x0, x1, y0, y1 = self.look.table
        corners = np.array([[x0, y0, 0], [x1, y0, 0], [x1, y1, 0], [x0, y1, 0]])
        pc = cam.to_camera(corners)
        if np.all(pc[:, 2] > 0):
            poly = [tuple(p) for p in cam.project(corners)]
            table = np.clip(np.asarray(self.look.table_rgb) * self.brightness, 0, 255)
            draw.polygon(poly, fill=tuple(int(c) for c in table))
        # Low-frequency grain: texture for the eye without costing the encoder.
        arr = np.asarray(img).astype(np.int16)
        grain = rng.normal(0, 6, size=(h // 8 + 1, w // 8 + 1, 1)).repeat(8, 0).repeat(8, 1)[:h, :w]
        grain_img = Image.fromarray(np.clip(grain[:, :, 0] + 128, 0, 255).astype(np.uint8))
        grain = np.asarray(grain_img.filter(ImageFilter.GaussianBlur(4))).astype(np.int16)[:, :, None] - 128
        return Image.fromarray(np.clip(arr + grain, 0, 255).astype(np.uint8))

    def _faces(self, solid: Solid) -> tuple[np.ndarray, list[np.ndarray], np.ndarray, np.ndarray]:
        """(pixel vertices, faces, unit outward normals, face centres) of one solid."""
        verts = solid.vertices
        faces = [np.asarray(f) for f in solid.faces]
        first = np.array([f[:3] for f in faces])
        a, b, c = verts[first[:, 0]], verts[first[:, 1]], verts[first[:, 2]]
        normals = np.cross(b - a, c - a)
        normals /= np.maximum(np.linalg.norm(normals, axis=1, keepdims=True), 1e-12)
        centers = np.array([verts[f].mean(axis=0) for f in faces])
        flip = np.einsum("ij,ij->i", normals, centers - verts.mean(axis=0)) < 0
        normals[flip] *= -1
        return self.camera.project(verts), faces, normals, centers

    def _boxes(self, boxes: list[Solid]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """The same for many boxes at once: (B, 8, 2) pixels, (B, 6, 3) normals, centres, (B, 8, 3) vertices."""
        verts = np.stack([b.vertices for b in boxes])
        quads = verts[:, _FACES_ARR]  # (B, 6, 4, 3)
        centers = quads.mean(axis=2)
        e1, e2 = quads[:, :, 1] - quads[:, :, 0], quads[:, :, 2] - quads[:, :, 0]
        normals = np.cross(e1, e2)
        normals /= np.maximum(np.linalg.norm(normals, axis=2, keepdims=True), 1e-12)
        flip = np.einsum("bfj,bfj->bf", normals, centers - verts.mean(axis=1, keepdims=True)) < 0
        normals[flip] *= -1
        uv = self.camera.project(verts.reshape(-1, 3)).reshape(len(boxes), 8, 2)
        return uv, normals, centers, verts

    def _shadow_uv(self, verts: np.ndarray) -> np.ndarray:
        """Pixel positions of vertices (..., 3) cast onto the table along the light."""
        base = verts.reshape(-1, 3).copy()
        lift = np.maximum(base[:, 2], 0.0)
        base[:, :2] -= self.light[:2] / max(self.light[2], 0.3) * lift[:, None] * 0.35
        base[:, 2] = 0.0005
        return self.camera.project(base).reshape(*verts.shape[:-1], 2)

    def solids_at(self, i: int, robot: bool = True) -> list[Solid]:
        ep = self.episode
        solids = list(self.static)
        for body in ep.bodies.values():
            hidden = 0.0 if body.hidden is None else float(body.hidden[i])
            solids += item_solids(body.item, body.pos[i], body.rot[i], hidden)
        if robot:
            for arm in ep.arms.values():
                draw = jointed_arm_solids if arm.pose is not None else ee_arm_solids
                solids += draw(arm, i, self.look)
        return solids

    def frame(self, i: int, robot: bool = True) -> np.ndarray:
        img = self.background.copy()
        draw = ImageDraw.Draw(img)
        solids = self.solids_at(i, robot)
        boxes = [k for k, s in enumerate(solids) if s.faces is _BOX_FACES]
        geo: dict[int, tuple] = {}
        if boxes:
            uv, normals, centers, verts = self._boxes([solids[k] for k in boxes])
            suv = self._shadow_uv(verts)
            for j, k in enumerate(boxes):
                geo[k] = (uv[j], _FACES_LIST, normals[j], centers[j], suv[j])
        for k, s in enumerate(solids):
            if k not in geo:
                geo[k] = (*self._faces(s), self._shadow_uv(s.vertices))
        shadow_k = 0.62 * self.brightness
        shadow_rgb = tuple(int(c * shadow_k) for c in self.look.table_rgb)
        for k, s in enumerate(solids):  # shadows: the ground image of each face turned to the light
            if s.bias != 0:
                continue
            _, faces, normals, _, suv = geo[k]
            for f in np.flatnonzero(normals @ self.light > 0):
                draw.polygon(suv[faces[f]].ravel().tolist(), fill=shadow_rgb)
        eye = np.asarray(self.camera.eye)
        order = sorted(
            range(len(solids)), key=lambda k: solids[k].bias - float(np.linalg.norm(solids[k].center - eye))
        )
        for k in order:
            s = solids[k]
            uv, faces, normals, centers, _ = geo[k]
            visible = np.einsum("ij,ij->i", normals, eye - centers) > 0
            shade = (0.42 + 0.58 * np.maximum(normals @ self.light, 0.0)) * self.brightness
            for f in np.flatnonzero(visible):
                rgb = s.top_rgb if (s.top_rgb is not None and normals[f, 2] > 0.9) else s.rgb
                draw.polygon(uv[faces[f]].ravel().tolist(), fill=_shade(rgb, shade[f]))
        return np.asarray(img)
