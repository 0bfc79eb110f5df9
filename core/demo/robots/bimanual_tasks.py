"""The bimanual variant's two task scripts: a handover and a peg-in-socket insertion.

Handover (giver G, receiver R; `arm` of each phase in brackets):
idle, reach_cube [G], grasp_cube [G], lift_cube [G], bring_cube_to_middle [both:
G carries it up to the middle while R comes to meet it], hand_over_cube [both: R's
jaws start closing on the cube, then G opens], move_to_bowl [both: R carries it
off while G goes back to rest], place_in_bowl [R], release_cube [R], retreat [R],
idle.

Insertion (holder H, inserter I): idle, reach_socket [H], grasp_socket [H],
lift_socket [H], reach_peg [both: I reaches for the peg while H brings the socket
up to the middle], grasp_peg [I], lift_peg [I], align_peg [I], insert_peg [I],
release_peg [I], place_socket [both: H puts the assembly down while I withdraws],
release_socket [H], retreat [H], idle.

A failed grasp is labelled as a person would: `grasp_X` (the jaws close on
nothing and open again), then `reach_X` again for the new approach, then
`grasp_X` that holds.
"""

from __future__ import annotations

import numpy as np

from core.demo.episode import Body, carry, resting
from core.demo.kinematics import rot_z
from core.demo.robots.bimanual import DOWN, SIDE, ArmPlan, Bimanual, TaskPlan, other
from core.demo.robots.common import Grip, Teleop, grasp_roll_axis, hold_frames, reach_time
from core.demo.scene import Item, Layout, object_size, support_height
from core.demo.script import Script

T0, K = 0.5, 1.8  # nominal motion time: T0 + K * sqrt(distance)


def _time(a: np.ndarray, b: np.ndarray, base: float = T0) -> float:
    return reach_time(float(np.linalg.norm(np.asarray(b) - np.asarray(a))), base, K)


def _face_axis(item_yaw: float, plan: ArmPlan) -> np.ndarray:
    """The horizontal axis across an item's faces nearest the arm's current jaw axis."""
    tool = plan.tool(plan.q)[1]
    ref = float(np.arctan2(tool[1, 1], tool[0, 1]))
    yaw = grasp_roll_axis(item_yaw, ref)
    return np.array([np.cos(yaw), np.sin(yaw), 0.0])


def _lateral(plan: ArmPlan, point: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(approach, jaw axis) of a horizontal grasp at `point` by this arm: radial and across it."""
    base = np.array([*plan.placed.base, 0.0])
    a = np.asarray(point, float) - base
    a[2] = 0.0
    a /= np.linalg.norm(a)
    return a, np.cross([0, 0, 1.0], a)


def reach_and_grasp(
    sc: Script,
    rng: np.random.Generator,
    v: Bimanual,
    arm: str,
    plan: ArmPlan,
    item: Item,
    noun: str,
    grasp_p: np.ndarray,
    closing: np.ndarray,
    width: float,
    retry: bool,
    events: dict,
    also=None,
    exact: bool = False,
) -> Grip:
    """reach_X, (a failed grasp_X and reach_X again,) grasp_X for one arm picking `item` off the table.

    `also(phase)` adds the other arm's motions to the first reach phase (then marked both).
    """
    model = v.model
    g_open = float(model.gripper_value(width + rng.uniform(0.02, 0.035)))
    closed = float(rng.uniform(0.0, 0.06))
    start_tip = plan.tool(plan.q)[0]
    q_grasp = plan.ik(grasp_p, DOWN, closing, exact=exact)
    above = grasp_p + np.array([*rng.normal(0, 0.01, 2), rng.uniform(0.06, 0.12)])
    q_above = plan.ik(above, DOWN + float(rng.uniform(0.0, 0.3)))
    first_to, first_p = q_grasp, grasp_p
    if retry:
        if rng.random() < 0.5:
            side = np.cross([0, 0, 1.0], closing) * rng.choice([-1, 1])
            first_p = grasp_p + side * rng.uniform(0.045, 0.055)
        else:
            first_p = grasp_p + np.array([0, 0, item.size[2] * 0.4 + rng.uniform(0.02, 0.035)])
        plan.q = q_above
        first_to = plan.ik(first_p, DOWN, closing, exact=exact)
    with sc.phase(f"reach_{noun}", "both" if also else arm) as ph:
        if also:
            also(ph)
        ph.move(arm, q_above, _time(start_tip, above))
        ph.grip(arm, g_open, float(rng.uniform(0.4, 0.9)), with_motion=True)
        ph.move(arm, first_to, _time(above, first_p, 0.35), blend=float(rng.uniform(0.15, 0.6)))
    if retry:
        with sc.phase(f"grasp_{noun}", arm) as ph:
            s = ph.grip(arm, closed, float(rng.uniform(0.3, 0.7)))
            ph.wait(arm, float(rng.uniform(0.15, 0.6)))
            e = ph.grip(arm, g_open, float(rng.uniform(0.3, 0.6)))
        events["failed_grasps"].append({"arm": arm, "object": item.label, "start": s.start, "end": e.end})
        back_p = (first_p + grasp_p) / 2 + np.array([0, 0, rng.uniform(0.03, 0.05)])
        q_back = plan.ik(back_p, DOWN + float(rng.uniform(0.0, 0.2)))
        plan.q = q_back
        q_grasp = plan.ik(grasp_p, DOWN, closing, exact=exact)
        with sc.phase(f"reach_{noun}", arm) as ph:
            ph.move(arm, q_back, _time(first_p, back_p, 0.35))
            ph.move(arm, q_grasp, _time(back_p, grasp_p, 0.35), blend=float(rng.uniform(0.2, 0.6)))
    plan.q = q_grasp
    with sc.phase(f"grasp_{noun}", arm) as ph:
        close = ph.grip(arm, closed, float(rng.uniform(0.3, 0.8)))
        ph.wait(arm, float(rng.uniform(0.05, 0.5)))
    squeeze = float(rng.uniform(0.0005, 0.003))
    return Grip(arm, item.label, close.start, stall=float(model.gripper_value(width - squeeze)))


# ------------------------------------------------------------------ handover


def handover_items(rng: np.random.Generator, v: Bimanual) -> dict[str, Item]:
    sg, sr = SIDE[v.giver], SIDE[other(v.giver)]
    lay = Layout(rng, (-0.5, 0.5), (-0.2, 0.2))
    col = v.colors
    cube = lay.place(
        "cube",
        col["cube"],
        object_size("cube", v.cube_size),
        x_range=tuple(sorted((sg * 0.13, sg * 0.30))),
        y_range=(-0.16, 0.16),
    )
    bowl = lay.place(
        "bowl",
        col["bowl"],
        (0.13, 0.13, 0.04),
        yaw_range=0.3,
        x_range=tuple(sorted((sr * 0.0, sr * 0.24))),
        y_range=(-0.16, 0.16),
    )
    dist = lay.place("block", col["distractor"], object_size("block", 0.04), y_range=(-0.2, 0.2))
    return {"cube": cube, "bowl": bowl, "distractor": dist}


def handover(sc, rng, v: Bimanual, plans, rest, items, tele: Teleop) -> TaskPlan:
    g, r = v.giver, other(v.giver)
    sg = SIDE[g]
    cube, bowl = items["cube"], items["bowl"]
    h = w = cube.size[0]
    events: dict = {"failed_grasps": []}
    z_g = h * float(rng.uniform(0.6, 0.72))
    grasp_p = np.array([*cube.xy, z_g])
    grip_g = reach_and_grasp(
        sc, rng, v, g, plans[g], cube, "cube", grasp_p, _face_axis(cube.yaw, plans[g]), w, tele.retry, events
    )
    lift_p = grasp_p + np.array([*rng.normal(0, 0.01, 2), rng.uniform(0.08, 0.14)])
    q_lift = plans[g].ik(lift_p, DOWN + float(rng.uniform(0.0, 0.25)))
    with sc.phase("lift_cube", g) as ph:
        ph.move(g, q_lift, _time(grasp_p, lift_p, 0.35))
    # The meeting point: the cube's centre while both hold it.
    m = np.array([sg * rng.uniform(0.02, 0.06), rng.uniform(-0.06, 0.06), rng.uniform(0.17, 0.26)])
    approach_r, jaw_r = _lateral(plans[r], m)
    q_mid_g = plans[g].ik(m + np.array([0, 0, z_g - h / 2]), DOWN, jaw_r)
    r_grasp = m - np.array([0, 0, 0.22 * h])
    r_pre = r_grasp - approach_r * rng.uniform(0.06, 0.11)
    q_pre_r = plans[r].ik(r_pre, 0.0, jaw_r)
    q_grasp_r = plans[r].ik(r_grasp, 0.0, jaw_r)
    r_tip0 = plans[r].tool(rest[r])[0]
    g_open_r = float(v.model.gripper_value(w + rng.uniform(0.02, 0.035)))
    with sc.phase("bring_cube_to_middle", "both") as ph:
        s = ph.move(g, q_mid_g, _time(lift_p, m), blend=float(rng.uniform(0.0, 0.5)))
        ph.move(r, q_pre_r, _time(r_tip0, r_pre), after=float(rng.uniform(0.0, 0.6)) * s.duration)
        ph.grip(r, g_open_r, float(rng.uniform(0.4, 0.9)), with_motion=True)
        ph.move(r, q_grasp_r, _time(r_pre, r_grasp, 0.35), blend=float(rng.uniform(0.1, 0.5)))
    closed = float(rng.uniform(0.0, 0.06))
    with sc.phase("hand_over_cube", "both") as ph:
        close_r = ph.grip(r, closed, float(rng.uniform(0.3, 0.7)))
        open_g = ph.grip(
            g,
            float(v.model.gripper_value(w + rng.uniform(0.015, 0.03))),
            float(rng.uniform(0.3, 0.6)),
            at=close_r.end + float(rng.uniform(0.1, 0.5)),
        )
        ph.wait(g, float(rng.uniform(0.05, 0.3)))
    grip_g.release_end = open_g.end
    grip_r = Grip(
        r, cube.label, close_r.start, stall=float(v.model.gripper_value(w - rng.uniform(0.0005, 0.003)))
    )
    drop = float(rng.uniform(0.008, 0.02))
    centre = np.array([*bowl.xy, support_height(bowl) + h / 2 + drop])
    centre[:2] += rng.normal(0, 0.01, 2)
    place_r = centre - np.array([0, 0, 0.22 * h])
    above_r = place_r + np.array([0, 0, rng.uniform(0.06, 0.11)])
    q_above_r = plans[r].ik(above_r, 0.0, _lateral(plans[r], above_r)[1])
    q_place_r = plans[r].ik(place_r, 0.0, _lateral(plans[r], place_r)[1])
    with sc.phase("move_to_bowl", "both") as ph:
        s = ph.move(r, q_above_r, _time(r_grasp, above_r))
        ph.move(
            g,
            rest[g] + np.radians(rng.normal(0, 2, 6)),
            _time(m, plans[g].tool(rest[g])[0]),
            after=float(rng.uniform(-0.1, 0.4)) * s.duration,
        )
        ph.grip(g, float(rng.uniform(0.05, 0.3)), float(rng.uniform(0.4, 0.9)), with_motion=True)
    with sc.phase("place_in_bowl", r) as ph:
        ph.move(r, q_place_r, _time(above_r, place_r, 0.35), blend=float(rng.uniform(0.0, 0.4)))
    with sc.phase("release_cube", r) as ph:
        rel = ph.grip(r, g_open_r, float(rng.uniform(0.3, 0.7)))
        ph.wait(r, float(rng.uniform(0.05, 0.4)))
    grip_r.release_end = rel.end
    up = place_r - approach_r * rng.uniform(0.04, 0.08) + np.array([0, 0, rng.uniform(0.03, 0.07)])
    q_up = plans[r].ik(up, 0.0)
    with sc.phase("retreat", r) as ph:
        ph.move(r, q_up, _time(place_r, up, 0.3))
        ph.move(
            r,
            rest[r] + np.radians(rng.normal(0, 2, 6)),
            _time(up, r_tip0),
            blend=float(rng.uniform(0.2, 0.6)),
        )
        ph.grip(r, float(rng.uniform(0.05, 0.3)), float(rng.uniform(0.4, 0.9)), with_motion=True)

    def bodies(arms, n: int, fps: int, tele: Teleop):
        ag, dg = hold_frames(arms[g].gap, grip_g, w, fps, tele.delay)
        ar, dr = hold_frames(arms[r].gap, grip_r, w, fps, tele.delay)
        pos, rot = resting(cube, 0.0, n)
        carry(
            pos,
            rot,
            [(ag, dg, arms[g].tip, arms[g].tool), (ar, dr, arms[r].tip, arms[r].tool)],
            support_height(bowl),
            h,
            fps,
        )
        ev = {
            "grasps": [
                {"arm": g, "object": cube.label, "grasp_frame": ag, "release_frame": dg},
                {"arm": r, "object": cube.label, "grasp_frame": ar, "release_frame": dr},
            ],
            "grasp_frame": ag,
            "release_frame": dg,
            "closed_level": {
                g: float(np.median(arms[g].gap[ag:dg])),
                r: float(np.median(arms[r].gap[ar:dr])),
            },
        }
        return {cube.label: Body(cube, pos, rot)}, ev

    return TaskPlan([grip_g, grip_r], events, [bowl, items["distractor"]], bowl, g, bodies)


# ------------------------------------------------------------------ insertion


def insertion_items(rng: np.random.Generator, v: Bimanual) -> dict[str, Item]:
    sh, si = SIDE[v.holder], SIDE[other(v.holder)]
    lay = Layout(rng, (-0.5, 0.5), (-0.2, 0.2))
    col = v.colors
    s = v.socket_size
    socket = lay.place(
        "socket",
        col["socket"],
        object_size("socket", s),
        x_range=tuple(sorted((sh * 0.13, sh * 0.27))),
        y_range=(-0.15, 0.15),
        yaw_range=0.5,
    )
    sp = 0.45 * s * 0.8
    peg = lay.place(
        "peg",
        col["peg"],
        (float(rng.uniform(0.075, 0.085)), sp, sp),
        x_range=tuple(sorted((si * 0.12, si * 0.26))),
        y_range=(-0.15, 0.15),
    )
    # The peg's +x end (the one that goes in) points roughly toward the holder.
    peg = peg.moved(yaw=float((0.0 if -si > 0 else np.pi) + rng.uniform(-0.4, 0.4)))
    dist = lay.place("cube", col["distractor"], object_size("cube", 0.035), y_range=(-0.2, 0.2))
    return {"socket": socket, "peg": peg, "distractor": dist}


def _tool_for(item_pose: np.ndarray, rel: np.ndarray) -> np.ndarray:
    """The tool pose (4x4) that puts an item held at `rel` (tool -> item) at `item_pose`."""
    return item_pose @ np.linalg.inv(rel)


def _pose(pos: np.ndarray, rot: np.ndarray) -> np.ndarray:
    t = np.eye(4)
    t[:3, :3], t[:3, 3] = rot, pos
    return t


def insertion(sc, rng, v: Bimanual, plans, rest, items, tele: Teleop) -> TaskPlan:
    hd, ins = v.holder, other(v.holder)
    sh, si = SIDE[hd], SIDE[ins]
    socket, peg = items["socket"], items["peg"]
    s = socket.size[0]
    L, sp = peg.size[0], peg.size[1]
    events: dict = {"failed_grasps": []}
    fail = str(rng.choice(["socket", "peg"])) if tele.retry else ""
    # Holder: socket off the table, jaws across its solid walls (its local y).
    z_s = s * float(rng.uniform(0.6, 0.75))
    s_grasp = np.array([*socket.xy, z_s])
    s_axis = rot_z(socket.yaw)[:, 1]
    grip_h = reach_and_grasp(
        sc, rng, v, hd, plans[hd], socket, "socket", s_grasp, s_axis, s, fail == "socket", events
    )
    lift_p = s_grasp + np.array([*rng.normal(0, 0.01, 2), rng.uniform(0.08, 0.12)])
    q_lift = plans[hd].ik(lift_p, DOWN + float(rng.uniform(0.0, 0.2)))
    with sc.phase("lift_socket", hd) as ph:
        ph.move(hd, q_lift, _time(s_grasp, lift_p, 0.35))
    m = np.array([sh * rng.uniform(0.04, 0.08), rng.uniform(-0.05, 0.05), rng.uniform(0.17, 0.25)])
    q_mid_h = plans[hd].ik(m + np.array([0, 0, z_s - s / 2]), DOWN, np.array([0, 1.0, 0]))
    # Inserter: the peg, gripped top-down behind its middle, jaws across it (exactly its +y).
    back = float(rng.uniform(0.12, 0.22)) * L
    p_rot = rot_z(peg.yaw)
    p_centre = np.array([*peg.xy, sp / 2])
    p_grasp = p_centre - p_rot[:, 0] * back + np.array([0, 0, sp / 2 + 0.004 - sp / 2])

    def holder_moves(ph) -> None:
        ph.move(hd, q_mid_h, _time(lift_p, m), blend=float(rng.uniform(0.0, 0.5)))

    grip_i = reach_and_grasp(
        sc,
        rng,
        v,
        ins,
        plans[ins],
        peg,
        "peg",
        p_grasp,
        p_rot[:, 1],
        sp,
        fail == "peg",
        events,
        also=holder_moves,
        exact=True,
    )
    q_grasp_i = plans[ins].q.copy()
    tip0, tool0 = plans[ins].tool(q_grasp_i)
    rel = np.linalg.inv(_pose(tip0, tool0)) @ _pose(p_centre, p_rot)
    # Where the peg must be: on the socket's hole axis (world x), its +x end toward the holder.
    entry = m + np.array([si * s / 2, 0, 0])
    peg_rot = rot_z(0.0 if -si > 0 else np.pi)
    gap = float(rng.uniform(0.015, 0.03))
    depth = float(rng.uniform(0.5, 0.7)) * s

    def tool_at(front_x: float) -> tuple[np.ndarray, np.ndarray]:
        centre = np.array([front_x + si * L / 2, m[1], m[2]])
        t = _tool_for(_pose(centre, peg_rot), rel)
        return t[:3, 3], t[:3, 1]

    pre_tip, pre_jaw = tool_at(entry[0] + si * gap)
    in_tip, in_jaw = tool_at(entry[0] - si * depth)
    lift_i = p_grasp + np.array([0, 0, rng.uniform(0.08, 0.13)])
    q_lift_i = plans[ins].ik(lift_i, DOWN + float(rng.uniform(0.0, 0.2)))
    q_pre = plans[ins].ik(pre_tip, DOWN, pre_jaw, exact=True)
    q_in = plans[ins].ik(in_tip, DOWN, in_jaw, exact=True)
    with sc.phase("lift_peg", ins) as ph:
        ph.move(ins, q_lift_i, _time(p_grasp, lift_i, 0.35))
    with sc.phase("align_peg", ins) as ph:
        ph.move(ins, q_pre, _time(lift_i, pre_tip), blend=float(rng.uniform(0.0, 0.5)))
        ph.wait(ins, float(rng.uniform(0.1, 0.6)))
    with sc.phase("insert_peg", ins) as ph:
        ph.move(ins, q_in, float(rng.uniform(0.6, 1.3)), pause=False)
    with sc.phase("release_peg", ins) as ph:
        rel_i = ph.grip(
            ins, float(v.model.gripper_value(sp + rng.uniform(0.02, 0.035))), float(rng.uniform(0.3, 0.7))
        )
        ph.wait(ins, float(rng.uniform(0.05, 0.4)))
    grip_i.release_end = rel_i.end
    # Put the assembly down on the holder's side; the inserter backs off and goes home.
    down_c = np.array(
        [sh * rng.uniform(0.08, 0.16), rng.uniform(-0.08, 0.08), s / 2 + rng.uniform(0.003, 0.01)]
    )
    q_down = plans[hd].ik(down_c + np.array([0, 0, z_s - s / 2]), DOWN)
    back_i = in_tip + np.array([si * rng.uniform(0.05, 0.08), 0, rng.uniform(0.04, 0.07)])
    q_back_i = plans[ins].ik(back_i, DOWN + float(rng.uniform(0.0, 0.2)))
    tip_rest_i = plans[ins].tool(rest[ins])[0]
    with sc.phase("place_socket", "both") as ph:
        ph.move(ins, q_back_i, _time(in_tip, back_i, 0.35))
        ph.move(ins, rest[ins] + np.radians(rng.normal(0, 2, 6)), _time(back_i, tip_rest_i), blend=0.4)
        ph.grip(ins, float(rng.uniform(0.05, 0.3)), float(rng.uniform(0.4, 0.9)), with_motion=True)
        ph.move(hd, q_down, _time(m, down_c), after=float(rng.uniform(0.2, 0.8)))
    with sc.phase("release_socket", hd) as ph:
        rel_h = ph.grip(
            hd, float(v.model.gripper_value(s + rng.uniform(0.015, 0.03))), float(rng.uniform(0.3, 0.7))
        )
        ph.wait(hd, float(rng.uniform(0.05, 0.4)))
    grip_h.release_end = rel_h.end
    up = down_c + np.array([0, 0, z_s - s / 2 + rng.uniform(0.05, 0.1)])
    q_up = plans[hd].ik(up, DOWN + float(rng.uniform(0.0, 0.2)))
    with sc.phase("retreat", hd) as ph:
        ph.move(hd, q_up, _time(down_c, up, 0.3))
        ph.move(
            hd,
            rest[hd] + np.radians(rng.normal(0, 2, 6)),
            _time(up, plans[hd].tool(rest[hd])[0]),
            blend=float(rng.uniform(0.2, 0.6)),
        )
        ph.grip(hd, float(rng.uniform(0.05, 0.3)), float(rng.uniform(0.4, 0.9)), with_motion=True)

    def bodies(arms, n: int, fps: int, tele: Teleop):
        ah, dh = hold_frames(arms[hd].gap, grip_h, s, fps, tele.delay)
        ai, di = hold_frames(arms[ins].gap, grip_i, sp, fps, tele.delay)
        spos, srot = resting(socket, 0.0, n)
        carry(spos, srot, [(ah, dh, arms[hd].tip, arms[hd].tool)], 0.0, s, fps)
        ppos, prot = resting(peg, 0.0, n)
        carry(ppos, prot, [(ai, di, arms[ins].tip, arms[ins].tool), (di, n, spos, srot)], 0.0, sp, fps)
        hidden = _hidden(ppos, prot, L, spos, srot, s, si)
        ev = {
            "grasps": [
                {"arm": hd, "object": socket.label, "grasp_frame": ah, "release_frame": dh},
                {"arm": ins, "object": peg.label, "grasp_frame": ai, "release_frame": di},
            ],
            "grasp_frame": ah,
            "release_frame": dh,
            "closed_level": {
                hd: float(np.median(arms[hd].gap[ah:dh])),
                ins: float(np.median(arms[ins].gap[ai:di])),
            },
        }
        return {socket.label: Body(socket, spos, srot), peg.label: Body(peg, ppos, prot, hidden)}, ev

    return TaskPlan([grip_h, grip_i], events, [items["distractor"]], None, hd, bodies)


def _hidden(ppos, prot, length, spos, srot, s, si) -> np.ndarray:
    """Per frame, how much of the peg's +x end is inside the socket's hole."""
    front = ppos + prot[:, :, 0] * length / 2
    axis = srot[:, :, 0]
    sgn = np.sign(np.einsum("ij,j->i", axis, [si, 0, 0]))[:, None]
    entry = spos + sgn * axis * s / 2
    inward = -sgn * axis
    depth = np.einsum("ij,ij->i", front - entry, inward)
    off = front - entry - depth[:, None] * inward
    inside = np.linalg.norm(off, axis=1) < 0.45 * s / 2
    return np.where(inside, np.clip(depth, 0.0, length * 0.9), 0.0)
